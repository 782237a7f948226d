"""The clinical profile (menopausal status, diagnosis, DLCO, angiomyolipoma, chylous
effusion) through the real API: defaults, a clinician's edit, what a patient may
not do, and values refused with nothing changed."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

PROBLEM = "application/problem+json"
PROFILE = {
    "menopausal_status": "premenopausal",
    "diagnosis_date": "2019-05-04",
    "dlco_ml_min_mmhg": 14.2,
    "dlco_percent_predicted": 55.0,
    "dlco_measured_on": "2026-06-01",
    "aml_largest_cm": 3.4,
    "aml_imaging_date": "2026-02-10",
    "chylous_effusion": "pleural",
    "chylous_effusion_symptomatic": True,
    "chylous_effusion_date": "2025-11-20",
}


def _get(actor: Any, pid: str) -> dict[str, Any]:
    resp = actor.get(f"/api/v1/patients/{pid}")
    assert resp.status_code == 200, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    return body


def test_a_new_patient_has_the_profile_defaults(clinician: Any, patient: Any) -> None:
    got = _get(clinician, patient.patient_id)
    assert got["menopausal_status"] == "unknown"
    assert got["chylous_effusion"] == "absent"
    assert got["chylous_effusion_symptomatic"] is False
    for name in ("diagnosis_date", "dlco_ml_min_mmhg", "dlco_percent_predicted", "aml_largest_cm"):
        assert got[name] is None


def test_a_clinician_sets_the_profile_and_reads_it_back(clinician: Any, patient: Any) -> None:
    resp = clinician.patch(f"/api/v1/patients/{patient.patient_id}", json=PROFILE)
    assert resp.status_code == 200, resp.get_json()
    assert {k: resp.get_json()[k] for k in PROFILE} == PROFILE
    assert {k: v for k, v in _get(clinician, patient.patient_id).items() if k in PROFILE} == PROFILE
    # the patient sees her own profile
    assert _get(patient, "me")["aml_largest_cm"] == 3.4
    # a value can be cleared again
    resp = clinician.patch(
        f"/api/v1/patients/{patient.patient_id}",
        json={"aml_largest_cm": None, "chylous_effusion": "absent", "chylous_effusion_symptomatic": False},
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["aml_largest_cm"] is None


def test_the_profile_is_set_when_the_patient_is_created(clinician: Any, make_patient: Any) -> None:
    pat = make_patient(clinician, lam_type="tsc", **PROFILE)
    got = _get(clinician, pat.patient_id)
    assert got["lam_type"] == "tsc"
    assert {k: got[k] for k in PROFILE} == PROFILE


@pytest.mark.parametrize("field", list(PROFILE))
def test_a_patient_may_not_change_her_clinical_profile(clinician: Any, patient: Any, field: str) -> None:
    resp = patient.patch("/api/v1/patients/me", json={field: PROFILE[field]})
    assert resp.status_code == 403
    assert resp.mimetype == PROBLEM
    assert _get(clinician, patient.patient_id)[field] in (None, "unknown", "absent", False)


def test_a_clinician_of_another_team_gets_404(clinician: Any, patient: Any, make_clinician: Any) -> None:
    other = make_clinician()
    resp = other.patch(f"/api/v1/patients/{patient.patient_id}", json={"menopausal_status": "postmenopausal"})
    assert resp.status_code == 404
    assert _get(clinician, patient.patient_id)["menopausal_status"] == "unknown"


TOMORROW = (date.today() + timedelta(days=2)).isoformat()  # noqa: DTZ011 - ahead in every zone


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"menopausal_status": "perimenopausal"}, "menopausal_status"),
        ({"chylous_effusion": "pericardial"}, "chylous_effusion"),
        ({"chylous_effusion_symptomatic": "often"}, "chylous_effusion_symptomatic"),
        ({"dlco_percent_predicted": -3}, "dlco_percent_predicted"),
        ({"dlco_ml_min_mmhg": 500}, "dlco_ml_min_mmhg"),
        ({"aml_largest_cm": -1}, "aml_largest_cm"),
        ({"diagnosis_date": "not a date"}, "diagnosis_date"),
        ({"diagnosis_date": TOMORROW}, "diagnosis_date"),
        ({"aml_imaging_date": TOMORROW}, "aml_imaging_date"),
        ({"chylous_effusion_date": TOMORROW}, "chylous_effusion_date"),
        ({"dlco_percent_predicted": 50, "dlco_measured_on": TOMORROW}, "dlco_measured_on"),
        # before her birth (1985-03-02)
        ({"diagnosis_date": "1985-03-01"}, "diagnosis_date"),
        ({"aml_imaging_date": "1970-01-01"}, "aml_imaging_date"),
        # a DLCO value without its date
        ({"dlco_percent_predicted": 50}, "dlco_measured_on"),
        ({"dlco_ml_min_mmhg": 12.0}, "dlco_measured_on"),
        # a symptomatic effusion that is not there
        ({"chylous_effusion_symptomatic": True}, "chylous_effusion_symptomatic"),
    ],
)
def test_bad_values_answer_422_and_change_nothing(
    clinician: Any, patient: Any, change: dict[str, Any], field: str
) -> None:
    before = _get(clinician, patient.patient_id)
    resp = clinician.patch(f"/api/v1/patients/{patient.patient_id}", json=change)
    assert resp.status_code == 422, resp.get_json()
    assert resp.mimetype == PROBLEM
    assert field in str(resp.get_json())
    after = _get(clinician, patient.patient_id)
    assert {k: after[k] for k in PROFILE} == {k: before[k] for k in PROFILE}


def test_a_bad_profile_on_creation_creates_nobody(clinician: Any) -> None:
    body = {
        "care_team_id": clinician.team_ids[0],
        "sex_at_birth": "female",
        "date_of_birth": "1985-03-02",
        "height_cm": 165.0,
        "lam_type": "sporadic",
        "timezone": "Europe/London",
        "diagnosis_date": "1980-01-01",
    }
    resp = clinician.post("/api/v1/patients", json=body)
    assert resp.status_code == 422
    assert resp.mimetype == PROBLEM
    assert "diagnosis_date" in str(resp.get_json())
    assert clinician.get("/api/v1/patients").get_json()["items"] == []


def test_the_recorded_menopausal_status_sets_the_expected_untreated_slope(
    clinician: Any, patient: Any
) -> None:
    def expected() -> Any:
        resp = clinician.get(f"/api/v1/patients/{patient.patient_id}/trend")
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        return body["menopausal_status"], body["expected_untreated_slope_ml_per_year"]

    assert expected() == ("unknown", -89.0)
    clinician.patch(f"/api/v1/patients/{patient.patient_id}", json={"menopausal_status": "premenopausal"})
    assert expected() == ("premenopausal", -118.0)
    clinician.patch(f"/api/v1/patients/{patient.patient_id}", json={"menopausal_status": "postmenopausal"})
    assert expected() == ("postmenopausal", -74.0)


def test_moving_her_time_zone_is_not_refused_for_a_date_that_was_today(
    db_sessionmaker: Any, clinician: Any, patient: Any
) -> None:
    # 2026-03-10 05:00 UTC is 10 March in Auckland but still 9 March in Los Angeles:
    # a diagnosis dated "today" in her old zone must not block the move
    from datetime import UTC, datetime

    from backend.auth.principal import Principal
    from backend.errors import Unprocessable
    from backend.patients.models import Patient
    from backend.patients.services import update_patient

    now = datetime(2026, 3, 10, 5, 0, tzinfo=UTC)
    who = Principal(user_id="clinician", role="clinician")
    with db_sessionmaker.begin() as s:
        p = s.get(Patient, patient.patient_id)
        assert p is not None
        p.timezone = "Pacific/Auckland"
        update_patient(s, principal=who, patient=p, changes={"diagnosis_date": date(2026, 3, 10)}, now=now)
        update_patient(s, principal=who, patient=p, changes={"timezone": "America/Los_Angeles"}, now=now)
        assert (p.timezone, p.diagnosis_date) == ("America/Los_Angeles", date(2026, 3, 10))
        # a profile change in the new zone is checked there: that date is now in the future
        with pytest.raises(Unprocessable, match="does not hold together"):
            update_patient(s, principal=who, patient=p, changes={"menopausal_status": "unknown"}, now=now)
