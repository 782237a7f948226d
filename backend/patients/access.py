"""Who may touch which patient: the one place that decides.

A patient reaches only her own record (`me` or her own id); a clinician only the
patients of her care teams. Anything else is answered 404, the same as a record
that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.models import TeamMembership
from backend.auth.principal import Principal
from backend.errors import NotFound
from backend.patients.models import CareTeam, Patient


def _patient_query(principal: Principal, pid: str, *, for_update: bool) -> Select[Patient]:
    if principal.role == "patient":  # her own record, by id or as "me"
        stmt = select(Patient).where(Patient.user_id == principal.user_id)
        if pid != "me":
            stmt = stmt.where(Patient.id == pid)
    else:  # a clinician: a patient of one of her teams
        stmt = select(Patient).where(
            Patient.id == pid,
            Patient.care_team_id.in_(
                select(TeamMembership.team_id).where(TeamMembership.user_id == principal.user_id)
            ),
        )
    return stmt.with_for_update() if for_update else stmt


def load_patient_for(
    session: Session, principal: Principal, pid: str, *, for_update: bool = False
) -> Patient:
    """The patient `pid` if `principal` may reach her, else NotFound."""
    if principal.role != "patient" and pid == "me":
        raise NotFound("No such patient.")
    patient = session.scalars(_patient_query(principal, pid, for_update=for_update)).one_or_none()
    if patient is None:
        record_denied(session, principal, action="patient.access", resource_type="patient", resource_id=pid)
        raise NotFound("No such patient.")
    return patient


def load_team_for(session: Session, principal: Principal, team_id: str) -> CareTeam:
    """The care team `team_id` if `principal` is one of its clinicians, else
    NotFound (audited as denied), as for a team that does not exist."""
    member = select(TeamMembership.team_id).where(
        TeamMembership.user_id == principal.user_id, TeamMembership.team_id == team_id
    )
    team = session.get(CareTeam, team_id) if session.scalars(member).first() is not None else None
    if team is None:
        record_denied(
            session, principal, action="team.access", resource_type="care_team", resource_id=team_id
        )
        raise NotFound("No such care team.")
    return team


def record_denied(
    session: Session,
    principal: Principal,
    *,
    action: str,
    resource_type: str,
    resource_id: str,
    detail: str | None = None,
) -> None:
    """A refused attempt in the trail: who, what kind, which id asked for; no
    patient is named (the id may be another team's). Committed now, because the
    request's transaction is rolled back with the error that follows."""
    record_audit(
        session,
        actor_id=principal.user_id,
        actor_role=principal.role,
        action=action,
        outcome="denied",
        resource_type=resource_type,
        resource_id=resource_id[:64],
        detail=detail,
    )
    session.commit()
