from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from backend.clinical.catalog import REGIMEN_EVENT_KINDS
from backend.schemas import Number, StrictSchema, Text, clinical_time


class DoseItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    taken_at = clinical_time(required=True)
    status = Text(load_default="taken", validate=validate.OneOf(["taken", "missed"]))
    dose_mg = Number(load_default=None, allow_none=True, validate=validate.Range(min=0.1, max=20))


class DoseOutSchema(StrictSchema):
    id = Text(required=True)
    client_id = Text(required=True)
    taken_at = fields.AwareDateTime(required=True)
    status = Text(required=True)
    dose_mg = Number(allow_none=True)
    created_at = fields.AwareDateTime(required=True)


class RegimenItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    effective_at = clinical_time(required=True)
    kind = Text(required=True, validate=validate.OneOf(REGIMEN_EVENT_KINDS))
    daily_dose_mg = Number(load_default=None, allow_none=True, validate=validate.Range(min=0.1, max=20))
    drug_name = Text(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    note = Text(load_default=None, allow_none=True, validate=validate.Length(max=500))

    @validates_schema
    def _kind_needs(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["kind"]
        if kind in ("start", "dose_change", "resume") and data.get("daily_dose_mg") is None:
            raise ValidationError("Required for a start, resume or dose change.", "daily_dose_mg")
        if kind.startswith("interacting_drug") and not data.get("drug_name"):
            raise ValidationError("Name the interacting drug.", "drug_name")


class RegimenOutSchema(StrictSchema):
    id = Text(required=True)
    client_id = Text(required=True)
    effective_at = fields.AwareDateTime(required=True)
    kind = Text(required=True)
    daily_dose_mg = Number(allow_none=True)
    drug_name = Text(allow_none=True)
    interaction = Text(
        allow_none=True,
        metadata={
            "description": "inhibitor, inducer or warning (Rapamune label 7.2); unknown: the drug is "
            "not in the catalog, a clinician reviews it"
        },
    )
    recorded_by_role = Text(required=True)
    note = Text(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
