"""Spirometry sessions: derived at ingest are the ATS/ERS 2019 session grade
(when blows are sent) and GLI Global % predicted, z-score and LLN for FEV1 and FVC
(age at the measurement date, height from the current profile)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from backend.clinical.gli import ReferenceValue, age_on, fev1_reference, fvc_reference
from backend.clinical.gli import prefetch as gli_prefetch
from backend.clinical.grading import Blow, grade_session
from backend.spirometry.models import SpirometrySession
from backend.spirometry.schemas import SpirometryItemSchema, SpirometryOutSchema
from backend.streams import IngestContext, StreamSpec


def derive_session_values(ctx: IngestContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    patient = ctx.patient
    zone = ZoneInfo(patient.timezone)
    ages = [age_on(patient.date_of_birth, row["measured_at"].astimezone(zone).date()) for row in rows]
    if len(rows) > 1:
        gli_prefetch(patient.sex_at_birth, ((age, patient.height_cm) for age in ages))
    for row, age in zip(rows, ages, strict=True):
        if row["fev1_fvc"] is None and row["fvc_l"]:
            row["fev1_fvc"] = round(row["fev1_l"] / row["fvc_l"], 3)
        blows = row.get("blows")
        if blows:
            grade = grade_session([
                Blow(b["fev1_l"], b.get("fvc_l"), b["fev1_acceptable"], b["fvc_acceptable"],
                     b.get("usable", True)) for b in blows])
            row.update(fev1_grade=grade.fev1_grade, fvc_grade=grade.fvc_grade,
                       session_grade=grade.overall)
        else:
            row.update(fev1_grade=None, fvc_grade=None, session_grade=None)
        fev1 = fev1_reference(sex_at_birth=patient.sex_at_birth, age_years=age,
                              height_cm=patient.height_cm, fev1_l=row["fev1_l"])
        fvc = None
        if row["fvc_l"]:
            fvc = fvc_reference(sex_at_birth=patient.sex_at_birth, age_years=age,
                                height_cm=patient.height_cm, fvc_l=row["fvc_l"])
        row.update(_reference_columns("fev1", fev1))
        row.update(_reference_columns("fvc", fvc))
    return rows


def _reference_columns(prefix: str, ref: ReferenceValue | None) -> dict[str, float | None]:
    return {
        f"{prefix}_predicted_l": ref.predicted_l if ref else None,
        f"{prefix}_lln_l": ref.lln_l if ref else None,
        f"{prefix}_pct_predicted": ref.percent_predicted if ref else None,
        f"{prefix}_z": ref.z_score if ref else None,
    }


SPEC = StreamSpec(
    name="spirometry",
    model=SpirometrySession,
    item_schema=SpirometryItemSchema,
    out_schema=SpirometryOutSchema,
    time_field="measured_at",
    time_fields=("measured_at",),
    prepare=derive_session_values,
    description="Blows, when sent, are graded (ATS/ERS 2019); FEV1 and FVC get GLI Global "
    "% predicted, z-score and LLN.",
)
