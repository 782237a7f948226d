"""The weekly digest: per care team, what is open and what changed in the week,
one email per clinician (digest-severity alerts are only ever sent this way)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.emails import RULE_LABELS, URGENCY_LABELS, alert_link, team_clinicians
from backend.alerts.models import Alert
from backend.config import Settings
from backend.notify.outbox import digest_message_id, queue_email, render, team_email_options
from backend.patients.models import CareTeam

DIGEST_CATEGORIES: dict[str, tuple[str, ...]] = {
    "troughs": ("trough_draw_due", "trough_draw_missed", "trough_out_of_range"),
    "readings": ("readings_overdue",),
    "adherence": ("repeated_missed_doses",),
}
DIGEST_MAX_ITEMS = 50


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}W{week:02d}"


def queue_team_digest(session: Session, *, team: CareTeam, settings: Settings, now: datetime) -> int:
    """Queue this week's digest for one team (once per ISO week and recipient)."""
    options = team_email_options(team.settings)
    if not options.digest:
        return 0
    week = iso_week(now)
    open_alerts = list(
        session.scalars(
            select(Alert)
            .where(Alert.care_team_id == team.id, Alert.status != "resolved")
            .order_by(Alert.opened_at, Alert.id)
        )
    )
    since = now - timedelta(days=7)
    opened_week = session.scalar(
        select(func.count(Alert.id)).where(Alert.care_team_id == team.id, Alert.opened_at > since)
    )
    resolved_week = session.scalar(
        select(func.count(Alert.id)).where(Alert.care_team_id == team.id, Alert.resolved_at > since)
    )
    counts: dict[str, int] = {
        "open_total": len(open_alerts),
        "urgent": sum(a.severity == "urgent" for a in open_alerts),
        "review": sum(a.severity == "review" for a in open_alerts),
        "digest": sum(a.severity == "digest" for a in open_alerts),
        "opened_week": int(opened_week or 0),
        "resolved_week": int(resolved_week or 0),
    }
    for name, rules in DIGEST_CATEGORIES.items():
        counts[name] = len({a.patient_id for a in open_alerts if a.rule in rules})
    items = [
        {
            "reference": f"A-{a.id[:8].upper()}",
            "urgency_label": URGENCY_LABELS.get(a.severity, a.severity),
            "opened_at": a.opened_at.strftime("%Y-%m-%d"),
            "link": alert_link(settings, a.id),
            "rule_label": RULE_LABELS.get(a.rule, a.rule) if options.include_details else None,
        }
        for a in open_alerts[:DIGEST_MAX_ITEMS]
    ]
    body_text, body_html = render(
        "digest",
        team_name=team.name,
        week_label=week,
        counts=counts,
        items=items,
        more=max(0, len(open_alerts) - DIGEST_MAX_ITEMS),
        alerts_link=f"{settings.public_base_url.rstrip('/')}/patients",
    )
    subject = f"[LAMtrack] Weekly summary {week}: {counts['open_total']} open alerts"
    queued = 0
    for user in team_clinicians(session, team.id):
        queued += queue_email(
            session,
            message_id=digest_message_id(team.id, week, user.email),
            kind="digest",
            recipient=user.email,
            recipient_user_id=user.id,
            subject=subject,
            body_text=body_text,
            body_html=body_html,
            now=now,
            care_team_id=team.id,
        )
    return queued


def queue_weekly_digests(
    session_factory: sessionmaker[Session], *, settings: Settings, now: datetime
) -> dict[str, int]:
    """The weekly digest for every team, one team per transaction."""
    with session_factory() as session:
        team_ids = list(session.scalars(select(CareTeam.id).order_by(CareTeam.id)))
    total = 0
    for team_id in team_ids:
        with session_factory.begin() as session:
            team = session.get(CareTeam, team_id)
            if team is not None:
                total += queue_team_digest(session, team=team, settings=settings, now=now)
    return {"teams": len(team_ids), "queued": total}
