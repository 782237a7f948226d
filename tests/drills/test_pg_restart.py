"""PostgreSQL stopped and restarted under load (scripts/drills/pg_restart.py).

Marked slow: it stops the shared PostgreSQL server, so normal CI leaves it out;
run it with `pytest -m slow tests/drills/test_pg_restart.py`.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.drills import pg_restart


@pytest.mark.slow
def test_api_answers_503_while_postgres_is_down_and_recovers_without_half_writes() -> None:
    if shutil.which("pg_ctlcluster") is None or not pg_restart.pg_is_up():
        pytest.skip("needs a local PostgreSQL 15 cluster managed by pg_ctlcluster")
    try:
        failures = pg_restart.drill(5.0)
    finally:
        if not pg_restart.pg_is_up():
            pg_restart.pg("start")
    assert failures == []
