"""A 500-item batch interrupted by a client disconnect or a worker SIGKILL is
stored whole or not at all, and a retry completes it without duplicates
(scripts/drills/kill_mid_batch.py, against real gunicorn servers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.drills.kill_mid_batch import drill, pg_reachable


def test_interrupted_batch_on_sqlite_is_all_or_nothing() -> None:
    assert drill("sqlite") == []


@pytest.mark.slow
def test_interrupted_batch_on_postgres_is_all_or_nothing() -> None:
    if not pg_reachable():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    assert drill("postgres") == []
