from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from backend.clinical.catalog import REGIMEN_EVENT_KINDS
from backend.schemas import StrictSchema, aware_datetime


class DoseItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    taken_at = aware_datetime(required=True)
    status = fields.String(load_default="taken", validate=validate.OneOf(["taken", "missed"]))
    dose_mg = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0.1, max=20))


class DoseOutSchema(StrictSchema):
    id = fields.String(required=True)
    client_id = fields.String(required=True)
    taken_at = fields.AwareDateTime(required=True)
    status = fields.String(required=True)
    dose_mg = fields.Float(allow_none=True)
    created_at = fields.AwareDateTime(required=True)


class RegimenItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    effective_at = aware_datetime(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(REGIMEN_EVENT_KINDS))
    daily_dose_mg = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0.1, max=20))
    drug_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))

    @validates_schema
    def _kind_needs(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["kind"]
        if kind in ("start", "dose_change", "resume") and data.get("daily_dose_mg") is None:
            raise ValidationError("Required for a start, resume or dose change.", "daily_dose_mg")
        if kind.startswith("interacting_drug") and not data.get("drug_name"):
            raise ValidationError("Name the interacting drug.", "drug_name")


class RegimenOutSchema(StrictSchema):
    id = fields.String(required=True)
    client_id = fields.String(required=True)
    effective_at = fields.AwareDateTime(required=True)
    kind = fields.String(required=True)
    daily_dose_mg = fields.Float(allow_none=True)
    drug_name = fields.String(allow_none=True)
    interaction = fields.String(
        allow_none=True,
        metadata={
            "description": "inhibitor, inducer or warning (Rapamune label 7.2); unknown: the drug is "
            "not in the catalog, a clinician reviews it"
        },
    )
    recorded_by_role = fields.String(required=True)
    note = fields.String(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
