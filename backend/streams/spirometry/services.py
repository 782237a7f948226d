"""Spirometry sessions: derived at ingest are the ATS/ERS 2019 session grade
(when blows are sent) and GLI Global % predicted, z-score and LLN for FEV1 and FVC
(age at the measurement date, height from the current profile)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from backend.clinical.gli import FEV1, FVC, ReferenceValue, age_on
from backend.clinical.gli import prefetch as gli_prefetch
from backend.clinical.gli import references as gli_references
from backend.clinical.grading import Blow, grade_session
from backend.streams.records import IngestContext, StreamSpec
from backend.streams.spirometry.models import SpirometrySession
from backend.streams.spirometry.schemas import SpirometryItemSchema, SpirometryOutSchema


def derive_session_values(ctx: IngestContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    patient = ctx.patient
    zone = ZoneInfo(patient.timezone)
    sex, height, born = patient.sex_at_birth, patient.height_cm, patient.date_of_birth
    ages = [age_on(born, row["measured_at"].astimezone(zone).date()) for row in rows]
    if len(rows) > 1:
        gli_prefetch(sex, ((age, height) for age in ages))
    pairs = list(zip(ages, rows, strict=True))
    fev1_refs = gli_references(
        FEV1, sex_at_birth=sex, height_cm=height, points=[(age, row["fev1_l"]) for age, row in pairs]
    )
    fvc_refs = gli_references(
        FVC, sex_at_birth=sex, height_cm=height, points=[(age, row["fvc_l"] or None) for age, row in pairs]
    )
    for row, fev1, fvc in zip(rows, fev1_refs, fvc_refs, strict=True):
        fvc_l = row["fvc_l"]
        if row["fev1_fvc"] is None and fvc_l:
            row["fev1_fvc"] = round(row["fev1_l"] / fvc_l, 3)
        blows = row.get("blows")
        if blows:
            grade = grade_session(
                [
                    Blow(
                        b["fev1_l"],
                        b.get("fvc_l"),
                        b["fev1_acceptable"],
                        b["fvc_acceptable"],
                        b.get("usable", True),
                    )
                    for b in blows
                ]
            )
            row["fev1_grade"], row["fvc_grade"] = grade.fev1_grade, grade.fvc_grade
            row["session_grade"] = grade.overall
        else:
            row["fev1_grade"] = row["fvc_grade"] = row["session_grade"] = None
        _put_reference(row, "fev1", fev1)
        _put_reference(row, "fvc", fvc)
    return rows


_COLUMNS = {p: (f"{p}_predicted_l", f"{p}_lln_l", f"{p}_pct_predicted", f"{p}_z") for p in ("fev1", "fvc")}


def _put_reference(row: dict[str, Any], prefix: str, ref: ReferenceValue | None) -> None:
    predicted, lln, pct, z = _COLUMNS[prefix]
    if ref is None:
        row[predicted] = row[lln] = row[pct] = row[z] = None
    else:
        row[predicted], row[lln] = ref.predicted_l, ref.lln_l
        row[pct], row[z] = ref.percent_predicted, ref.z_score


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
