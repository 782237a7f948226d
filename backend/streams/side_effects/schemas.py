from __future__ import annotations

from marshmallow import fields, validate

from backend.clinical.catalog import PRO_CTCAE_SEVERITY, SIDE_EFFECT_TERMS
from backend.schemas import StrictSchema, aware_datetime


class SideEffectItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    onset_at = aware_datetime(required=True)
    term = fields.String(required=True, validate=validate.OneOf(list(SIDE_EFFECT_TERMS)))
    severity = fields.String(required=True, validate=validate.OneOf(list(PRO_CTCAE_SEVERITY)))
    ctcae_grade = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=5))
    temperature_c = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=30, max=45))
    antibiotics_started = fields.Boolean(load_default=False)
    sudden = fields.Boolean(
        load_default=False,
        metadata={
            "description": "It came on suddenly (breathlessness: possible pneumothorax, emergency advice)."
        },
    )
    free_text = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class SideEffectOutSchema(StrictSchema):
    id = fields.String(required=True)
    client_id = fields.String(required=True)
    onset_at = fields.AwareDateTime(required=True)
    term = fields.String(required=True)
    severity = fields.String(required=True)
    ctcae_grade = fields.Integer(allow_none=True)
    temperature_c = fields.Float(allow_none=True)
    antibiotics_started = fields.Boolean(required=True)
    sudden = fields.Boolean(required=True)
    free_text = fields.String(allow_none=True)
    created_at = fields.AwareDateTime(required=True)


class SideEffectTermSchema(StrictSchema):
    code = fields.String(required=True)
    ctcae_term = fields.String(required=True)
    pro_ctcae_item = fields.String(allow_none=True)
