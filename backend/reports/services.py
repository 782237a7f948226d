"""A team's cohort report for one clinician: her team or NotFound, audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.principal import Principal
from backend.patients.access import load_team_for
from backend.reports.cohort import cohort_report
from backend.reports.loading import load_team_cohort


def team_report(
    session: Session,
    *,
    principal: Principal,
    team_id: str,
    min_cell: int,
    now: datetime,
    detail: str | None = None,
) -> dict[str, Any]:
    """The report of `team_id` if `principal` is one of its clinicians (else
    NotFound, as for a team that does not exist); the read is audited."""
    team = load_team_for(session, principal, team_id)
    report = cohort_report(load_team_cohort(session, team.id, as_of=now), min_cell=min_cell)
    record_audit(
        session,
        actor_id=principal.user_id,
        actor_role=principal.role,
        action="cohort_report.read",
        resource_type="care_team",
        resource_id=team.id,
        detail=detail,
    )
    return {"team_id": team.id, "team_name": team.name, "as_of": now, **report}
