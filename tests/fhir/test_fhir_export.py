"""GET /patients/{pid}/fhir: her record as a FHIR R4 Bundle, validated with
fhir.resources (R4B models), for her and her clinicians only, audited."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from backend.audit import AuditEvent
from backend.db import utcnow

FHIR_JSON = "application/fhir+json"


def _fill(patient: Any, clinician: Any) -> None:
    at = (utcnow() - timedelta(days=20)).replace(microsecond=0)
    iso = at.isoformat()
    items = {
        "spirometry": [{"measured_at": iso, "fev1_l": 2.1, "fvc_l": 3.0, "setting": "clinic"}],
        "doses": [
            {"taken_at": iso, "status": "taken", "dose_mg": 2.0},
            {"taken_at": (at + timedelta(days=1)).isoformat(), "status": "missed"},
        ],
        "side-effects": [{"onset_at": iso, "term": "mucositis_oral", "severity": "moderate"}],
    }
    for stream, body in items.items():
        resp = patient.post(
            f"/api/v1/patients/me/{stream}",
            json={"items": [{"client_id": str(uuid.uuid4()), **item} for item in body]},
        )
        assert resp.status_code == 200, resp.get_json()
        assert {r["status"] for r in resp.get_json()["results"]} == {"created"}, resp.get_json()
    by_clinician = {
        "regimens": [
            {"effective_at": (at - timedelta(days=30)).isoformat(), "kind": "start", "daily_dose_mg": 2.0}
        ],
        "troughs": [{"drawn_at": iso, "value_ng_ml": 7.4}],
        "side-effects": [{"onset_at": iso, "term": "rash_acneiform", "severity": "mild", "ctcae_grade": 3}],
    }
    for stream, body in by_clinician.items():
        resp = clinician.post(
            f"/api/v1/patients/{patient.patient_id}/{stream}",
            json={"items": [{"client_id": str(uuid.uuid4()), **item} for item in body]},
        )
        assert resp.status_code == 200, resp.get_json()
        assert {r["status"] for r in resp.get_json()["results"]} == {"created"}, resp.get_json()


def _codes(resource: dict[str, Any], key: str = "code") -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in resource[key]["coding"]}


def test_her_record_is_a_valid_r4_bundle_with_the_standard_codes(
    patient: Any, clinician: Any, db_sessionmaker: Any
) -> None:
    profile = {
        "external_ref": "CLINIC-42",
        "diagnosis_date": "2020-03-01",
        "menopausal_status": "premenopausal",
        "dlco_ml_min_mmhg": 14.5,
        "dlco_percent_predicted": 58.0,
        "dlco_measured_on": "2026-01-15",
        "aml_largest_cm": 3.2,
        "aml_imaging_date": "2025-12-01",
        "chylous_effusion": "pleural",
        "chylous_effusion_symptomatic": True,
        "chylous_effusion_date": "2025-10-10",
    }
    resp = clinician.patch(f"/api/v1/patients/{patient.patient_id}", json=profile)
    assert resp.status_code == 200, resp.get_json()
    _fill(patient, clinician)
    resp = patient.get("/api/v1/patients/me/fhir")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == FHIR_JSON
    body = resp.get_json()
    bundle = Bundle.model_validate(body)
    assert bundle.type == "collection"
    resources = [e["resource"] for e in body["entry"]]
    for entry in body["entry"]:  # each one valid as its own type too
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
        assert entry["fullUrl"] == f"urn:uuid:{entry['resource']['id']}"
        uuid.UUID(entry["resource"]["id"])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)

    [pat] = by_type["Patient"]
    assert pat["id"] == patient.patient_id and "name" not in pat
    assert [i["value"] for i in pat["identifier"]] == ["CLINIC-42"]
    [condition] = by_type["Condition"]
    assert ("http://snomed.info/sct", "277844007") in _codes(condition)
    assert condition["onsetDateTime"] == "2020-03-01"

    coded = [o for o in by_type["Observation"] if "coding" in o["code"]]
    by_text = {o["code"]["text"]: o for o in by_type["Observation"] if "coding" not in o["code"]}
    observations = {next(iter(_codes(o)))[1]: o for o in coded}
    assert set(observations) == {
        "20150-9",
        "20152-5",
        "19868-9",
        "19872-1",
        "19926-5",
        "29247-4",
        "19911-7",
        "98130-8",
    }
    assert all(("http://loinc.org", code) in _codes(o) for code, o in observations.items())
    assert observations["19911-7"]["valueQuantity"] == {
        "value": 14.5,
        "unit": "mL/min/mm[Hg]",
        "system": "http://unitsofmeasure.org",
        "code": "mL/min/mm[Hg]",
    }
    assert observations["19911-7"]["effectiveDateTime"] == "2026-01-15"
    assert observations["98130-8"]["valueQuantity"]["value"] == 58.0
    assert observations["98130-8"]["valueQuantity"]["code"] == "%"
    assert set(by_text) == {"Menopausal status", "Renal angiomyolipoma, largest diameter", "Chylous effusion"}
    assert by_text["Menopausal status"]["valueCodeableConcept"] == {"text": "premenopausal"}
    aml = by_text["Renal angiomyolipoma, largest diameter"]
    assert aml["valueQuantity"]["value"] == 3.2 and aml["valueQuantity"]["code"] == "cm"
    assert aml["effectiveDateTime"] == "2025-12-01"
    chylous = by_text["Chylous effusion"]
    assert chylous["valueCodeableConcept"]["text"] == "pleural (chylothorax)"
    assert chylous["component"] == [{"code": {"text": "Symptomatic"}, "valueBoolean": True}]
    assert chylous["effectiveDateTime"] == "2025-10-10"
    assert observations["20150-9"]["valueQuantity"] == {
        "value": 2.1,
        "unit": "L",
        "system": "http://unitsofmeasure.org",
        "code": "L",
    }
    assert observations["19926-5"]["valueQuantity"]["value"] == 70.0
    assert observations["19926-5"]["valueQuantity"]["code"] == "%"
    assert observations["29247-4"]["valueQuantity"]["value"] == 7.4
    assert observations["29247-4"]["valueQuantity"]["code"] == "ng/mL"
    for o in by_type["Observation"]:
        assert o["subject"]["reference"] == f"urn:uuid:{patient.patient_id}"

    [statement] = by_type["MedicationStatement"]
    assert ("http://www.nlm.nih.gov/research/umls/rxnorm", "35302") in _codes(
        statement, "medicationCodeableConcept"
    )
    assert statement["dosage"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 2.0
    administrations = sorted(by_type["MedicationAdministration"], key=lambda r: r["effectiveDateTime"])
    assert [a["status"] for a in administrations] == ["completed", "not-done"]

    grades = {
        ae["event"]["coding"][0]["code"]: next(
            c["code"] for c in ae["severity"]["coding"] if "CTCAE" in c["system"]
        )
        for ae in by_type["AdverseEvent"]
    }
    assert grades == {"mucositis_oral": "2", "rash_acneiform": "3"}

    # Her clinician gets the same record
    by_clinician = clinician.get(f"/api/v1/patients/{patient.patient_id}/fhir")
    assert by_clinician.status_code == 200
    assert len(by_clinician.get_json()["entry"]) == len(body["entry"])
    with db_sessionmaker() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == "fhir.export")).all()
    assert sorted(r.actor_id for r in rows) == sorted([patient.user_id, clinician.user_id])
    assert {r.patient_id for r in rows} == {patient.patient_id}


def test_nobody_else_gets_it(patient: Any, make_clinician: Any, make_patient: Any, client: Any) -> None:
    other = make_clinician()
    other_patient = make_patient(other)
    for actor in (other, other_patient):
        resp = actor.get(f"/api/v1/patients/{patient.patient_id}/fhir")
        assert resp.status_code == 404 and resp.mimetype == "application/problem+json"
    assert client.get(f"/api/v1/patients/{patient.patient_id}/fhir").status_code == 401
