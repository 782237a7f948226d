"""Signed access and refresh tokens (JWT, RFC 8725 practices).

One algorithm (HS256) is accepted, never taken from the token; `exp`, `iat`,
`iss`, `aud`, `typ` and `sub` are required; the key is chosen by `kid`, so keys
can rotate: the first configured key signs, every configured key verifies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from backend.config import Settings
from backend.errors import Unauthorized

ALGORITHM = "HS256"
ACCESS_TYP = "at+jwt"
REFRESH_TYP = "rt+jwt"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    role: str
    typ: str
    jti: str
    family_id: str | None
    expires_at: datetime


def _sign(settings: Settings, claims: dict[str, Any], typ: str) -> str:
    kid, key = next(iter(settings.jwt_keys.items()))
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": typ})


def issue_token(
    settings: Settings,
    *,
    user_id: str,
    role: str,
    typ: str,
    lifetime_seconds: int,
    now: datetime,
    jti: str | None = None,
    family_id: str | None = None,
) -> tuple[str, TokenClaims]:
    jti = jti or str(uuid.uuid4())
    exp = now + timedelta(seconds=lifetime_seconds)
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": user_id,
        "role": role,
        "typ": typ,
        "jti": jti,
        "iat": int(now.timestamp()),
        "exp": int(exp.timestamp()),
    }
    if family_id:
        claims["fam"] = family_id
    token = _sign(settings, claims, typ)
    return token, TokenClaims(user_id, role, typ, jti, family_id, exp)


LEEWAY_SECONDS = 5


def decode_token(settings: Settings, token: str, *, expected_typ: str) -> TokenClaims:
    try:
        header = jwt.get_unverified_header(token)
        key = settings.jwt_keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != ALGORITHM:
            raise Unauthorized("The token is not valid.")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "typ"]},
            leeway=LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.") from exc
    if claims.get("typ") != expected_typ or header.get("typ") != expected_typ:
        raise Unauthorized("The token is not valid.")
    role = claims.get("role")
    if role not in ("clinician", "patient"):
        raise Unauthorized("The token is not valid.")
    return TokenClaims(
        subject=str(claims["sub"]),
        role=str(role),
        typ=str(claims["typ"]),
        jti=str(claims["jti"]),
        family_id=claims.get("fam"),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )
