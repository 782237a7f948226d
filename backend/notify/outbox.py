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
What goes into an email (alerts, the digest, reminders) is decided by the
feature that queues it; this module only renders templates, queues and sends.
"""

from __future__ import annotations

import email.policy
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Required, TypedDict, Unpack, cast

import jinja2
from sqlalchemy import JSON, String, Table, and_, column, func, insert, or_, select, table, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.db import utcnow
from backend.notify.models import OutboxMessage
from backend.notify.senders import PermanentSendError, Sender, TransientSendError, make_sender

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).resolve().parent / "templates"
MESSAGE_ID_DOMAIN = "lamtrack"

# The outbox row refers to its alert and care team by key only. Delivery reads a
# team's hourly cap and stamps the alert's last notification through these two
# column lists, so that sending mail does not depend on the alert or team code.
_ALERTS = table("alerts", column("id", String), column("last_notified_at"))
_CARE_TEAMS = table("care_teams", column("id", String), column("settings", JSON))


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
    return env.get_template(f"{name}.txt").render(**context), env.get_template(f"{name}.html").render(
        **context
    )


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


@dataclass(frozen=True)
class TeamEmailOptions:
    include_details: bool = False
    hourly_cap: int | None = None
    digest: bool = True
    patient_reminders: bool = True


def team_email_options(team_settings: Any) -> TeamEmailOptions:
    """A team's email settings (keys `email_include_details`, `email_hourly_cap`,
    `email_digest`, `email_patient_reminders` of its settings)."""
    raw = team_settings if isinstance(team_settings, dict) else {}
    cap = raw.get("email_hourly_cap")
    return TeamEmailOptions(
        include_details=raw.get("email_include_details") is True,
        hourly_cap=cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else None,
        digest=raw.get("email_digest", True) is not False,
        patient_reminders=raw.get("email_patient_reminders", True) is not False,
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


def queue_row(session: Session, row: OutboxMessage) -> bool:
    """Add `row` in the caller's transaction; False if its Message-ID is already queued."""
    exists = session.scalar(select(OutboxMessage.id).where(OutboxMessage.message_id == row.message_id))
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False  # queued concurrently by someone else: same Message-ID
    return True


def queue_rows(session: Session, rows: Sequence[OutboxMessage]) -> None:
    """Add new rows (built alike by `outbox_row`, Message-IDs not queued before,
    e.g. those of alerts just opened) in the caller's transaction with one
    executemany `insert()`."""
    if not rows:
        return
    table = cast(Table, OutboxMessage.__table__)
    keys = [c.key for c in table.columns if c.key in vars(rows[0])]
    session.execute(insert(table), [{k: vars(row)[k] for k in keys} for row in rows])


def queue_email(session: Session, **fields: Unpack[OutboxFields]) -> bool:
    """Add one outbox row in the caller's transaction; False if already queued."""
    return queue_row(session, outbox_row(**fields))


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


def _team_sent_last_hour(session: Session, team_id: str, now: datetime) -> tuple[int, datetime | None]:
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
            team_settings = session.scalar(
                select(_CARE_TEAMS.c.settings).where(_CARE_TEAMS.c.id == row.care_team_id)
            )
            cap = team_email_options(team_settings).hourly_cap or settings.email_team_hourly_cap
            sent, oldest = _team_sent_last_hour(session, row.care_team_id, now)
            if cap > 0 and sent >= cap:
                later = (oldest or now) + timedelta(hours=1, seconds=1)
                result = session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row_id, _claimable(now))
                    .values(
                        status="pending",
                        next_attempt_at=max(later, now),
                        claimed_by=None,
                        claim_expires_at=None,
                        last_error=f"deferred: team over {cap} emails per hour",
                    )
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
                _deliver_one(
                    session_factory,
                    row_id,
                    settings=settings,
                    sender=sender,
                    now=now,
                    worker=worker,
                    report=report,
                )
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
    row = _claim(session_factory, row_id, settings=settings, now=now(), worker=worker, report=report)
    if row is None:
        return
    try:
        sender.send(build_email(settings, row), row.recipient)
    except PermanentSendError as exc:
        report.failed += 1
        _finish(
            session_factory,
            row,
            worker=worker,
            values={
                "status": "failed",
                "failed_at": now(),
                "last_error": str(exc)[:2000],
                "last_smtp_code": exc.code,
            },
        )
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
                "next_attempt_at": now() + timedelta(seconds=backoff_seconds(settings, row.attempts)),
            }
        values.update(last_error=str(exc)[:2000], last_smtp_code=exc.code)
        _finish(session_factory, row, worker=worker, values=values)
        return
    report.sent += 1
    _finish(
        session_factory,
        row,
        worker=worker,
        values={
            "status": "sent",
            "sent_at": now(),
            "last_error": None,
            "last_smtp_code": None,
        },
    )
    if row.alert_id is not None:
        with session_factory.begin() as session:
            session.execute(
                update(_ALERTS)
                .where(_ALERTS.c.id == row.alert_id)
                .values(last_notified_at=now())
                .execution_options(synchronize_session=False)
            )


def outbox_counts(
    session: Session, statuses: Iterable[str] = ("pending", "sending", "sent", "failed")
) -> dict[str, int]:
    rows = session.execute(
        select(OutboxMessage.status, func.count(OutboxMessage.id))
        .where(OutboxMessage.status.in_(list(statuses)))
        .group_by(OutboxMessage.status)
    ).all()
    return {status: int(n) for status, n in rows}
