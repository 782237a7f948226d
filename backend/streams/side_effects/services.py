from __future__ import annotations

from typing import Any

from backend.alerts.on_ingest import alert_on_duplicate, alert_on_insert
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
    )


def _rule(report: Any, thresholds: Any) -> Any:
    from backend.clinical.rules import side_effect_alert

    return side_effect_alert(report, thresholds)


SPEC = StreamSpec(
    name="side-effects",
    model=SideEffectReport,
    item_schema=SideEffectItemSchema,
    out_schema=SideEffectOutSchema,
    time_field="onset_at",
    time_fields=("onset_at",),
    after_insert=alert_on_insert(_to_clinical, _rule),
    after_duplicate=alert_on_duplicate(_to_clinical, _rule),
    description="Terms from the catalog (GET /side-effect-terms). A report that needs the care "
    "team the same day raises an alert at once; its result carries `alert_id` and the "
    "`patient_message` the app shows.",
)
