from __future__ import annotations

from typing import Any

from backend.alerts.on_ingest import alert_on_duplicate, alert_on_insert
from backend.streams.events.models import LamEvent
from backend.streams.events.schemas import LamEventItemSchema, LamEventOutSchema
from backend.streams.records import StreamSpec


def _to_clinical(row: dict[str, Any]) -> Any:
    from backend.clinical.model import LamEvent as Event

    return Event(id=row["id"], occurred_at=row["occurred_at"], kind=row["kind"])


def _rule(event: Any, thresholds: Any) -> Any:
    from backend.clinical.rules import lam_event_alert

    return lam_event_alert(event, thresholds)


SPEC = StreamSpec(
    name="events",
    model=LamEvent,
    item_schema=LamEventItemSchema,
    out_schema=LamEventOutSchema,
    time_field="occurred_at",
    time_fields=("occurred_at",),
    after_insert=alert_on_insert(_to_clinical, _rule),
    after_duplicate=alert_on_duplicate(_to_clinical, _rule),
    description="LAM events. A pneumothorax or chylothorax raises an urgent alert at once; the "
    "result carries `alert_id` and the `patient_message` the app shows.",
)
