"""Spirometry sessions: derived at ingest are the ATS/ERS 2019 session grade
(when blows are sent) and GLI Global % predicted, z-score and LLN for FEV1 and FVC
(age at the measurement date, height from the current profile)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from backend.clinical.gli import FEV1, FEV1FVC, FVC, ReferenceInputError, ReferenceValue, age_on, age_problem
from backend.clinical.gli import check_person as gli_check_person
from backend.clinical.gli import prefetch as gli_prefetch
from backend.clinical.gli import references as gli_references
from backend.clinical.grading import Blow, grade_session
from backend.streams.records import IngestContext, StreamSpec
from backend.streams.spirometry.models import SpirometrySession
from backend.streams.spirometry.schemas import SpirometryItemSchema, SpirometryOutSchema


def _apply_blows(row: dict[str, Any]) -> None:
    """With blows, the session's FEV1 and FVC are the largest acceptable values
    (usable ones when none is acceptable), and FEV1/FVC is their ratio (ATS/ERS 2019,
    Graham et al.); the device's own figures are kept as reported."""
    row["reported_fev1_l"], row["reported_fvc_l"] = row["fev1_l"], row["fvc_l"]
    blows = row.get("blows")
    if not blows:
        row["fev1_grade"] = row["fvc_grade"] = row["session_grade"] = None
        return
    grade = grade_session(
        [
            Blow(
                b["fev1_l"], b.get("fvc_l"), b["fev1_acceptable"], b["fvc_acceptable"], b.get("usable", True)
            )
            for b in blows
        ]
    )
    row["fev1_grade"], row["fvc_grade"] = grade.fev1_grade, grade.fvc_grade
    row["session_grade"] = grade.overall
    changed = False
    if grade.best_fev1_l is not None and grade.best_fev1_l != row["fev1_l"]:
        row["fev1_l"], changed = grade.best_fev1_l, True
    if grade.best_fvc_l is not None and grade.best_fvc_l != row["fvc_l"]:
        row["fvc_l"], changed = grade.best_fvc_l, True
    if changed:
        row["fev1_fvc"] = None  # the device's ratio belongs to its own figures


def derive_session_values(ctx: IngestContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    patient = ctx.patient
    zone = ZoneInfo(patient.timezone)
    sex, height, born = patient.sex_at_birth, patient.height_cm, patient.date_of_birth
    for row in rows:
        _apply_blows(row)
        fvc_l = row["fvc_l"]
        if row["fev1_fvc"] is None and fvc_l:
            row["fev1_fvc"] = round(row["fev1_l"] / fvc_l, 3)
    ages = [age_on(born, row["measured_at"].astimezone(zone).date()) for row in rows]
    try:
        gli_check_person(sex_at_birth=sex, height_cm=height)
    except ReferenceInputError as exc:
        for row in rows:
            row["gli_note"] = f"No GLI Global reference: {exc}."
            for prefix in _COLUMNS:
                _put_reference(row, prefix, None)
        return rows
    if len(rows) > 1:
        gli_prefetch(sex, ((age, height) for age in ages))
    measured = {"fev1": "fev1_l", "fvc": "fvc_l", "fev1_fvc": "fev1_fvc"}
    parameters = {"fev1": FEV1, "fvc": FVC, "fev1_fvc": FEV1FVC}
    refs = {
        prefix: gli_references(
            parameters[prefix],
            sex_at_birth=sex,
            height_cm=height,
            points=[(age, row[column] or None) for age, row in zip(ages, rows, strict=True)],
        )
        for prefix, column in measured.items()
    }
    for i, (age, row) in enumerate(zip(ages, rows, strict=True)):
        problem = age_problem(age)
        row["gli_note"] = None if problem is None else f"No GLI Global reference: {problem}."
        for prefix in _COLUMNS:
            _put_reference(row, prefix, refs[prefix][i])
        ratio = row["fev1_fvc_lln"]
        row["fev1_fvc_below_lln"] = None if ratio is None else bool(row["fev1_fvc"] < ratio)
    return rows


_COLUMNS = {
    **{p: (f"{p}_predicted_l", f"{p}_lln_l", f"{p}_pct_predicted", f"{p}_z") for p in ("fev1", "fvc")},
    "fev1_fvc": ("fev1_fvc_predicted", "fev1_fvc_lln", None, "fev1_fvc_z"),
}


def _put_reference(row: dict[str, Any], prefix: str, ref: ReferenceValue | None) -> None:
    predicted, lln, pct, z = _COLUMNS[prefix]
    row[predicted] = None if ref is None else ref.predicted_l
    row[lln] = None if ref is None else ref.lln_l
    row[z] = None if ref is None else ref.z_score
    if pct is not None:
        row[pct] = None if ref is None else ref.percent_predicted


SPEC = StreamSpec(
    name="spirometry",
    model=SpirometrySession,
    item_schema=SpirometryItemSchema,
    out_schema=SpirometryOutSchema,
    time_field="measured_at",
    time_fields=("measured_at",),
    prepare=derive_session_values,
    description="Blows, when sent, are graded (ATS/ERS 2019) and the session's FEV1 and FVC are "
    "the largest acceptable blows (the device's figures are kept in `reported_fev1_l` and "
    "`reported_fvc_l`); FEV1, FVC and FEV1/FVC get GLI Global predicted, z-score and LLN "
    "(`fev1_fvc_below_lln`: obstruction), and `gli_note` says why there is none.",
)
