"""Sessions: login, refresh-token rotation with reuse detection, logout."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.models import RefreshToken, User
from backend.auth.passwords import hash_password, needs_rehash, password_refusal, verify_password
from backend.auth.tokens import ACCESS_TYP, REFRESH_TYP, decode_token, issue_token
from backend.config import Settings
from backend.errors import Unauthorized, Unprocessable
from backend.schemas import text_problem


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str, *, email: str | None = None) -> None:
    """Unprocessable, naming the rule, when `password` may not be set for the
    account `email` (`backend.auth.passwords`); the password is never echoed."""
    refusal = password_refusal(password, email=email)
    if refusal is not None:
        raise Unprocessable(
            f"The password was refused ({refusal.rule}): {refusal.message}",
            errors={"password": [refusal.message]},
            rule=refusal.rule,
        )


def new_token_family(
    session: Session, *, settings: Settings, user: User, now: datetime, family_id: str | None = None
) -> TokenPair:
    family_id = family_id or secrets.token_hex(16)
    # The access token names its family, so that logout or a detected refresh
    # reuse ends it at once, not when it expires.
    access, _ = issue_token(
        settings,
        user_id=user.id,
        role=user.role,
        typ=ACCESS_TYP,
        lifetime_seconds=settings.access_token_seconds,
        now=now,
        family_id=family_id,
    )
    refresh, claims = issue_token(
        settings,
        user_id=user.id,
        role=user.role,
        typ=REFRESH_TYP,
        lifetime_seconds=settings.refresh_token_seconds,
        now=now,
        family_id=family_id,
    )
    session.add(
        RefreshToken(
            jti=claims.jti, user_id=user.id, family_id=family_id, issued_at=now, expires_at=claims.expires_at
        )
    )
    return TokenPair(access, refresh, settings.access_token_seconds)


def check_credentials(session: Session, *, email: str, password: str, channel: str | None = None) -> User:
    """The active account with this email and password, else Unauthorized (the same
    answer for an unknown email and a wrong password). Audited either way;
    `channel` says where the sign-in came from (None: the API)."""
    # An address no database can hold (a NUL, a lone surrogate: the web form takes
    # any text) belongs to no account; looking it up would fail on PostgreSQL.
    user = (
        None
        if text_problem(email)
        else session.scalars(select(User).where(User.email == normalise_email(email))).one_or_none()
    )
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        record_audit(
            session,
            actor_id=user.id if user else None,
            actor_role=user.role if user else None,
            action="auth.login",
            outcome="denied",
            detail=channel,
        )
        raise Unauthorized("The email or password is not correct.")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    record_audit(session, actor_id=user.id, actor_role=user.role, action="auth.login", detail=channel)
    return user


def login(session: Session, *, settings: Settings, email: str, password: str, now: datetime) -> TokenPair:
    user = check_credentials(session, email=email, password=password)
    return new_token_family(session, settings=settings, user=user, now=now)


def refresh(session: Session, *, settings: Settings, refresh_token: str, now: datetime) -> TokenPair:
    claims = decode_token(settings, refresh_token, expected_typ=REFRESH_TYP)
    stored = session.scalars(
        select(RefreshToken).where(RefreshToken.jti == claims.jti).with_for_update()
    ).one_or_none()
    user = session.get(User, claims.subject)
    if stored is None or user is None or not user.is_active or stored.user_id != user.id:
        raise Unauthorized("The token is not valid.")
    if stored.used_at is not None or stored.revoked_at is not None:
        # A rotated token came back: someone holds a copy. End the whole family.
        revoke_family(session, family_id=stored.family_id, now=now)
        record_audit(
            session, actor_id=user.id, actor_role=user.role, action="auth.refresh_reuse", outcome="denied"
        )
        raise Unauthorized("The token is not valid.")
    stored.used_at = now
    record_audit(session, actor_id=user.id, actor_role=user.role, action="auth.refresh")
    return new_token_family(session, settings=settings, user=user, now=now, family_id=stored.family_id)


def revoke_family(session: Session, *, family_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def logout(
    session: Session, *, settings: Settings, refresh_token: str, user_id: str, role: str, now: datetime
) -> None:
    claims = decode_token(settings, refresh_token, expected_typ=REFRESH_TYP)
    if claims.subject != user_id:
        raise Unauthorized("The token is not valid.")
    stored = session.get(RefreshToken, claims.jti)
    if stored is not None:
        revoke_family(session, family_id=stored.family_id, now=now)
    record_audit(session, actor_id=user_id, actor_role=role, action="auth.logout")
