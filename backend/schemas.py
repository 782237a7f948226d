"""Schema building blocks shared by every feature."""

from __future__ import annotations

import base64
import json
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate


class StrictSchema(Schema):
    """Unknown fields are an error (mass-assignment protection)."""

    class Meta:
        unknown = RAISE
        ordered = True


def aware_datetime(**kwargs: Any) -> fields.AwareDateTime:
    """ISO 8601 with an explicit offset; naive times are refused."""
    return fields.AwareDateTime(format="iso", **kwargs)


class PageArgs(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))


class PageSchema(Schema):
    next_cursor = fields.String(allow_none=True)


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, n: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as exc:
        raise ValidationError("The cursor is not valid.", field_name="cursor") from exc
    if not isinstance(values, list) or len(values) != n:
        raise ValidationError("The cursor is not valid.", field_name="cursor")
    return values


class ProblemSchema(Schema):
    """RFC 9457 problem details, the body of every error."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Raw(metadata={"description": "Per-field messages for validation errors"})
    request_id = fields.String()
