from __future__ import annotations

from marshmallow import fields, validate

from backend.clinical.catalog import PRO_CTCAE_SEVERITY, SIDE_EFFECT_TERMS
from backend.schemas import Number, StrictSchema, Text, Whole, clinical_time


class SideEffectItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    onset_at = clinical_time(required=True)
    term = Text(required=True, validate=validate.OneOf(list(SIDE_EFFECT_TERMS)))
    severity = Text(required=True, validate=validate.OneOf(list(PRO_CTCAE_SEVERITY)))
    ctcae_grade = Whole(load_default=None, allow_none=True, validate=validate.Range(min=1, max=5))
    temperature_c = Number(load_default=None, allow_none=True, validate=validate.Range(min=30, max=45))
    antibiotics_started = fields.Boolean(load_default=False)
    sudden = fields.Boolean(
        load_default=False,
        metadata={
            "description": "It came on suddenly (breathlessness: possible pneumothorax, emergency advice)."
        },
    )
    free_text = Text(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class SideEffectOutSchema(StrictSchema):
    id = Text(required=True)
    client_id = Text(required=True)
    onset_at = fields.AwareDateTime(required=True)
    term = Text(required=True)
    severity = Text(required=True)
    ctcae_grade = Whole(allow_none=True)
    temperature_c = Number(allow_none=True)
    antibiotics_started = fields.Boolean(required=True)
    sudden = fields.Boolean(required=True)
    free_text = Text(allow_none=True)
    created_at = fields.AwareDateTime(required=True)


class SideEffectTermSchema(StrictSchema):
    code = Text(required=True)
    ctcae_term = Text(required=True)
    pro_ctcae_item = Text(allow_none=True)
