from __future__ import annotations

from marshmallow import fields, validate

from backend.clinical.catalog import LAM_EVENT_KINDS
from backend.schemas import StrictSchema, Text, clinical_time


class LamEventItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    occurred_at = clinical_time(required=True)
    kind = Text(required=True, validate=validate.OneOf(LAM_EVENT_KINDS))
    note = Text(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class LamEventOutSchema(StrictSchema):
    id = Text(required=True)
    client_id = Text(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    kind = Text(required=True)
    note = Text(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
