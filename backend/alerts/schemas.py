from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from backend.alerts.models import ALERT_SEVERITIES, ALERT_STATUSES
from backend.clinical.model import RULE_IDS
from backend.schemas import (
    Number,
    PageArgs,
    PageSchema,
    StrictSchema,
    Text,
    aware_datetime,
)


class AlertListArgs(PageArgs):
    patient_id = Text(validate=validate.Length(max=36))
    rule = Text(validate=validate.OneOf(RULE_IDS))
    severity = Text(validate=validate.OneOf(ALERT_SEVERITIES))
    status = Text(validate=validate.OneOf(ALERT_STATUSES))


class PatientAlertListArgs(PageArgs):
    status = Text(validate=validate.OneOf(ALERT_STATUSES))


class AlertEventSchema(Schema):
    at = fields.AwareDateTime(required=True)
    action = Text(required=True)
    actor_id = Text(allow_none=True)
    from_status = Text(allow_none=True)
    to_status = Text(required=True)
    note = Text(allow_none=True)


class AlertSchema(Schema):
    """An alert. Patients see only id, rule, severity, status, opened_at and
    patient_message; clinicians see every field."""

    id = Text(required=True)
    rule = Text(required=True)
    severity = Text(required=True)
    status = Text(required=True)
    opened_at = fields.AwareDateTime(
        required=True, metadata={"description": "The as-of time of the evaluation that raised it"}
    )
    patient_message = Text(allow_none=True)
    patient_id = Text()
    care_team_id = Text()
    episode_key = Text()
    source = Text(metadata={"description": "evaluation | event"})
    last_seen_at = fields.AwareDateTime()
    numbers = fields.Dict(keys=Text(), metadata={"description": "The numbers behind it"})
    explanation = Text()
    acknowledged_by = Text(allow_none=True)
    acknowledged_at = fields.AwareDateTime(allow_none=True)
    snoozed_until = fields.AwareDateTime(allow_none=True)
    resolved_by = Text(allow_none=True)
    resolved_at = fields.AwareDateTime(allow_none=True)
    resolution_note = Text(allow_none=True)
    last_notified_at = fields.AwareDateTime(allow_none=True)
    notify_count = fields.Integer()


class AlertDetailSchema(AlertSchema):
    history = fields.List(fields.Nested(AlertEventSchema), required=True)


class AlertPageSchema(PageSchema):
    items = fields.List(fields.Nested(AlertSchema), required=True)


class AlertNoteSchema(StrictSchema):
    note = Text(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class AlertSnoozeSchema(AlertNoteSchema):
    until = aware_datetime(load_default=None, allow_none=True)
    hours = Number(load_default=None, allow_none=True, validate=validate.Range(min=0.25, max=90 * 24))

    @validates_schema
    def _until_or_hours(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("until") is None) == (data.get("hours") is None):
            raise ValidationError("Give exactly one of until or hours.", "until")
