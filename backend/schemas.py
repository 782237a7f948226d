"""Schema building blocks shared by every feature."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from backend.db import utcnow

# Every time the API takes lies in these years: after 1900 (nothing clinical
# is older) and far enough inside 1..9999 that converting any offset to UTC,
# and adding the clinical windows to it, stays representable by Python and both
# databases. A clinical time (a measurement, a dose...) may also not be later
# than the server's clock plus the phone-clock skew allowed here.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text by every database, or None."""
    if "\x00" in value:
        return "NUL characters are not allowed."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Not valid Unicode text (a lone surrogate)."
    return None


# The same rule in the contract, so that generated clients and fuzzers know it.
TEXT_PATTERN = "^[^\\u0000\\ud800-\\udfff]*$"


class Text(fields.String):
    """A string that every database stores as sent: no NUL, no lone surrogate."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"pattern": TEXT_PATTERN, **(kwargs.get("metadata") or {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        out: str = super()._deserialize(value, attr, data, **kwargs)
        message = text_problem(out)
        if message is not None:
            raise ValidationError(message)
        return out


class EmailAddress(Text, fields.Email):
    """An email address under the text rule too: marshmallow's address check
    lets a lone surrogate through in the domain part, which no database stores."""


class Number(fields.Float):
    """A JSON number only: a string such as "1.5", a boolean or a number too large
    for a float is refused (no coercion)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("Not a valid number.")
        try:
            out: float = super()._deserialize(value, attr, data, **kwargs)
        except OverflowError as exc:
            raise ValidationError("The number is too large.") from exc
        return out


class Whole(fields.Integer):
    """A JSON integer only (no "3", no 3.0, no true)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("strict", True)
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("Not a valid integer.")
        out: int = super()._deserialize(value, attr, data, **kwargs)
        return out


class Moment(fields.AwareDateTime):
    """ISO 8601 with an explicit offset, between EARLIEST and LATEST; with
    `clinical=True` also no later than now plus CLOCK_SKEW."""

    def __init__(self, *, clinical: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("format", "iso")
        super().__init__(**kwargs)
        self.clinical = clinical

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str):
            message = text_problem(value)
            if message is not None:
                raise ValidationError(message)
        try:
            out: datetime = super()._deserialize(value, attr, data, **kwargs)
            utc = out.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise ValidationError("Not a valid time.") from exc
        if not EARLIEST <= utc < LATEST:
            raise ValidationError(f"The time must lie between {EARLIEST.year} and {LATEST.year}.")
        if self.clinical and utc > utcnow() + CLOCK_SKEW:
            raise ValidationError("The time is in the future.")
        return out


class StrictSchema(Schema):
    """Unknown fields are an error (mass-assignment protection)."""

    class Meta:
        unknown = RAISE
        ordered = True


def aware_datetime(**kwargs: Any) -> Moment:
    """ISO 8601 with an explicit offset, in plausible years; naive times are refused."""
    return Moment(**kwargs)


def clinical_time(**kwargs: Any) -> Moment:
    """The time something happened to the patient: not after now (plus skew)."""
    return Moment(clinical=True, **kwargs)


class PageArgs(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))
    cursor = Text(load_default=None, validate=validate.Length(max=200))


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
    if not isinstance(values, list) or len(values) != n or any(not isinstance(v, str | int) for v in values):
        raise ValidationError("The cursor is not valid.", field_name="cursor")
    return values


def cursor_time(value: Any) -> datetime:
    """The time inside a decoded cursor, held to the bounds of every time taken."""
    try:
        moment: datetime = Moment().deserialize(value)
    except ValidationError as exc:
        raise ValidationError("The cursor is not valid.", field_name="cursor") from exc
    return moment


class ProblemSchema(Schema):
    """RFC 9457 problem details, the body of every error."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Raw(metadata={"description": "Per-field messages for validation errors"})
    rule = fields.String(
        metadata={
            "description": "The rule that refused the request, e.g. a password rule: length, "
            "common, repetitive, sequential, context, guessable"
        }
    )
    request_id = fields.String()
