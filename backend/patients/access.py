"""Who may touch which patient: the one place that decides.

A patient reaches only her own record (`me` or her own id); a clinician only the
patients of her care teams. Anything else is answered 404, the same as a record
that does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.models import TeamMembership
from backend.auth.principal import Principal
from backend.errors import NotFound
from backend.patients.models import Patient


def _patient_query(own: bool, me: bool, for_update: bool) -> Select[Patient]:
    if own:  # a patient: her own record, by id or as "me"
        stmt = select(Patient).where(Patient.user_id == bindparam("user_id"))
        if not me:
            stmt = stmt.where(Patient.id == bindparam("pid"))
    else:  # a clinician: a patient of one of her teams
        stmt = select(Patient).where(
            Patient.id == bindparam("pid"),
            Patient.care_team_id.in_(
                select(TeamMembership.team_id).where(TeamMembership.user_id == bindparam("user_id"))
            ),
        )
    return stmt.with_for_update() if for_update else stmt


_PATIENT_QUERIES = {
    (own, me, lock): _patient_query(own, me, lock)
    for own, me in ((True, True), (True, False), (False, False))
    for lock in (True, False)
}  # a clinician has no "me"


def load_patient_for(
    session: Session, principal: Principal, pid: str, *, for_update: bool = False
) -> Patient:
    """The patient `pid` if `principal` may reach her, else NotFound."""
    if principal.role != "patient" and pid == "me":
        raise NotFound("No such patient.")
    stmt = _PATIENT_QUERIES[(principal.role == "patient", pid == "me", for_update)]
    patient = session.scalars(stmt, {"user_id": principal.user_id, "pid": pid}).one_or_none()
    if patient is None:
        # Refused attempts are part of the trail too; committed now, because the
        # request's transaction is rolled back with the error.
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action="patient.access",
            outcome="denied",
            resource_type="patient",
            resource_id=pid[:64],
        )
        session.commit()
        raise NotFound("No such patient.")
    return patient
