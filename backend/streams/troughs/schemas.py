from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from backend.clinical.catalog import TROUGH_ASSAY_METHODS
from backend.schemas import Number, StrictSchema, Text, clinical_time


class TroughItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    drawn_at = clinical_time(required=True)
    value_ng_ml = Number(required=True, validate=validate.Range(min=0, max=200))
    last_dose_at = clinical_time(load_default=None, allow_none=True)
    assay_method = Text(load_default="unknown", validate=validate.OneOf(TROUGH_ASSAY_METHODS))
    lab_name = Text(load_default=None, allow_none=True, validate=validate.Length(max=200))

    @validates_schema
    def _dose_before_draw(self, data: dict[str, Any], **_: Any) -> None:
        last = data.get("last_dose_at")
        if last is not None and last > data["drawn_at"]:
            raise ValidationError("The last dose must be before the draw.", "last_dose_at")


class TroughOutSchema(StrictSchema):
    id = Text(required=True)
    client_id = Text(required=True)
    drawn_at = fields.AwareDateTime(required=True)
    value_ng_ml = Number(required=True)
    last_dose_at = fields.AwareDateTime(allow_none=True)
    assay_method = Text(required=True)
    lab_name = Text(allow_none=True)
    hours_since_last_dose = Number(allow_none=True)
    days_since_regimen_change = Number(allow_none=True)
    not_true_trough = fields.Boolean(required=True)
    before_steady_state = fields.Boolean(required=True)
    last_dose_unknown = fields.Boolean(
        required=True,
        metadata={
            "description": "No last-dose time was sent or logged before the draw: whether this "
            "is a true trough (20-28 h after a dose) is unknown"
        },
    )
    created_at = fields.AwareDateTime(required=True)
