"""`GET /patients/{pid}/reminders`: trough draws and readings, in the patient's zone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def post(actor: Any, pid: str, stream: str, **item: Any) -> None:
    resp = actor.post(
        f"/api/v1/patients/{pid}/{stream}", json={"items": [{"client_id": str(uuid.uuid4()), **item}]}
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["results"][0]["status"] == "created", resp.get_json()


def test_trough_draw_due_in_the_patients_time_zone(clinician: Any, make_patient: Any) -> None:
    patient = make_patient(clinician, timezone="Australia/Sydney", treatment_status="on_sirolimus")
    zone = ZoneInfo("Australia/Sydney")
    started = datetime.now(UTC) - timedelta(days=12)
    post(
        clinician,
        patient.patient_id,
        "regimens",
        effective_at=started.isoformat(),
        kind="start",
        daily_dose_mg=2.0,
    )
    post(patient, "me", "spirometry", measured_at=datetime.now(UTC).isoformat(), fev1_l=2.4)

    body = patient.get("/api/v1/patients/me/reminders").get_json()
    assert body["timezone"] == "Australia/Sydney"
    assert body["next_cursor"] is None
    [reminder] = body["items"]
    anchor = started.astimezone(zone).date()
    assert reminder["kind"] == "trough_draw"
    assert reminder["status"] == "due"
    assert reminder["reason"] == "start"
    assert reminder["window_start"] == (anchor + timedelta(days=10)).isoformat()
    assert reminder["window_end"] == (anchor + timedelta(days=20)).isoformat()
    assert reminder["due_date"] == (anchor + timedelta(days=14)).isoformat()
    assert "before your next dose" in reminder["message"]
    # The care team sees the same.
    same = clinician.get(f"/api/v1/patients/{patient.patient_id}/reminders").get_json()
    assert same["items"] == body["items"]

    # Once the trough is drawn, nothing is due until the maintenance window.
    post(
        clinician,
        patient.patient_id,
        "troughs",
        drawn_at=datetime.now(UTC).isoformat(),
        value_ng_ml=7.1,
        assay_method="lc_ms_ms",
    )
    assert patient.get("/api/v1/patients/me/reminders").get_json()["items"] == []


def test_upcoming_draw_and_overdue_readings(clinician: Any, make_patient: Any) -> None:
    patient = make_patient(clinician, treatment_status="on_sirolimus", expected_sessions_per_week=7)
    post(
        clinician,
        patient.patient_id,
        "regimens",
        effective_at=(datetime.now(UTC) - timedelta(days=4)).isoformat(),
        kind="start",
        daily_dose_mg=1.0,
    )
    post(
        patient,
        "me",
        "spirometry",
        measured_at=(datetime.now(UTC) - timedelta(days=5)).isoformat(),
        fev1_l=2.1,
    )

    items = {r["kind"]: r for r in patient.get("/api/v1/patients/me/reminders").get_json()["items"]}
    assert items["trough_draw"]["status"] == "upcoming"
    assert items["readings"]["status"] == "overdue"


def test_reminders_of_someone_else_are_not_found(
    clinician: Any,
    make_clinician: Any,
    make_patient: Any,
    patient: Any,
) -> None:
    other = make_patient(clinician)
    assert patient.get(f"/api/v1/patients/{other.patient_id}/reminders").status_code == 404
    stranger = make_clinician()
    resp = stranger.get(f"/api/v1/patients/{patient.patient_id}/reminders")
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/problem+json"


def test_on_sirolimus_by_profile_without_a_logged_start_is_prompted(
    clinician: Any, make_patient: Any
) -> None:
    patient = make_patient(clinician, treatment_status="on_sirolimus", timezone="Europe/Paris")
    post(patient, "me", "spirometry", measured_at=datetime.now(UTC).isoformat(), fev1_l=2.4)
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Paris")).date()
    [reminder] = patient.get("/api/v1/patients/me/reminders").get_json()["items"]
    assert (reminder["kind"], reminder["status"], reminder["reason"]) == ("trough_draw", "due", "maintenance")
    assert reminder["window_start"] == today.isoformat()
    assert reminder["due_date"] == (today + timedelta(days=14)).isoformat()
    schedule = clinician.get(f"/api/v1/patients/{patient.patient_id}/trough-schedule").get_json()
    assert [(i["reason"], i["status"]) for i in schedule["items"]] == [("maintenance", "due")]
    # an untreated patient is not prompted
    untreated = make_patient(clinician, treatment_status="untreated")
    post(untreated, "me", "spirometry", measured_at=datetime.now(UTC).isoformat(), fev1_l=2.4)
    assert untreated.get("/api/v1/patients/me/reminders").get_json()["items"] == []


def test_a_late_draw_is_not_reported_as_missed(clinician: Any, make_patient: Any) -> None:
    patient = make_patient(clinician, treatment_status="on_sirolimus")
    now = datetime.now(UTC)
    post(
        clinician,
        patient.patient_id,
        "regimens",
        effective_at=(now - timedelta(days=40)).isoformat(),
        kind="dose_change",
        daily_dose_mg=2.0,
    )
    post(patient, "me", "spirometry", measured_at=now.isoformat(), fev1_l=2.4)
    [before] = patient.get("/api/v1/patients/me/reminders").get_json()["items"]
    assert before["status"] == "missed"  # window days 7-21, missed after day 28
    post(
        clinician,
        patient.patient_id,
        "troughs",
        drawn_at=(now - timedelta(days=1)).isoformat(),
        value_ng_ml=7.1,
        last_dose_at=(now - timedelta(days=2)).isoformat(),
        assay_method="lc_ms_ms",
    )
    assert patient.get("/api/v1/patients/me/reminders").get_json()["items"] == []
    items = clinician.get(f"/api/v1/patients/{patient.patient_id}/trough-schedule").get_json()["items"]
    assert [(i["reason"], i["status"], i["late"]) for i in items] == [
        ("dose_change", "done", True),
        ("maintenance", "upcoming", False),
    ]
