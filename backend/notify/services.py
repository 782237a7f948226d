"""Queue care-team emails in the outbox and deliver them with retries.

Queuing happens inside the caller's transaction (an alert and its emails commit
together or not at all). Delivery claims rows one at a time with a
compare-and-set UPDATE (status 'sending' plus a claim expiry), which works the
same on SQLite and PostgreSQL: two deliverers never send one row at once, and a
row held by a deliverer that died is claimed again once its claim lapses.

Volume: at most `email_team_hourly_cap` emails per care team and rolling hour
(team setting `email_hourly_cap` overrides it). Emails over the cap are deferred,
not dropped, until the hour frees up. Urgent alert emails are exempt: an
urgent alert is a same-day clinical matter and must not wait behind routine mail.
Digest-severity alerts are never emailed one by one; they go into the weekly
digest.

Privacy: by default an email names only the urgency, a reference and a link. A
team may opt in to details (setting `email_include_details`), and even then no
name or birth date is included (the database holds neither).
"""

from __future__ import annotations

import email.policy
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Required, TypedDict, Unpack, cast

import jinja2
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert
from backend.auth.models import TeamMembership, User
from backend.config import Settings
from backend.db import utcnow
from backend.notify.models import OutboxMessage
from backend.notify.senders import PermanentSendError, Sender, TransientSendError, make_sender
from backend.patients.models import CareTeam, Patient

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
MESSAGE_ID_DOMAIN = "lamtrack"

RULE_LABELS: dict[str, str] = {
    "rapid_fev1_decline": "Rapid FEV1 decline",
    "acute_fev1_drop": "Acute FEV1 drop",
    "fev1_drop_with_symptoms": "FEV1 drop with respiratory symptoms",
    "fev1_below_start_criterion": "FEV1 below the treatment start criterion",
    "trough_draw_due": "Trough draw due",
    "trough_draw_missed": "Trough draw missed",
    "trough_out_of_range": "Trough level out of range",
    "urgent_side_effect": "Side effect needing same-day review",
    "lam_event": "LAM event reported",
    "readings_overdue": "Home readings overdue",
    "repeated_missed_doses": "Repeated missed doses",
}
URGENCY_LABELS = {
    "urgent": "urgent (same day)",
    "review": "for review",
    "digest": "weekly digest",
}


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, **context: Any) -> tuple[str, str]:
    """The text and HTML bodies of template `name`."""
    env = _env()
    return env.get_template(f"{name}.txt").render(**context), env.get_template(
        f"{name}.html"
    ).render(**context)


def _recipient_hash(recipient: str) -> str:
    return hashlib.sha256(recipient.strip().lower().encode()).hexdigest()[:16]


def alert_message_id(alert_id: str, recipient: str, round_no: int = 0) -> str:
    """Deterministic Message-ID: the same alert, round and recipient always
    give the same id, so a retried send can be recognised by the server."""
    suffix = f"-r{round_no}" if round_no else ""
    return f"<alert-{alert_id}{suffix}-{_recipient_hash(recipient)}@{MESSAGE_ID_DOMAIN}>"


def digest_message_id(team_id: str, week: str, recipient: str) -> str:
    return f"<digest-{team_id}-{week}-{_recipient_hash(recipient)}@{MESSAGE_ID_DOMAIN}>"


def reminder_message_id(patient_id: str, key: str, recipient: str) -> str:
    key_hash = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"<reminder-{patient_id}-{key_hash}-{_recipient_hash(recipient)}@{MESSAGE_ID_DOMAIN}>"


# ------------------------------------------------------------------ team options


@dataclass(frozen=True)
class TeamEmailOptions:
    include_details: bool = False
    hourly_cap: int | None = None
    digest: bool = True
    patient_reminders: bool = True


