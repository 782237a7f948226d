from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from backend.alerts.on_ingest import InsertContext, alert_on_duplicate, alert_on_insert
from backend.patients.services import thresholds_for
from backend.streams.records import StreamSpec
from backend.streams.side_effects.models import SideEffectReport
from backend.streams.side_effects.schemas import SideEffectItemSchema, SideEffectOutSchema


def _to_clinical(row: dict[str, Any]) -> Any:
    from backend.clinical.model import SideEffectReport as Report

    return Report(
        id=row["id"],
        onset_at=row["onset_at"],
        term=row["term"],
        severity=row["severity"],
        ctcae_grade=row["ctcae_grade"],
        temperature_c=row["temperature_c"],
        antibiotics_started=row["antibiotics_started"],
        sudden=bool(row.get("sudden", False)),
    )


def _recent(ctx: InsertContext, rows: list[dict[str, Any]]) -> list[Any]:
    """The patient's other reports in the symptom window before the earliest new one
    (fever or breathlessness reported separately from a cough or infection)."""
    if not rows:
        return []
    window = timedelta(days=thresholds_for(ctx.session, ctx.patient).symptom_window_days)
    first = min(r["onset_at"] for r in rows) - window
    last = max(r["onset_at"] for r in rows)
    stored = ctx.session.scalars(
        select(SideEffectReport).where(
            SideEffectReport.patient_id == ctx.patient.id,
            SideEffectReport.deleted_at.is_(None),
            SideEffectReport.onset_at >= first,
            SideEffectReport.onset_at <= last,
        )
    )
    keys = (
        "id",
        "onset_at",
        "term",
        "severity",
        "ctcae_grade",
        "temperature_c",
        "antibiotics_started",
        "sudden",
    )
    return [_to_clinical({k: getattr(r, k) for k in keys}) for r in stored]


def _rule(report: Any, thresholds: Any, recent: list[Any]) -> Any:
    from backend.clinical.rules import side_effect_alert

    return side_effect_alert(report, thresholds, recent)


SPEC = StreamSpec(
    name="side-effects",
    model=SideEffectReport,
    item_schema=SideEffectItemSchema,
    out_schema=SideEffectOutSchema,
    time_field="onset_at",
    time_fields=("onset_at",),
    after_insert=alert_on_insert(_to_clinical, _rule, recent=_recent),
    after_duplicate=alert_on_duplicate(_to_clinical, _rule, recent=_recent),
    description="Terms from the catalog (GET /side-effect-terms). A report that needs the care "
    "team the same day raises an alert at once; its result carries `alert_id` and the "
    "`patient_message` the app shows.",
)
