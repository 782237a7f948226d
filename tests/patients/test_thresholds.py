"""How a patient's thresholds are put together from defaults, team and patient."""

from __future__ import annotations

from datetime import date
from typing import Any

from backend.clinical.thresholds import DEFAULT_THRESHOLDS
from backend.patients.models import CareTeam, Patient
from backend.patients.services import thresholds_for


def _patient(session: Any, team_overrides: dict[str, Any], patient_overrides: dict[str, Any]) -> Patient:
    team = CareTeam(name="t", settings={"rule_overrides": team_overrides})
    session.add(team)
    session.flush()
    patient = Patient(
        care_team_id=team.id,
        sex_at_birth="female",
        date_of_birth=date(1980, 1, 1),
        height_cm=160.0,
        lam_type="sporadic",
        timezone="UTC",
        treatment_status="untreated",
        trough_target_low=4.0,
        trough_target_high=9.0,
        rule_overrides=patient_overrides,
    )
    session.add(patient)
    session.flush()
    return patient


def test_patient_overrides_win_over_team_overrides(db_sessionmaker: Any) -> None:
    with db_sessionmaker.begin() as session:
        patient = _patient(
            session,
            {"rapid_decline_ml_per_year": -60.0, "learning_days": 7},
            {"rapid_decline_ml_per_year": -120.0},
        )
        got = thresholds_for(session, patient)
    assert got.rapid_decline_ml_per_year == -120.0
    assert got.learning_days == 7
    assert (got.trough_target_low, got.trough_target_high) == (4.0, 9.0)


def test_an_override_that_no_longer_validates_falls_back_to_defaults(
    db_sessionmaker: Any, caplog: Any
) -> None:
    with db_sessionmaker.begin() as session:
        patient = _patient(session, {}, {"a_rule_that_was_removed": 3})
        got = thresholds_for(session, patient)
    assert got.rapid_decline_ml_per_year == DEFAULT_THRESHOLDS.rapid_decline_ml_per_year
    assert (got.trough_target_low, got.trough_target_high) == (4.0, 9.0)
    assert "rule overrides ignored" in caplog.text
