from __future__ import annotations

from marshmallow import fields, validate

from backend.clinical.catalog import LAM_EVENT_KINDS
from backend.schemas import StrictSchema, aware_datetime


class LamEventItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    occurred_at = aware_datetime(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(LAM_EVENT_KINDS))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


class LamEventOutSchema(StrictSchema):
    id = fields.String(required=True)
    client_id = fields.String(required=True)
    occurred_at = fields.AwareDateTime(required=True)
    kind = fields.String(required=True)
    note = fields.String(allow_none=True)
    created_at = fields.AwareDateTime(required=True)
