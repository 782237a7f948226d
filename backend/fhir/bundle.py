"""One patient's record as a FHIR R4 `Bundle` (type collection), built from
plain values: no Flask, no database.

Patient carries no name, only the team's external reference as identifier.
Spirometry and troughs are Observations with LOINC codes and UCUM units,
regimen events MedicationStatements and logged doses MedicationAdministrations
(RxNorm 35302, sirolimus), side effects AdverseEvents with their CTCAE grade,
LAM a Condition (SNOMED CT 277844007), and the clinical profile Observations: DLCO
(LOINC 19911-7) and DLCO % predicted (98130-8); menopausal status, the largest
angiomyolipoma and a chylous effusion with text codes (no standard code is
asserted for them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from backend.clinical.catalog import PRO_CTCAE_SEVERITY, SIDE_EFFECT_TERMS

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
AE_SEVERITY = "http://terminology.hl7.org/CodeSystem/adverse-event-severity"
CTCAE_GRADE = "https://evs.nci.nih.gov/ftp1/CTCAE/CTCAE_5.0#grade"
CTCAE_TERM = "https://evs.nci.nih.gov/ftp1/CTCAE/CTCAE_5.0"
EXTERNAL_REF_SYSTEM = "urn:lamtrack:care-team:{team_id}:external-ref"
LAMTRACK_ID_SYSTEM = "urn:lamtrack:record-id"

SIROLIMUS_RXNORM = "35302"
LAM_SNOMED = "277844007"

# (field of a spirometry session, LOINC code, display, UCUM unit, scale)
SPIROMETRY_CODES: tuple[tuple[str, str, str, str, float], ...] = (
    ("fev1_l", "20150-9", "FEV1", "L", 1.0),
    ("fev1_pct_predicted", "20152-5", "FEV1 measured/predicted", "%", 1.0),
    ("fvc_l", "19868-9", "FVC", "L", 1.0),
    ("fvc_pct_predicted", "19872-1", "FVC measured/predicted", "%", 1.0),
    ("fev1_fvc", "19926-5", "FEV1/FVC", "%", 100.0),
)
TROUGH_LOINC = ("29247-4", "Sirolimus [Mass/volume] in Blood")
# DLCO of the clinical profile, traditional units (UCUM mL/min/mm[Hg])
DLCO_LOINC = ("19911-7", "Diffusion capacity.carbon monoxide")
DLCO_PCT_LOINC = ("98130-8", "Diffusion capacity.carbon monoxide/Predicted")
DLCO_UNIT = "mL/min/mm[Hg]"
CHYLOUS_TEXT = {
    "pleural": "pleural (chylothorax)",
    "ascites": "chylous ascites",
    "both": "pleural and ascites",
}
# Resources derived from one row (five Observations of a spirometry session, the
# LAM Condition of a patient) get stable UUIDs of their own.
DERIVED_NAMESPACE = uuid.UUID("8f1b2d4e-6a3c-4f59-9e7d-1a2b3c4d5e6f")


def derived_id(*parts: str) -> str:
    return str(uuid.uuid5(DERIVED_NAMESPACE, ":".join(parts)))


@dataclass(frozen=True)
class PatientRecord:
    """Everything exported for one patient (rows as read, by attribute)."""

    patient: Any
    spirometry: Sequence[Any] = ()
    troughs: Sequence[Any] = ()
    regimens: Sequence[Any] = ()
    doses: Sequence[Any] = ()
    side_effects: Sequence[Any] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _when(moment: datetime | date) -> str:
    return moment.isoformat()


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": round(float(value), 4), "unit": unit, "system": UCUM, "code": unit}


def _category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [_coding(OBSERVATION_CATEGORY, code)]}]


def _sirolimus() -> dict[str, Any]:
    return {"coding": [_coding(RXNORM, SIROLIMUS_RXNORM, "sirolimus")], "text": "sirolimus"}


def _identifier(row_id: str) -> list[dict[str, Any]]:
    return [{"system": LAMTRACK_ID_SYSTEM, "value": row_id}]


def patient_resource(patient: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": patient.id, "active": True}
    if patient.external_ref:
        system = EXTERNAL_REF_SYSTEM.format(team_id=patient.care_team_id)
        resource["identifier"] = [{"use": "secondary", "system": system, "value": patient.external_ref}]
    resource["gender"] = {"female": "female", "male": "male"}.get(patient.sex_at_birth, "unknown")
    resource["birthDate"] = patient.date_of_birth.isoformat()
    return resource


def lam_condition(patient: Any, subject: dict[str, str]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": derived_id(patient.id, "lam"),
        "clinicalStatus": {
            "coding": [_coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")]
        },
        "verificationStatus": {
            "coding": [_coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed")]
        },
        "code": {
            "coding": [_coding(SNOMED, LAM_SNOMED, "Lymphangioleiomyomatosis")],
            "text": f"Lymphangioleiomyomatosis ({patient.lam_type})",
        },
        "subject": subject,
    }
    if patient.diagnosis_date is not None:
        resource["onsetDateTime"] = patient.diagnosis_date.isoformat()
    return resource


def _profile_observation(
    patient: Any, subject: dict[str, str], key: str, code: dict[str, Any], when: date | None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": derived_id(patient.id, key),
        "status": "final",
        "category": _category("exam"),
        "code": code,
        "subject": subject,
    }
    if when is not None:
        resource["effectiveDateTime"] = _when(when)
    return resource


def profile_observations(patient: Any, subject: dict[str, str]) -> Iterable[dict[str, Any]]:
    """The clinical profile the care team recorded, where recorded."""
    for value, (code, display), unit in (
        (patient.dlco_ml_min_mmhg, DLCO_LOINC, DLCO_UNIT),
        (patient.dlco_percent_predicted, DLCO_PCT_LOINC, "%"),
    ):
        if value is not None:
            coded = {"coding": [_coding(LOINC, code, display)], "text": display}
            resource = _profile_observation(patient, subject, code, coded, patient.dlco_measured_on)
            resource["valueQuantity"] = _quantity(value, unit)
            yield resource
    if patient.menopausal_status != "unknown":
        resource = _profile_observation(patient, subject, "menopause", {"text": "Menopausal status"}, None)
        resource["category"] = _category("social-history")
        resource["valueCodeableConcept"] = {"text": patient.menopausal_status}
        yield resource
    if patient.aml_largest_cm is not None:
        resource = _profile_observation(
            patient,
            subject,
            "aml",
            {"text": "Renal angiomyolipoma, largest diameter"},
            patient.aml_imaging_date,
        )
        resource["category"] = _category("imaging")
        resource["valueQuantity"] = _quantity(patient.aml_largest_cm, "cm")
        yield resource
    if patient.chylous_effusion != "absent":
        resource = _profile_observation(
            patient, subject, "chylous", {"text": "Chylous effusion"}, patient.chylous_effusion_date
        )
        where = {
            "pleural": "pleural (chylothorax)",
            "ascites": "chylous ascites",
            "both": "pleural and ascites",
        }
        resource["valueCodeableConcept"] = {
            "text": where.get(patient.chylous_effusion, patient.chylous_effusion)
        }
        resource["component"] = [
            {"code": {"text": "Symptomatic"}, "valueBoolean": bool(patient.chylous_effusion_symptomatic)}
        ]
        yield resource


def spirometry_observations(row: Any, subject: dict[str, str]) -> Iterable[dict[str, Any]]:
    for attr, code, display, unit, scale in SPIROMETRY_CODES:
        value = getattr(row, attr)
        if value is None:
            continue
        yield {
            "resourceType": "Observation",
            "id": derived_id(row.id, code),
            "identifier": _identifier(row.id),
            "status": "final",
            "category": _category("exam"),
            "code": {"coding": [_coding(LOINC, code, display)], "text": display},
            "subject": subject,
            "effectiveDateTime": _when(row.measured_at),
            "valueQuantity": _quantity(value * scale, unit),
            "method": {"text": f"spirometry ({row.setting})"},
        }


def trough_observation(row: Any, subject: dict[str, str]) -> dict[str, Any]:
    code, display = TROUGH_LOINC
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": row.id,
        "status": "final",
        "category": _category("laboratory"),
        "code": {"coding": [_coding(LOINC, code, display)], "text": "Sirolimus trough"},
        "subject": subject,
        "effectiveDateTime": _when(row.drawn_at),
        "valueQuantity": _quantity(row.value_ng_ml, "ng/mL"),
    }
    notes = []
    if getattr(row, "not_true_trough", False):
        notes.append("not a true trough (drawn outside the trough window)")
    if getattr(row, "before_steady_state", False):
        notes.append("drawn before steady state")
    if notes:
        resource["note"] = [{"text": "; ".join(notes)}]
    return resource


_STATEMENT_STATUS = {
    "start": "active",
    "dose_change": "active",
    "resume": "active",
    "interruption": "on-hold",
    "stop": "stopped",
    "interacting_drug_start": "active",
    "interacting_drug_stop": "stopped",
}


def medication_statement(row: Any, subject: dict[str, str]) -> dict[str, Any]:
    drug = row.drug_name or "sirolimus"
    medication = _sirolimus() if drug.lower() == "sirolimus" else {"text": drug}
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": row.id,
        "status": _STATEMENT_STATUS.get(row.kind, "unknown"),
        "medicationCodeableConcept": medication,
        "subject": subject,
        "effectiveDateTime": _when(row.effective_at),
        "statusReason": [{"text": row.kind}],
    }
    if row.daily_dose_mg is not None:
        resource["dosage"] = [
            {
                "text": f"{row.daily_dose_mg:g} mg once daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": _quantity(row.daily_dose_mg, "mg")}],
            }
        ]
    if getattr(row, "note", None):
        resource["note"] = [{"text": row.note}]
    return resource


def medication_administration(row: Any, subject: dict[str, str]) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": row.id,
        "status": "completed" if row.status == "taken" else "not-done",
        "medicationCodeableConcept": _sirolimus(),
        "subject": subject,
        "effectiveDateTime": _when(row.taken_at),
    }
    if row.dose_mg is not None:
        resource["dosage"] = {"dose": _quantity(row.dose_mg, "mg")}
    return resource


def adverse_event(row: Any, subject: dict[str, str]) -> dict[str, Any]:
    term = SIDE_EFFECT_TERMS.get(row.term)
    name = term.ctcae_term if term else row.term
    grade = row.ctcae_grade if row.ctcae_grade is not None else PRO_CTCAE_SEVERITY.get(row.severity)
    severity = {1: "mild", 2: "moderate"}.get(grade or 0, "severe") if grade else None
    resource: dict[str, Any] = {
        "resourceType": "AdverseEvent",
        "id": row.id,
        "actuality": "actual",
        "event": {"coding": [_coding(CTCAE_TERM, row.term, name)], "text": name},
        "subject": subject,
        "date": _when(row.onset_at),
        "suspectEntity": [{"instance": {"display": "sirolimus"}}],
    }
    codings = []
    if severity:
        codings.append(_coding(AE_SEVERITY, severity))
    if grade:
        source = (
            "clinician CTCAE grade" if row.ctcae_grade is not None else f"patient-reported {row.severity}"
        )
        codings.append(_coding(CTCAE_GRADE, str(grade), f"CTCAE grade {grade} ({source})"))
    if codings:
        resource["severity"] = {"coding": codings, "text": f"CTCAE grade {grade}" if grade else None}
    return resource


def patient_bundle(record: PatientRecord, *, bundle_id: str, timestamp: datetime) -> dict[str, Any]:
    """The Bundle (as JSON-ready data) of one patient's record."""
    patient = record.patient
    subject = {"reference": f"urn:uuid:{patient.id}"}
    resources: list[dict[str, Any]] = [patient_resource(patient), lam_condition(patient, subject)]
    resources.extend(profile_observations(patient, subject))
    for row in record.spirometry:
        resources.extend(spirometry_observations(row, subject))
    resources.extend(trough_observation(r, subject) for r in record.troughs)
    resources.extend(medication_statement(r, subject) for r in record.regimens)
    resources.extend(medication_administration(r, subject) for r in record.doses)
    resources.extend(adverse_event(r, subject) for r in record.side_effects)
    for resource in resources:
        if resource.get("severity", {}).get("text", "") is None:
            del resource["severity"]["text"]
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": _when(timestamp),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }
