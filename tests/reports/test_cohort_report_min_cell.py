"""The small-cell threshold is a setting (REPORT_MIN_CELL_SIZE)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from backend.config import Settings
from tests.reports.helpers import seed_treated


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, report_min_cell_size=6)


def test_a_larger_minimum_suppresses_the_group(clinician: Any, db_sessionmaker: Any) -> None:
    team_id = clinician.team_ids[0]
    seed_treated(db_sessionmaker, team_id, n=5, trough=8.0, clinician_id=clinician.user_id)
    body = clinician.get(f"/api/v1/teams/{team_id}/cohort-report").get_json()
    assert body["min_cell_size"] == 6 and body["n_treated"] is None
    band = next(g for g in body["groups"] if g["group"] == "5-10")
    assert band["suppressed"] and band["slopes"] is None and band["n_patients"] is None


def test_the_minimum_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMTRACK_REPORT_MIN_CELL_SIZE", "11")
    assert Settings.from_env().report_min_cell_size == 11
