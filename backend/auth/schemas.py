from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from backend.auth.passwords import MIN_PASSWORD_LENGTH
from backend.schemas import EmailAddress, StrictSchema, Text


def _encodable(value: str) -> None:
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValidationError("Lone surrogates are not allowed.")


class LoginSchema(StrictSchema):
    email = EmailAddress(required=True, validate=validate.Length(max=320))
    # Any text a password could be is accepted here (a NUL simply matches no stored
    # password: 401 like any wrong password); only what cannot be encoded is refused.
    password = fields.String(
        required=True,
        load_only=True,
        validate=[validate.Length(min=1, max=1024), _encodable],
        metadata={"pattern": "^[^\\ud800-\\udfff]*$"},
    )


class RegisterSchema(StrictSchema):
    invite_code = Text(required=True, validate=validate.Length(min=1, max=64))
    email = EmailAddress(required=True, validate=validate.Length(max=320))
    # The rule the account services enforce (`check_password_strength`), stated here
    # so that the document and generated clients know it.
    password = Text(
        required=True,
        load_only=True,
        validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024),
        metadata={
            "description": f"At least {MIN_PASSWORD_LENGTH} characters, at most 1024. Refused with 422 "
            "naming the rule (`rule`: common, repetitive, sequential, context, guessable) when it is "
            "a common or breached password, repeated or sequential characters, mostly the service's "
            "name or the email, or otherwise easy to guess (NIST SP 800-63B 5.1.1.2)."
        },
    )


class RefreshSchema(StrictSchema):
    refresh_token = Text(required=True, validate=validate.Length(min=1, max=4096))


class TokenPairSchema(StrictSchema):
    access_token = Text(required=True)
    refresh_token = Text(required=True)
    token_type = Text(required=True)
    expires_in = fields.Integer(required=True)