def team_email_options(team: CareTeam | None) -> TeamEmailOptions:
    """The team's email settings (keys `email_include_details`, `email_hourly_cap`,
    `email_digest`, `email_patient_reminders` of CareTeam.settings)."""
    raw = team.settings if team is not None and isinstance(team.settings, dict) else {}
    cap = raw.get("email_hourly_cap")
    return TeamEmailOptions(
        include_details=raw.get("email_include_details") is True,
        hourly_cap=cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None,
        digest=raw.get("email_digest", True) is not False,
        patient_reminders=raw.get("email_patient_reminders", True) is not False,
    )


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


# ------------------------------------------------------------------ queueing


class OutboxFields(TypedDict, total=False):
    """What a caller says of one email (the keyword arguments of `outbox_row`
    and `queue_email`); the last four are optional."""

    message_id: Required[str]
    kind: Required[str]
    recipient: Required[str]
    subject: Required[str]
    body_text: Required[str]
    body_html: Required[str | None]
    now: Required[datetime]
    urgent: bool
    alert_id: str | None
    care_team_id: str | None
    recipient_user_id: str | None


def outbox_row(**fields: Unpack[OutboxFields]) -> OutboxMessage:
    """One pending outbox row (not yet added to any session)."""
    now = fields["now"]
    return OutboxMessage(
        message_id=fields["message_id"],
        kind=fields["kind"],
        urgent=fields.get("urgent", False),
        alert_id=fields.get("alert_id"),
        care_team_id=fields.get("care_team_id"),
        recipient_user_id=fields.get("recipient_user_id"),
        recipient=fields["recipient"],
        subject=fields["subject"][:300],
        body_text=fields["body_text"],
        body_html=fields["body_html"],
        status="pending",
        next_attempt_at=now,
        created_at=now,
    )


def _queue_row(session: Session, row: OutboxMessage) -> bool:
    """Add `row` in the caller's transaction; False if its Message-ID is already queued."""
    exists = session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.message_id == row.message_id)
    )
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False  # queued concurrently by someone else: same Message-ID
    return True


def queue_email(session: Session, **fields: Unpack[OutboxFields]) -> bool:
    """Add one outbox row in the caller's transaction; False if already queued."""
    return _queue_row(session, outbox_row(**fields))


def _alert_link(settings: Settings, alert_id: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/api/v1/alerts/{alert_id}"


def _format_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


@dataclass(frozen=True)
class AlertRecipients:
    """What queueing an alert's emails needs to know about its care team."""

    options: TeamEmailOptions
    clinicians: tuple[tuple[str, str], ...]  # (user id, email) of its active clinicians


def alert_recipients(session: Session, team_id: str) -> AlertRecipients:
    team = session.get(CareTeam, team_id)
    return AlertRecipients(team_email_options(team),
                           tuple((u.id, u.email) for u in team_clinicians(session, team_id)))


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
            "numbers": [(k, _format_number(v)) for k, v in sorted((alert.numbers or {}).items())],
        }
    reference = f"A-{alert.id[:8].upper()}"
    context = {
        "urgent": urgent,
        "renotify": round_no,
        "urgency_label": URGENCY_LABELS.get(alert.severity, alert.severity),
        "reference": reference,
        "opened_at": alert.opened_at.strftime("%Y-%m-%d %H:%M UTC"),
        "link": _alert_link(settings, alert.id),
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
    rows = alert_emails(alert, settings=settings, now=now, recipients=recipients,
                        patient_ref=patient_ref, round_no=round_no)
    return sum(_queue_row(session, row) for row in rows)


# ------------------------------------------------------------------ delivery


# Long headers unfolded (RFC 5322 allows 998): a folded Message-ID is legal but
# some servers compare it verbatim when they de-duplicate.
EMAIL_POLICY = email.policy.SMTP.clone(max_line_length=998)


def build_email(settings: Settings, row: OutboxMessage) -> EmailMessage:
    message = EmailMessage(policy=EMAIL_POLICY)
    message["From"] = settings.email_from
    message["To"] = row.recipient
    message["Subject"] = row.subject
    message["Message-ID"] = row.message_id
    message["Date"] = format_datetime(row.created_at)
    message["Auto-Submitted"] = "auto-generated"
    message["X-LAMtrack-Kind"] = row.kind
    if row.urgent:
        message["Importance"] = "high"
    message.set_content(row.body_text)
    if row.body_html:
        message.add_alternative(row.body_html, subtype="html")
    return message


def backoff_seconds(settings: Settings, attempts: int) -> float:
    """Exponential backoff with jitter: base * 2^(n-1), capped, then drawn
    uniformly from its upper half so that many failed rows do not retry in step."""
    ceiling = min(
        settings.outbox_backoff_max_seconds,
        settings.outbox_backoff_base_seconds * 2 ** max(0, attempts - 1),
    )
    return secrets.SystemRandom().uniform(ceiling / 2, ceiling)


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "deferred": self.deferred,
        }


