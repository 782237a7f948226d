"""Which alerts a clinician may reach: those of her care teams' patients. Any
other id is answered 404, like an alert that does not exist, and the attempt is
in the audit trail as denied (who and which id, nothing of the alert's patient)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.alerts.models import Alert
from backend.auth.models import TeamMembership
from backend.auth.principal import Principal
from backend.errors import NotFound
from backend.patients.access import record_denied
from backend.patients.models import Patient


def load_alert_for(
    session: Session, principal: Principal, alert_id: str, *, for_update: bool = False
) -> Alert:
    """The alert `alert_id` if it belongs to a patient of one of the principal's teams, else NotFound."""
    teams = select(TeamMembership.team_id).where(TeamMembership.user_id == principal.user_id)
    stmt = select(Alert).where(
        Alert.id == alert_id, Alert.patient_id.in_(select(Patient.id).where(Patient.care_team_id.in_(teams)))
    )
    if for_update:
        stmt = stmt.with_for_update()
    alert = session.scalars(stmt).one_or_none()
    if alert is None:
        record_denied(session, principal, action="alert.access", resource_type="alert", resource_id=alert_id)
        raise NotFound("No such alert.")
    return alert
