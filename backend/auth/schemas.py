from __future__ import annotations

from marshmallow import fields, validate

from backend.auth.passwords import MIN_PASSWORD_LENGTH
from backend.schemas import StrictSchema


class LoginSchema(StrictSchema):
    email = fields.Email(required=True, validate=validate.Length(max=320))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=1024))


class RegisterSchema(StrictSchema):
    invite_code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    email = fields.Email(required=True, validate=validate.Length(max=320))
    # The rule the account services enforce (`check_password_strength`), stated here
    # so that the document and generated clients know it.
    password = fields.String(
        required=True,
        load_only=True,
        validate=validate.Length(min=MIN_PASSWORD_LENGTH, max=1024),
        metadata={"description": f"At least {MIN_PASSWORD_LENGTH} characters, at most 1024."},
    )


class RefreshSchema(StrictSchema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=4096))


class TokenPairSchema(StrictSchema):
    access_token = fields.String(required=True)
    refresh_token = fields.String(required=True)
    token_type = fields.String(required=True)
    expires_in = fields.Integer(required=True)