def _rowcount(result: object) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _claimable(now: datetime) -> Any:
    return or_(
        and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
        and_(OutboxMessage.status == "sending", OutboxMessage.claim_expires_at < now),
    )


def _team_sent_last_hour(
    session: Session, team_id: str, now: datetime
) -> tuple[int, datetime | None]:
    since = now - timedelta(hours=1)
    count, oldest = session.execute(
        select(func.count(OutboxMessage.id), func.min(OutboxMessage.sent_at)).where(
            OutboxMessage.care_team_id == team_id,
            OutboxMessage.status == "sent",
            OutboxMessage.sent_at > since,
        )
    ).one()
    return int(count), oldest


def _claim(
    session_factory: sessionmaker[Session],
    row_id: str,
    *,
    settings: Settings,
    now: datetime,
    worker: str,
    report: DeliveryReport,
) -> OutboxMessage | None:
    """Claim one row for sending, or defer it when its team is over the cap."""
    with session_factory.begin() as session:
        row = session.get(OutboxMessage, row_id)
        if row is None:
            return None
        if not row.urgent and row.care_team_id is not None:
            team = session.get(CareTeam, row.care_team_id)
            cap = team_email_options(team).hourly_cap or settings.email_team_hourly_cap
            sent, oldest = _team_sent_last_hour(session, row.care_team_id, now)
            if cap > 0 and sent >= cap:
                later = (oldest or now) + timedelta(hours=1, seconds=1)
                result = session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row_id, _claimable(now))
                    .values(status="pending", next_attempt_at=max(later, now),
                            claimed_by=None, claim_expires_at=None,
                            last_error=f"deferred: team over {cap} emails per hour")
                    .execution_options(synchronize_session=False)
                )
                if _rowcount(result):
                    report.deferred += 1
                return None
        result = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, _claimable(now))
            .values(
                status="sending",
                claimed_by=worker,
                claim_expires_at=now + timedelta(seconds=settings.outbox_claim_seconds),
                attempts=OutboxMessage.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != 1:
            return None
        session.expire(row)
        session.refresh(row)
        session.expunge(row)
        return row


def _finish(
    session_factory: sessionmaker[Session],
    row: OutboxMessage,
    *,
    worker: str,
    values: dict[str, Any],
) -> bool:
    with session_factory.begin() as session:
        result = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == row.id,
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
            .values(claimed_by=None, claim_expires_at=None, **values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1


def deliver_outbox(
    session_factory: sessionmaker[Session],
    *,
    settings: Settings,
    sender: Sender | None = None,
    now: Callable[[], datetime] = utcnow,
    worker: str | None = None,
    max_messages: int | None = None,
) -> dict[str, int]:
    """Send what is due in the outbox, once; returns counts by outcome."""
    worker = worker or f"deliver-{secrets.token_hex(6)}"
    own_sender = sender is None
    sender = sender or make_sender(settings)
    report = DeliveryReport()
    handled: set[str] = set()
    limit = max_messages if max_messages is not None else 10_000
    try:
        while len(handled) < limit:
            moment = now()
            with session_factory() as session:
                ids = [
                    i
                    for i in session.scalars(
                        select(OutboxMessage.id)
                        .where(_claimable(moment))
                        .order_by(OutboxMessage.urgent.desc(), OutboxMessage.next_attempt_at)
                        .limit(settings.outbox_batch_size)
                    )
                    if i not in handled
                ]
            if not ids:
                break
            for row_id in ids:
                if len(handled) >= limit:
                    break
                handled.add(row_id)
                _deliver_one(session_factory, row_id, settings=settings, sender=sender,
                             now=now, worker=worker, report=report)
    finally:
        if own_sender:
            sender.close()
    if report.sent or report.failed or report.retried:
        log.info("outbox delivery: %s", report.as_dict())
    return report.as_dict()


def _deliver_one(
    session_factory: sessionmaker[Session],
    row_id: str,
    *,
    settings: Settings,
    sender: Sender,
    now: Callable[[], datetime],
    worker: str,
    report: DeliveryReport,
) -> None:
    row = _claim(session_factory, row_id, settings=settings, now=now(), worker=worker,
                 report=report)
    if row is None:
        return
    try:
        sender.send(build_email(settings, row), row.recipient)
    except PermanentSendError as exc:
        report.failed += 1
        _finish(session_factory, row, worker=worker, values={
            "status": "failed", "failed_at": now(), "last_error": str(exc)[:2000],
            "last_smtp_code": exc.code,
        })
        log.warning("outbox %s to recipient refused for good: %s", row.id, exc)
        return
    except TransientSendError as exc:
        if row.attempts >= settings.outbox_max_attempts:
            report.failed += 1
            values: dict[str, Any] = {"status": "failed", "failed_at": now()}
        else:
            report.retried += 1
            values = {
                "status": "pending",
                "next_attempt_at": now() + timedelta(
                    seconds=backoff_seconds(settings, row.attempts)
                ),
            }
        values.update(last_error=str(exc)[:2000], last_smtp_code=exc.code)
        _finish(session_factory, row, worker=worker, values=values)
        return
    report.sent += 1
    _finish(session_factory, row, worker=worker, values={
        "status": "sent", "sent_at": now(), "last_error": None, "last_smtp_code": None,
    })
    if row.alert_id is not None:
        with session_factory.begin() as session:
            session.execute(
                update(Alert)
                .where(Alert.id == row.alert_id)
                .values(last_notified_at=now())
                .execution_options(synchronize_session=False)
            )


# ------------------------------------------------------------------ weekly digest

DIGEST_CATEGORIES: dict[str, tuple[str, ...]] = {
    "troughs": ("trough_draw_due", "trough_draw_missed", "trough_out_of_range"),
    "readings": ("readings_overdue",),
    "adherence": ("repeated_missed_doses",),
}
DIGEST_MAX_ITEMS = 50


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}W{week:02d}"


def queue_team_digest(
    session: Session, *, team: CareTeam, settings: Settings, now: datetime
) -> int:
    """Queue this week's digest for one team (once per ISO week and recipient)."""
    options = team_email_options(team)
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
        select(func.count(Alert.id)).where(
            Alert.care_team_id == team.id, Alert.resolved_at > since
        )
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
            "link": _alert_link(settings, a.id),
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
        alerts_link=f"{settings.public_base_url.rstrip('/')}/api/v1/alerts?status=open",
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


def outbox_counts(
    session: Session, statuses: Iterable[str] = ("pending", "sending", "sent", "failed")
) -> dict[str, int]:
    rows = session.execute(
        select(OutboxMessage.status, func.count(OutboxMessage.id))
        .where(OutboxMessage.status.in_(list(statuses)))
        .group_by(OutboxMessage.status)
    ).all()
    return {status: int(n) for status, n in rows}
