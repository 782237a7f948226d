"""End to end: a clinician records the clinical profile through the API, the
evaluation pass raises the treatment start criteria alert listing what is met,
refreshes it when the profile changes, and resolves it once sirolimus is started."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.evaluation.runner import evaluate_patients


def _alerts(clinician: Any, pid: str, rule: str = "treatment_start_criteria") -> list[dict[str, Any]]:
    resp = clinician.get(f"/api/v1/alerts?patient_id={pid}&rule={rule}")
    assert resp.status_code == 200, resp.get_json()
    items: list[dict[str, Any]] = resp.get_json()["items"]
    return items


def test_profile_to_pass_to_alert_with_the_criteria_met(
    clinician: Any, patient: Any, db_sessionmaker: sessionmaker[Session], settings: Settings
) -> None:
    pid = patient.patient_id
    now = datetime.now(UTC)
    today = now.date()

    def evaluate(later: timedelta = timedelta(0)) -> None:
        summary = evaluate_patients(
            db_sessionmaker, settings=settings, as_of=datetime.now(UTC) + later, patient_ids=[pid]
        )
        assert summary["errors"] == 0

    # nothing in her profile meets a criterion: no alert
    evaluate()
    assert _alerts(clinician, pid) == []

    resp = clinician.patch(
        f"/api/v1/patients/{pid}",
        json={"aml_largest_cm": 3.5, "aml_imaging_date": (today - timedelta(days=30)).isoformat()},
    )
    assert resp.status_code == 200, resp.get_json()
    evaluate()
    [alert] = _alerts(clinician, pid)
    assert alert["status"] == "open" and alert["severity"] == "review"
    assert alert["numbers"]["criteria_met"] == "large_angiomyolipoma"
    assert alert["numbers"]["aml_largest_cm"] == 3.5
    assert "angiomyolipoma" in alert["explanation"]

    # more criteria: the same episode, its numbers refreshed
    resp = clinician.patch(
        f"/api/v1/patients/{pid}",
        json={
            "lam_type": "tsc",
            "dlco_percent_predicted": 48.0,
            "dlco_ml_min_mmhg": 11.0,
            "dlco_measured_on": (today - timedelta(days=20)).isoformat(),
            "chylous_effusion": "ascites",
            "chylous_effusion_symptomatic": True,
        },
    )
    assert resp.status_code == 200, resp.get_json()
    evaluate()
    [again] = _alerts(clinician, pid)
    assert again["id"] == alert["id"]
    assert again["numbers"]["criteria_met"] == (
        "dlco_below_pct_predicted,symptomatic_chylous_effusion,large_angiomyolipoma,tsc_lam"
    )
    assert again["numbers"]["criteria_count"] == 4
    assert "not from a guideline" in again["explanation"]
    # the former rule id still finds it
    assert [a["id"] for a in _alerts(clinician, pid, "fev1_below_start_criterion")] == [alert["id"]]

    # she starts sirolimus: no longer screened, the alert clears
    start = patient.post(
        "/api/v1/patients/me/regimens",
        json={
            "items": [
                {
                    "client_id": str(uuid.uuid4()),
                    "kind": "start",
                    "daily_dose_mg": 2.0,
                    "effective_at": (now - timedelta(hours=2)).isoformat(),
                }
            ]
        },
    )
    assert start.status_code == 200, start.get_json()
    assert start.get_json()["results"][0]["status"] == "created"
    assert clinician.get(f"/api/v1/patients/{pid}").get_json()["treatment_status"] == "on_sirolimus"
    evaluate()
    [held] = _alerts(clinician, pid)
    assert held["numbers"] == again["numbers"]  # no longer raised, not refreshed
    # once clear for longer than the auto-resolve delay (the clock moved on)
    evaluate(timedelta(days=settings.alert_auto_resolve_after_days + 1))
    [done] = _alerts(clinician, pid)
    assert done["status"] == "resolved"


def test_an_old_dlco_alone_raises_nothing(
    clinician: Any, patient: Any, db_sessionmaker: sessionmaker[Session], settings: Settings
) -> None:
    pid = patient.patient_id
    now = datetime.now(UTC)
    resp = clinician.patch(
        f"/api/v1/patients/{pid}",
        json={
            "dlco_percent_predicted": 45.0,
            "dlco_measured_on": (now.date() - timedelta(days=400)).isoformat(),
        },
    )
    assert resp.status_code == 200, resp.get_json()
    evaluate_patients(db_sessionmaker, settings=settings, as_of=now, patient_ids=[pid])
    assert _alerts(clinician, pid) == []
    assert date.fromisoformat(clinician.get(f"/api/v1/patients/{pid}").get_json()["dlco_measured_on"])
