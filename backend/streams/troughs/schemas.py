from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from backend.clinical.catalog import TROUGH_ASSAY_METHODS
from backend.schemas import StrictSchema, aware_datetime


class TroughItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    drawn_at = aware_datetime(required=True)
    value_ng_ml = fields.Float(required=True, validate=validate.Range(min=0, max=200))
    last_dose_at = aware_datetime(load_default=None, allow_none=True)
    assay_method = fields.String(load_default="unknown", validate=validate.OneOf(TROUGH_ASSAY_METHODS))
    lab_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))

    @validates_schema
    def _dose_before_draw(self, data: dict[str, Any], **_: Any) -> None:
        last = data.get("last_dose_at")
        if last is not None and last > data["drawn_at"]:
            raise ValidationError("The last dose must be before the draw.", "last_dose_at")


class TroughOutSchema(StrictSchema):
    id = fields.String(required=True)
    client_id = fields.String(required=True)
    drawn_at = fields.AwareDateTime(required=True)
    value_ng_ml = fields.Float(required=True)
    last_dose_at = fields.AwareDateTime(allow_none=True)
    assay_method = fields.String(required=True)
    lab_name = fields.String(allow_none=True)
    hours_since_last_dose = fields.Float(allow_none=True)
    days_since_regimen_change = fields.Float(allow_none=True)
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
