"""Care teams, clinician accounts, and patient accounts made by invite: the
accounts that hang off a team or a patient record."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.models import InviteCode, TeamMembership, User
from backend.auth.passwords import hash_password
from backend.auth.services import TokenPair, check_password_strength, new_token_family, normalise_email
from backend.config import Settings
from backend.errors import Conflict, NotFound, Unprocessable
from backend.patients.models import CareTeam, Patient

INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud in clinic


def create_team(session: Session, *, name: str) -> CareTeam:
    team = CareTeam(name=name.strip(), settings={})
    session.add(team)
    session.flush()
    record_audit(
        session,
        actor_id=None,
        actor_role="operator",
        action="team.create",
        resource_type="care_team",
        resource_id=team.id,
    )
    return team


def create_clinician(session: Session, *, team_id: str, email: str, password: str) -> User:
    if session.get(CareTeam, team_id) is None:
        raise NotFound("No such care team.")
    check_password_strength(password, email=email)
    email = normalise_email(email)
    user = session.scalars(select(User).where(User.email == email)).one_or_none()
    if user is None:
        user = User(email=email, password_hash=hash_password(password), role="clinician")
        session.add(user)
        session.flush()
    elif user.role != "clinician":
        raise Conflict("That email belongs to a patient account.")
    if (
        session.scalars(
            select(TeamMembership).where(TeamMembership.team_id == team_id, TeamMembership.user_id == user.id)
        ).one_or_none()
        is None
    ):
        session.add(TeamMembership(team_id=team_id, user_id=user.id))
    record_audit(
        session,
        actor_id=None,
        actor_role="operator",
        action="clinician.create",
        resource_type="user",
        resource_id=user.id,
    )
    return user


def _hash_code(code: str) -> str:
    return hashlib.sha256(code.strip().upper().replace("-", "").encode()).hexdigest()


def new_invite_code(session: Session, *, patient: Patient, settings: Settings, now: datetime) -> str:
    """A new code for `patient`; any earlier unused code of hers stops working."""
    session.execute(
        update(InviteCode)
        .where(InviteCode.patient_id == patient.id, InviteCode.used_at.is_(None), InviteCode.expires_at > now)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    raw = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(12))
    session.add(
        InviteCode(
            code_hash=_hash_code(raw),
            patient_id=patient.id,
            expires_at=now + timedelta(hours=settings.invite_code_hours),
        )
    )
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4))


def register_patient(
    session: Session, *, settings: Settings, invite_code: str, email: str, password: str, now: datetime
) -> TokenPair:
    """Bind a new patient account to the record the invite was made for.

    Every failure gets the same answer, so the endpoint says nothing about which
    codes or emails exist.
    """
    check_password_strength(password, email=email)
    invalid = Unprocessable("The invite code is not valid, or it was already used or has expired.")
    invite = session.scalars(
        select(InviteCode).where(InviteCode.code_hash == _hash_code(invite_code)).with_for_update()
    ).one_or_none()
    if invite is None or invite.used_at is not None or invite.expires_at <= now:
        record_audit(session, actor_id=None, actor_role=None, action="auth.register", outcome="denied")
        raise invalid
    patient = session.get(Patient, invite.patient_id)
    email = normalise_email(email)
    taken = session.scalars(select(User.id).where(User.email == email)).first()
    if patient is None or patient.user_id is not None or taken is not None:
        record_audit(
            session,
            actor_id=None,
            actor_role=None,
            action="auth.register",
            outcome="denied",
            patient_id=invite.patient_id,
        )
        raise invalid
    user = User(email=email, password_hash=hash_password(password), role="patient")
    session.add(user)
    session.flush()
    patient.user_id = user.id
    invite.used_at = now
    record_audit(
        session,
        actor_id=user.id,
        actor_role="patient",
        action="auth.register",
        patient_id=patient.id,
        resource_type="user",
        resource_id=user.id,
    )
    return new_token_family(session, settings=settings, user=user, now=now)
