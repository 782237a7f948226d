"""Accounts and sessions: team and clinician creation, patient registration by
invite, login, refresh-token rotation with reuse detection, logout."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.models import InviteCode, RefreshToken, TeamMembership, User
from backend.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, needs_rehash, verify_password
from backend.auth.tokens import ACCESS_TYP, REFRESH_TYP, decode_token, issue_token
from backend.config import Settings
from backend.errors import Conflict, NotFound, Unauthorized, Unprocessable
from backend.patients.models import CareTeam, Patient

INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud in clinic


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable(
            "The password is too short.",
            errors={"password": [f"Use at least {MIN_PASSWORD_LENGTH} characters."]},
        )


def create_team(session: Session, *, name: str) -> CareTeam:
    team = CareTeam(name=name.strip(), settings={})
    session.add(team)
    session.flush()
    record_audit(session, actor_id=None, actor_role="operator", action="team.create",
                 resource_type="care_team", resource_id=team.id)
    return team


def create_clinician(session: Session, *, team_id: str, email: str, password: str) -> User:
    if session.get(CareTeam, team_id) is None:
        raise NotFound("No such care team.")
    check_password_strength(password)
    email = normalise_email(email)
    user = session.scalars(select(User).where(User.email == email)).one_or_none()
    if user is None:
        user = User(email=email, password_hash=hash_password(password), role="clinician")
        session.add(user)
        session.flush()
    elif user.role != "clinician":
        raise Conflict("That email belongs to a patient account.")
    if session.scalars(select(TeamMembership).where(
        TeamMembership.team_id == team_id, TeamMembership.user_id == user.id
    )).one_or_none() is None:
        session.add(TeamMembership(team_id=team_id, user_id=user.id))
    record_audit(session, actor_id=None, actor_role="operator", action="clinician.create",
                 resource_type="user", resource_id=user.id)
    return user


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().upper().replace("-", "").encode()).hexdigest()


def new_invite_code(session: Session, *, patient: Patient, settings: Settings,
                    now: datetime) -> str:
    raw = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(12))
    session.add(InviteCode(code_hash=_hash_code(raw), patient_id=patient.id,
                           expires_at=now + timedelta(hours=settings.invite_code_hours)))
    return "-".join(raw[i:i + 4] for i in range(0, 12, 4))


def register_patient(session: Session, *, settings: Settings, invite_code: str, email: str,
                     password: str, now: datetime) -> TokenPair:
    """Bind a new patient account to the record the invite was made for.

    Every failure gets the same answer, so the endpoint says nothing about which
    codes or emails exist.
    """
    check_password_strength(password)
    invalid = Unprocessable("The invite code is not valid, or it was already used or has expired.")
    invite = session.scalars(
        select(InviteCode).where(InviteCode.code_hash == _hash_code(invite_code)).with_for_update()
    ).one_or_none()
    if invite is None or invite.used_at is not None or invite.expires_at <= now:
        record_audit(session, actor_id=None, actor_role=None, action="auth.register",
                     outcome="denied")
        raise invalid
    patient = session.get(Patient, invite.patient_id)
    email = normalise_email(email)
    taken = session.scalars(select(User.id).where(User.email == email)).first()
    if patient is None or patient.user_id is not None or taken is not None:
        record_audit(session, actor_id=None, actor_role=None, action="auth.register",
                     outcome="denied", patient_id=invite.patient_id)
        raise invalid
    user = User(email=email, password_hash=hash_password(password), role="patient")
    session.add(user)
    session.flush()
    patient.user_id = user.id
    invite.used_at = now
    record_audit(session, actor_id=user.id, actor_role="patient", action="auth.register",
                 patient_id=patient.id, resource_type="user", resource_id=user.id)
    return _new_family(session, settings=settings, user=user, now=now)


def _new_family(session: Session, *, settings: Settings, user: User, now: datetime,
                family_id: str | None = None) -> TokenPair:
    access, _ = issue_token(settings, user_id=user.id, role=user.role, typ=ACCESS_TYP,
                            lifetime_seconds=settings.access_token_seconds, now=now)
    family_id = family_id or secrets.token_hex(16)
    refresh, claims = issue_token(settings, user_id=user.id, role=user.role, typ=REFRESH_TYP,
                                  lifetime_seconds=settings.refresh_token_seconds, now=now,
                                  family_id=family_id)
    session.add(RefreshToken(jti=claims.jti, user_id=user.id, family_id=family_id,
                             issued_at=now, expires_at=claims.expires_at))
    return TokenPair(access, refresh, settings.access_token_seconds)


def login(session: Session, *, settings: Settings, email: str, password: str,
          now: datetime) -> TokenPair:
    user = session.scalars(select(User).where(User.email == normalise_email(email))).one_or_none()
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        record_audit(session, actor_id=user.id if user else None,
                     actor_role=user.role if user else None, action="auth.login",
                     outcome="denied")
        raise Unauthorized("The email or password is not correct.")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    record_audit(session, actor_id=user.id, actor_role=user.role, action="auth.login")
    return _new_family(session, settings=settings, user=user, now=now)


def refresh(session: Session, *, settings: Settings, refresh_token: str,
            now: datetime) -> TokenPair:
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
        record_audit(session, actor_id=user.id, actor_role=user.role, action="auth.refresh_reuse",
                     outcome="denied")
        raise Unauthorized("The token is not valid.")
    stored.used_at = now
    record_audit(session, actor_id=user.id, actor_role=user.role, action="auth.refresh")
    return _new_family(session, settings=settings, user=user, now=now, family_id=stored.family_id)


def revoke_family(session: Session, *, family_id: str, now: datetime) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def logout(session: Session, *, settings: Settings, refresh_token: str, user_id: str,
           role: str, now: datetime) -> None:
    claims = decode_token(settings, refresh_token, expected_typ=REFRESH_TYP)
    if claims.subject != user_id:
        raise Unauthorized("The token is not valid.")
    stored = session.get(RefreshToken, claims.jti)
    if stored is not None:
        revoke_family(session, family_id=stored.family_id, now=now)
    record_audit(session, actor_id=user_id, actor_role=role, action="auth.logout")
