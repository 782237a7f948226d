"""Detection of FEV1 decline on a synthetic cohort: the table in VALIDATION.md.

The report lives in the package (`backend.clinical.detection_report`) so that
`lamtrack evaluate-cohort` works from any install; this script runs it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.clinical.detection_report import main

if __name__ == "__main__":
    raise SystemExit(main())
