from __future__ import annotations

from marshmallow import fields, validate

from backend.auth.passwords import MIN_PASSWORD_LENGTH
from backend.schemas import StrictSchema, Text


class LoginSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = Text(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class RegisterSchema(StrictSchema):
    invite_code = Text(required=True, validate=validate.Length(min=1, max=64))
    email = fields.Email(required=True, validate=validate.Length(max=320))
    # The rule the account services enforce (`check_password_strength`), stated here
    # so that the document and generated clients know it.
    password = Text(
        required=True,
        load_only=True,
        validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024),
        metadata={"description": f"At least {MIN_PASSWORD_LENGTH} characters, at most 1024."},
    )


class RefreshSchema(StrictSchema):
    refresh_token = Text(required=True, validate=validate.Length(min=1, max=4096))


class TokenPairSchema(StrictSchema):
    access_token = Text(required=True)
    refresh_token = Text(required=True)
    token_type = Text(required=True)
    expires_in = fields.Integer(required=True)
