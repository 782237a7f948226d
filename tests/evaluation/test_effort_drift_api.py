"""Through the API: a patient whose effort slowly worsens (PEF falling faster
than FEV1) gets no confident rapid-decline alert, and her trend says why; a
patient whose FEV1 and PEF fall together (a true decline) still gets one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.evaluation.runner import evaluate_patients

ME = "/api/v1/patients/me"


def _upload(patient: Any, *, effort_drift: bool, now: datetime) -> None:
    """300 days of home sessions, FEV1 falling 150 mL/yr, with PEF."""
    rng = np.random.default_rng(11)
    items = []
    for d in range(300, -1, -1):
        years = (300 - d) / 365.25
        fev1 = 2.5 - 0.150 * years + rng.normal(0.0, 0.06)
        # effort drift: the fall is effort, and PEF loses three times as much as FEV1
        effort = (2.5 - 0.150 * years) / 2.5 if effort_drift else 1.0
        pef = 2.4 * fev1 * effort**2 * np.exp(rng.normal(0.0, 0.04))
        items.append(
            {
                "client_id": str(uuid.uuid4()),
                "measured_at": (now - timedelta(days=d, hours=2)).isoformat(),
                "fev1_l": round(float(fev1), 3),
                "pef_l_s": round(float(pef), 2),
            }
        )
    for k in range(0, len(items), 100):
        resp = patient.post(f"{ME}/spirometry", json={"items": items[k : k + 100]})
        assert resp.status_code == 200, resp.get_json()


def _alert_rules(clinician: Any, pid: str) -> set[str]:
    resp = clinician.get("/api/v1/alerts?status=open")
    assert resp.status_code == 200, resp.get_json()
    return {a["rule"] for a in resp.get_json()["items"] if a["patient_id"] == pid}


def test_effort_drift_gets_a_technique_review_not_a_confident_decline(
    clinician: Any,
    make_patient: Any,
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
) -> None:
    now = datetime.now(UTC)
    drifting = make_patient(clinician)
    declining = make_patient(clinician)
    _upload(drifting, effort_drift=True, now=now)
    _upload(declining, effort_drift=False, now=now)

    trend = clinician.get(f"/api/v1/patients/{drifting.patient_id}/trend").get_json()
    assert trend["slope_ml_per_year"] < -90  # FEV1 alone would be a rapid decline
    assert trend["verdict"] != "rapid_decline"
    assert trend["rapid_decline_withheld"] is True
    assert trend["effort_drift_detected"] is True
    assert trend["effort_drift_pct_per_year"] < -8
    assert trend["effort_drift_ci_high"] < 0
    assert "effort may be worsening" in trend["effort_note"].lower()
    assert "check technique" in trend["effort_note"]
    assert "data-quality review alert" in trend["effort_note"]

    control = clinician.get(f"/api/v1/patients/{declining.patient_id}/trend").get_json()
    assert control["verdict"] == "rapid_decline"
    assert control["rapid_decline_withheld"] is False
    assert control["effort_note"] is None

    evaluate_patients(db_sessionmaker, settings=settings, full=True)
    rules = _alert_rules(clinician, drifting.patient_id)
    assert "rapid_fev1_decline" not in rules
    assert "fev1_effort_drift" in rules
    control_rules = _alert_rules(clinician, declining.patient_id)
    assert "rapid_fev1_decline" in control_rules
    assert "fev1_effort_drift" not in control_rules

    # the threshold is listed with its source, and a team can turn the check off
    listed = clinician.get("/api/v1/rule-thresholds").get_json()
    text = str(listed)
    assert "effort_drift_min_pct_per_year" in text and "Graham et al." in text
