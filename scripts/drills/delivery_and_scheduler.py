"""Drills owned by the notification and scheduler tests, run as one pass/fail step.

- SMTP server down during delivery: nothing lost, nothing sent twice
  (tests/integration/test_notify_smtp.py, loopback aiosmtpd server);
- scheduler leader killed with SIGKILL: a standby takes over, no double alerts
  (tests/integration/test_scheduler_lease.py, test_scheduler_processes.py).

They are not duplicated here; this runs them (slow ones included) and exits
with pytest's code.

    .venv/bin/python scripts/drills/delivery_and_scheduler.py [--db postgres]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = [
    "tests/integration/test_notify_smtp.py",
    "tests/integration/test_scheduler_lease.py",
    "tests/integration/test_scheduler_processes.py",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="postgres", choices=["sqlite", "postgres"])
    args = parser.parse_args()
    present = [f for f in FILES if (REPO / f).exists()]
    missing = sorted(set(FILES) - set(present))
    if missing:
        print(f"not found (skipped): {', '.join(missing)}")
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--db={args.db}", *present]
    print(" ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=REPO, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
