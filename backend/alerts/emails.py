"""Alert emails to care teams: one per active clinician of the alert's team,
queued in the outbox in the alert's own transaction.

Privacy: by default an email names only the urgency, a reference and a link. A
team may opt in to details (setting `email_include_details`), and even then no
name or birth date is included (the database holds neither). Digest-severity
alerts are never emailed one by one; they go into the weekly digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.alerts.models import Alert
from backend.auth.models import TeamMembership, User
from backend.config import Settings
from backend.notify.models import OutboxMessage
from backend.notify.outbox import (
    TeamEmailOptions,
    alert_message_id,
    outbox_row,
    queue_row,
    render,
    team_email_options,
)
from backend.patients.models import CareTeam, Patient

RULE_LABELS: dict[str, str] = {
    "rapid_fev1_decline": "Rapid FEV1 decline",
    "acute_fev1_drop": "Acute FEV1 drop",
    "fev1_drop_with_symptoms": "FEV1 drop with respiratory symptoms",
    "treatment_start_criteria": "Treatment start criteria met",
    "fev1_below_start_criterion": "FEV1 below the treatment start criterion",
    "trough_draw_due": "Trough draw due",
    "trough_draw_missed": "Trough draw missed",
    "trough_out_of_range": "Trough level out of range",
    "interacting_drug_change": "Interacting drug started or stopped",
    "urgent_side_effect": "Side effect needing same-day review",
    "lam_event": "LAM event reported",
    "readings_overdue": "Home readings overdue",
    "repeated_missed_doses": "Repeated missed doses",
    "fev1_effort_drift": "FEV1 falling with signs of worsening effort (check technique)",
    "fev1_level_drop": "FEV1 dropped in one step (check the device)",
}
URGENCY_LABELS = {
    "urgent": "urgent (same day)",
    "review": "for review",
    "digest": "weekly digest",
}


def team_clinicians(session: Session, team_id: str) -> list[User]:
    """Active clinicians of a care team: the recipients of its alerts."""
    return list(
        session.scalars(
            select(User)
            .join(TeamMembership, TeamMembership.user_id == User.id)
            .where(
                TeamMembership.team_id == team_id,
                User.role == "clinician",
                User.is_active.is_(True),
            )
            .order_by(User.email)
        )
    )


def alert_link(settings: Settings, alert_id: str) -> str:
    """The alert's page for the care team (backend/webui), where a browser signs in first."""
    return f"{settings.public_base_url.rstrip('/')}/alerts/{alert_id}"


def format_number(value: Any) -> str:
    """A number as people read it in an email or on a page: whole numbers plainly,
    others to six significant digits, so that display never rounds a value across
    the limit its rule compared it with (69.96 % predicted is not "70", a trough of
    15.04 ng/mL is not "15")."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if value == int(value) and abs(value) < 1e6:
        return f"{value:.0f}"
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.0f}"


@dataclass(frozen=True)
class AlertRecipients:
    """What queueing an alert's emails needs to know about its care team."""

    options: TeamEmailOptions
    clinicians: tuple[tuple[str, str], ...]  # (user id, email) of its active clinicians


def alert_recipients(session: Session, team_id: str) -> AlertRecipients:
    team = session.get(CareTeam, team_id)
    return AlertRecipients(
        team_email_options(team.settings if team else None),
        tuple((u.id, u.email) for u in team_clinicians(session, team_id)),
    )


def patient_reference(patient: Patient | None, patient_id: str) -> str:
    """How a detailed alert email names the patient: her external reference, else her id."""
    return patient.external_ref if patient and patient.external_ref else patient_id


def alert_emails(
    alert: Alert,
    *,
    settings: Settings,
    now: datetime,
    recipients: AlertRecipients,
    patient_ref: str | None,
    round_no: int = 0,
) -> list[OutboxMessage]:
    """The outbox rows for an alert: one per clinician of its team (one per
    Message-ID), none for a digest-severity alert (it goes into the weekly
    digest). `patient_ref` is used only if the team asked for details."""
    if alert.severity == "digest" or not recipients.clinicians:
        return []
    urgent = alert.severity == "urgent"
    details: dict[str, Any] | None = None
    if recipients.options.include_details:
        details = {
            "rule_label": RULE_LABELS.get(alert.rule, alert.rule),
            "patient_ref": patient_ref or alert.patient_id,
            "explanation": alert.explanation,
            "numbers": [(k, format_number(v)) for k, v in sorted((alert.numbers or {}).items())],
        }
    reference = f"A-{alert.id[:8].upper()}"
    context = {
        "urgent": urgent,
        "renotify": round_no,
        "urgency_label": URGENCY_LABELS.get(alert.severity, alert.severity),
        "reference": reference,
        "opened_at": alert.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
        "link": alert_link(settings, alert.id),
        "details": details,
    }
    body_text, body_html = render("alert", **context)
    prefix = "URGENT alert" if urgent else "Alert"
    again = " (reminder)" if round_no else ""
    subject = f"[LAMtrack] {prefix} needs review{again}: ref {reference}"
    rows: dict[str, OutboxMessage] = {}
    for user_id, address in recipients.clinicians:
        message_id = alert_message_id(alert.id, address, round_no)
        if message_id in rows:
            continue
        rows[message_id] = outbox_row(
            message_id=message_id,
            kind="renotify" if round_no else "alert",
            recipient=address,
            recipient_user_id=user_id,
            subject=subject,
            body_text=body_text,
            body_html=body_html,
            now=now,
            urgent=urgent,
            alert_id=alert.id,
            care_team_id=alert.care_team_id,
        )
    return list(rows.values())


def queue_alert_emails(
    session: Session,
    *,
    alert: Alert,
    settings: Settings,
    now: datetime,
    round_no: int = 0,
) -> int:
    """Queue one email per clinician of the alert's team; returns how many.

    Digest-severity alerts are not emailed (they go into the weekly digest).
    """
    if alert.severity == "digest":
        return 0
    recipients = alert_recipients(session, alert.care_team_id)
    patient_ref = None
    if recipients.options.include_details:
        patient_ref = patient_reference(session.get(Patient, alert.patient_id), alert.patient_id)
    rows = alert_emails(
        alert, settings=settings, now=now, recipients=recipients, patient_ref=patient_ref, round_no=round_no
    )
    return sum(queue_row(session, row) for row in rows)
