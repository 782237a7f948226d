"""Factories shared by the tests: a team, a clinician, a patient record
without the invite dance, and stream items through the real ingest path."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth.models import TeamMembership, User
from backend.auth.principal import Principal
from backend.config import Settings
from backend.db import utcnow
from backend.patients.models import CareTeam, Patient


def ensure_team(session: Session, *, name: str, settings: dict[str, Any] | None = None) -> CareTeam:
    team = session.scalars(select(CareTeam).where(CareTeam.name == name)).first()
    if team is None:
        from backend.patients.accounts import create_team

        team = create_team(session, name=name)
        if settings:
            team.settings = dict(settings)
    return team


def ensure_clinician(session: Session, *, team_id: str, email: str, password: str) -> User:
    from backend.auth.services import normalise_email
    from backend.patients.accounts import create_clinician

    user = session.scalars(select(User).where(User.email == normalise_email(email))).first()
    if user is not None:
        member = session.scalar(
            select(TeamMembership.id).where(
                TeamMembership.team_id == team_id, TeamMembership.user_id == user.id
            )
        )
        if member is not None:
            return user
    return create_clinician(session, team_id=team_id, email=email, password=password)


def add_patient(
    session: Session,
    *,
    team_id: str,
    patient_id: str | None = None,
    user_email: str | None = None,
    created_at: datetime | None = None,
    **profile: Any,
) -> Patient:
    """A patient record (and, with `user_email`, her account) without the invite dance."""
    values: dict[str, Any] = {
        "sex_at_birth": "female",
        "date_of_birth": date(1980, 5, 17),
        "height_cm": 165.0,
        "lam_type": "sporadic",
        "timezone": "Europe/London",
        "treatment_status": "on_sirolimus",
        "trough_target_low": 5.0,
        "trough_target_high": 15.0,
        "expected_sessions_per_week": 7,
        "rule_overrides": {},
    }
    values.update(profile)
    user_id = None
    if user_email:
        from backend.auth.passwords import hash_password

        user = User(
            email=user_email.lower(),
            password_hash=hash_password(uuid.uuid4().hex),
            role="patient",
            is_active=True,
        )
        session.add(user)
        session.flush()
        user_id = user.id
    patient = Patient(
        id=patient_id or str(uuid.uuid4()),
        care_team_id=team_id,
        user_id=user_id,
        change_seq=0,
        created_at=created_at or utcnow(),
        **values,
    )
    session.add(patient)
    session.flush()
    return patient


def ingest(
    session: Session,
    *,
    patient: Patient,
    stream: str,
    items: Sequence[dict[str, Any]],
    now: datetime,
    settings: Settings | None = None,
    principal: Principal | None = None,
) -> list[dict[str, Any]]:
    """Store stream items through the same ingest path as the API (derived
    fields, sequence numbers, event-driven alerts). Items are API JSON; a
    `client_id` is added when missing."""
    from backend.streams.ingest import ingest_batch
    from backend.streams.registry import STREAMS

    spec = next(s for s in STREAMS if s.name == stream)
    principal = principal or Principal(user_id=patient.user_id or "system", role="patient")
    prepared = [{"client_id": str(uuid.uuid4()), **item} for item in items]
    return ingest_batch(
        session,
        spec=spec,
        patient=patient,
        principal=principal,
        items=prepared,
        now=now,
        settings=settings or Settings(),
    )
