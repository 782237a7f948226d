"""Alert lifecycle: raise (idempotent per episode), acknowledge, snooze,
resolve, auto-resolve, snooze expiry and re-notification.

Every change writes an AlertEvent (the alert's own history) and an audit row.
Emails are queued in the outbox in the same transaction as the change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from backend.alerts.emails import (
    AlertRecipients,
    alert_emails,
    alert_recipients,
    patient_reference,
    queue_alert_emails,
)
from backend.alerts.models import Alert, AlertEvent
from backend.audit import AuditEvent, audit_row
from backend.clinical.model import RULE_IDS, AlertCandidate
from backend.config import Settings
from backend.db import new_id, utcnow
from backend.errors import Conflict, Unprocessable
from backend.notify.models import OutboxMessage
from backend.notify.outbox import queue_rows
from backend.patients.models import Patient

log = logging.getLogger(__name__)

SYSTEM_ROLE = "system"
UNRESOLVED = ("open", "acknowledged", "snoozed")
EVENT_RULES = frozenset({"urgent_side_effect", "lam_event", "interacting_drug_change"})
# Rules the evaluation decides each time; an open alert of one of these rules that
# the engine no longer raises has cleared.
EVALUATED_RULES = tuple(r for r in RULE_IDS if r not in EVENT_RULES)


def _event_rows(
    alert: Alert,
    *,
    action: str,
    at: datetime,
    from_status: str | None,
    actor_id: str | None = None,
    actor_role: str = SYSTEM_ROLE,
    note: str | None = None,
) -> tuple[AlertEvent, AuditEvent]:
    """The alert's history row and the audit row of one change."""
    return (
        AlertEvent(
            alert_id=alert.id,
            at=at,
            actor_id=actor_id,
            action=action,
            from_status=from_status,
            to_status=alert.status,
            note=note,
        ),
        audit_row(
            actor_id=actor_id,
            actor_role=actor_role,
            action=f"alert.{action}",
            patient_id=alert.patient_id,
            resource_type="alert",
            resource_id=alert.id,
            outcome="success",
        ),
    )


def _event(
    session: Session,
    alert: Alert,
    *,
    action: str,
    at: datetime,
    from_status: str | None,
    actor_id: str | None = None,
    actor_role: str = SYSTEM_ROLE,
    note: str | None = None,
) -> None:
    session.add_all(
        _event_rows(
            alert,
            action=action,
            at=at,
            from_status=from_status,
            actor_id=actor_id,
            actor_role=actor_role,
            note=note,
        )
    )


def _jsonable(numbers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in numbers.items():
        if isinstance(value, float) and value != value:  # NaN is not JSON
            value = None
        out[str(key)] = value
    return out


def find_unresolved(session: Session, *, patient_id: str, rule: str, episode_key: str) -> Alert | None:
    return session.scalars(
        select(Alert).where(
            Alert.patient_id == patient_id,
            Alert.rule == rule,
            Alert.open_episode_key == episode_key,
        )
    ).one_or_none()


def raise_alert(
    session: Session,
    *,
    patient: Patient,
    candidate: AlertCandidate,
    as_of: datetime,
    source: str | None = None,
    settings: Settings,
) -> Alert | None:
    """Open an alert for `candidate` unless its episode is already known.

    Returns the new alert, or None when an unresolved alert for the same
    (patient, rule, episode) exists (its numbers are refreshed) or when a
    clinician already resolved this very episode (a resolved episode is not
    raised again while it lasts; only one that cleared by itself may recur).
    The care-team emails are queued in the same transaction.
    """
    return raise_alerts(session, [(patient, candidate, as_of)], source=source, settings=settings)[0]


@dataclass
class KnownAlerts:
    """What `raise_alerts` and `auto_resolve_cleared` need to know of some
    patients' alerts, read once for all of them (`known_alerts`) instead of once
    per call: their unresolved alerts by (patient, rule, open episode), and the
    (patient, rule, episode) a clinician resolved. Kept current by the calls
    that are given it (a new alert joins `unresolved`)."""

    patient_ids: frozenset[str]
    unresolved: dict[tuple[str, str, str], Alert] = field(default_factory=dict)
    closed_by_clinician: set[tuple[str, str, str]] = field(default_factory=set)

    def unresolved_of(self, patient_id: str) -> list[Alert]:
        return [a for (pid, _, _), a in self.unresolved.items() if pid == patient_id]


def known_alerts(
    session: Session, patient_ids: Iterable[str], *, unresolved: Iterable[Alert] | None = None
) -> KnownAlerts:
    """The patients' unresolved alerts (or `unresolved`, already read: all of
    theirs) and clinician-resolved episodes, in two queries at most."""
    ids = list(dict.fromkeys(patient_ids))
    known = KnownAlerts(frozenset(ids))
    if not ids:
        return known
    if unresolved is None:
        unresolved = session.scalars(
            select(Alert).where(Alert.patient_id.in_(ids), Alert.open_episode_key.is_not(None))
        )
    for a in unresolved:
        if a.open_episode_key is not None and a.patient_id in known.patient_ids:
            known.unresolved[(a.patient_id, a.rule, a.open_episode_key)] = a
    known.closed_by_clinician = {
        (pid, rule, key)
        for pid, rule, key in session.execute(
            select(Alert.patient_id, Alert.rule, Alert.episode_key).where(
                Alert.patient_id.in_(ids),
                Alert.status == "resolved",
                Alert.resolved_by.is_not(None),
            )
        )
    }
    return known


def raise_alerts(
    session: Session,
    items: Sequence[tuple[Patient, AlertCandidate, datetime]],
    *,
    source: str | None = None,
    settings: Settings,
    known: KnownAlerts | None = None,
) -> list[Alert | None]:
    """`raise_alert` for each (patient, candidate, as-of time), in order, with a
    few statements for all of them: one lookup of the patients' open episodes,
    one of the episodes clinicians resolved (both skipped when `known` holds
    them, read once for a chunk of patients), one INSERT of the new
    alerts, then their events, audit rows and care-team emails in batched
    inserts (flushed with the session). Returns what `raise_alert` would have
    returned for each item.

    Idempotent per episode like `raise_alert`: a candidate whose episode is
    open refreshes that alert; the INSERT skips any row the unique open-episode
    constraint refuses (an alert raised concurrently by another transaction),
    and that alert is refreshed instead. Everything is written in the caller's
    transaction; a caller that wants a failure to stay contained wraps the
    call in a savepoint.
    """
    results: list[Alert | None] = []
    if not items:
        return results
    patient_ids = list({patient.id for patient, _, _ in items})
    if known is None:
        known = known_alerts(session, patient_ids)
    elif not known.patient_ids.issuperset(patient_ids):
        raise ValueError("`known` does not cover every patient of `items`")
    open_now = known.unresolved
    closed_by_clinician = known.closed_by_clinician
    resolved_settings: Settings | None = None
    recipients: dict[str, AlertRecipients] = {}
    new: list[tuple[Alert, AlertCandidate, list[OutboxMessage]]] = []
    pending: set[Alert] = set()  # built here, not inserted yet
    for patient, candidate, as_of in items:
        key = (patient.id, candidate.rule, candidate.episode_key)
        existing = open_now.get(key)
        if existing is not None:
            if _refresh(existing, candidate, as_of) and existing in pending:
                # as the UPDATE of an alert already inserted would stamp it
                existing.updated_at = utcnow()
            results.append(None)
            continue
        if key in closed_by_clinician:
            results.append(None)
            continue
        alert = new_alert(patient, candidate, as_of, source)
        emails: list[OutboxMessage] = []
        if alert.severity != "digest":
            resolved_settings = settings
            team = recipients.get(patient.care_team_id)
            if team is None:
                team = recipients[patient.care_team_id] = alert_recipients(session, patient.care_team_id)
            emails = alert_emails(
                alert,
                settings=resolved_settings,
                now=as_of,
                recipients=team,
                patient_ref=patient_reference(patient, patient.id),
            )
        if emails:
            alert.notify_count = 1
        open_now[key] = alert  # the same episode again in `items` refreshes it
        new.append((alert, candidate, emails))
        pending.add(alert)
        results.append(alert)
    if not new:
        return results
    inserted = _insert_new_alerts(session, [alert for alert, _, _ in new])
    events: list[AlertEvent] = []
    audits: list[AuditEvent] = []
    outbox: list[OutboxMessage] = []
    for alert, candidate, emails in new:
        if alert.id not in inserted:
            # raised concurrently by another transaction: already open
            results[results.index(alert)] = None
            found = find_unresolved(
                session, patient_id=alert.patient_id, rule=alert.rule, episode_key=alert.episode_key
            )
            key = (alert.patient_id, alert.rule, alert.episode_key)
            if found is not None:
                _refresh(found, candidate, alert.last_seen_at)
                open_now[key] = found
            else:
                open_now.pop(key, None)
            continue
        make_transient_to_detached(alert)
        session.add(alert)  # persistent, as the inserted row
        event, audit = _event_rows(alert, action="opened", at=alert.opened_at, from_status=None)
        events.append(event)
        audits.append(audit)
        outbox += emails
        log.info(
            "alert %s opened: %s/%s for patient %s", alert.id, alert.rule, alert.severity, alert.patient_id
        )
    for rows in (events, audits):
        _insert_rows(session, rows)
    queue_rows(session, outbox)
    return results


def _insert_rows(session: Session, rows: Sequence[Any]) -> None:
    """INSERT new objects of one mapped class, all built alike (the same
    attributes set), as one executemany `insert()`; nothing reads them back, so they skip
    the unit of work. Column defaults (ids, times) apply as in a flush."""
    if not rows:
        return
    table = cast(Table, type(rows[0]).__table__)
    keys = [c.key for c in table.columns if c.key in vars(rows[0])]
    session.execute(insert(table), [{k: vars(row)[k] for k in keys} for row in rows])


def new_alert(
    patient: Patient, candidate: AlertCandidate, as_of: datetime, source: str | None = None
) -> Alert:
    """The alert row a new episode of `candidate` opens (not yet added anywhere)."""
    if source is None:
        source = "event" if candidate.rule in EVENT_RULES else "evaluation"
    return Alert(
        id=new_id(),
        patient_id=patient.id,
        care_team_id=patient.care_team_id,
        rule=candidate.rule,
        severity=candidate.severity,
        episode_key=candidate.episode_key,
        open_episode_key=candidate.episode_key,
        source=source,
        status="open",
        opened_at=as_of,
        last_seen_at=as_of,
        numbers=_jsonable(dict(candidate.numbers)),
        explanation=candidate.explanation,
        patient_message=candidate.patient_message,
        acknowledged_by=None,
        acknowledged_at=None,
        snoozed_until=None,
        resolved_by=None,
        resolved_at=None,
        resolution_note=None,
        last_notified_at=None,
        notify_count=0,
        created_at=as_of,
        updated_at=as_of,
    )


def _insert_new_alerts(session: Session, alerts: Sequence[Alert]) -> set[str]:
    """INSERT the alerts, skipping those the unique open-episode constraint
    refuses; the ids of the rows inserted."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):  # pragma: no cover - SQLite and PostgreSQL only
        raise NotImplementedError(dialect)
    table = cast(Table, Alert.__table__)
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(table).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    columns = [c.key for c in table.columns]
    # executemany (one statement prepared once) is much cheaper here than a
    # multi-row INSERT ... RETURNING; the new ids are client-made, so the rows
    # inserted are the ids this transaction now sees
    session.execute(stmt, [{c: getattr(a, c) for c in columns} for a in alerts])
    ids = [a.id for a in alerts]
    return set(session.scalars(select(Alert.id).where(Alert.id.in_(ids))))


_SEVERITY_RANK = {"digest": 0, "review": 1, "urgent": 2}


def _refresh(alert: Alert, candidate: AlertCandidate, as_of: datetime) -> bool:
    """The condition still holds: keep the numbers current. Whether anything changed."""
    changed = False
    if as_of > alert.last_seen_at:
        alert.last_seen_at = as_of
        alert.numbers = _jsonable(dict(candidate.numbers))
        alert.explanation = candidate.explanation
        # the message follows the severity the alert keeps (never a milder one's advice)
        if candidate.patient_message is not None and _SEVERITY_RANK.get(
            candidate.severity, 0
        ) >= _SEVERITY_RANK.get(alert.severity, 0):
            alert.patient_message = candidate.patient_message
        changed = True
    if _SEVERITY_RANK.get(candidate.severity, 0) > _SEVERITY_RANK.get(alert.severity, 0):
        alert.severity = candidate.severity
        changed = True
    return changed


# Rules whose condition ends with a discrete event (a trough drawn, a due date
# passed into "missed"): resolved at once. Threshold-crossing rules (FEV1 trend,
# adherence, readings overdue) wait out `clear_for` so a flickering condition
# keeps one alert.
CLEARED_BY_EVENT = frozenset({"trough_draw_due", "trough_draw_missed", "trough_out_of_range"})


def auto_resolve_cleared(
    session: Session,
    *,
    patient_id: str,
    evaluated_rules: Iterable[str],
    present: set[tuple[str, str]],
    as_of: datetime,
    clear_for: timedelta = timedelta(0),
    known: KnownAlerts | None = None,
) -> int:
    """Resolve evaluation alerts whose (rule, episode) the evaluation no longer
    raises and has not raised for at least `clear_for` (hysteresis). With
    `known` (read once for many patients) the patient's unresolved alerts are
    taken from it instead of being looked up.

    Only alerts opened at or before `as_of` are considered, so replaying an
    older date never resolves an alert raised by a later one.
    """
    rules = list(evaluated_rules)
    if not rules:
        return 0
    candidates: Iterable[Alert]
    if known is not None:
        if patient_id not in known.patient_ids:
            raise ValueError("`known` does not cover the patient")
        wanted = set(rules)
        candidates = [
            a
            for a in known.unresolved_of(patient_id)
            if a.status in UNRESOLVED
            and a.source == "evaluation"
            and a.rule in wanted
            and a.opened_at <= as_of
        ]
    else:
        candidates = session.scalars(
            select(Alert).where(
                Alert.patient_id == patient_id,
                Alert.status.in_(UNRESOLVED),
                Alert.source == "evaluation",
                Alert.rule.in_(rules),
                Alert.opened_at <= as_of,
            )
        )
    resolved: list[Alert] = []
    count = 0
    for alert in candidates:
        if (alert.rule, alert.episode_key) in present:
            continue
        if alert.rule not in CLEARED_BY_EVENT and as_of - alert.last_seen_at < clear_for:
            continue
        before = alert.status
        alert.status = "resolved"
        alert.open_episode_key = None
        alert.resolved_at = as_of
        alert.resolved_by = None
        alert.resolution_note = "condition cleared"
        alert.updated_at = as_of
        _event(session, alert, action="auto_resolved", at=as_of, from_status=before, note="condition cleared")
        resolved.append(alert)
        count += 1
    if known is not None:
        for alert in resolved:
            known.unresolved.pop((alert.patient_id, alert.rule, alert.episode_key), None)
    return count


# ------------------------------------------------------------------ clinician actions

# What a clinician may do in each state (the functions below): acknowledging an
# acknowledged alert changes nothing, so it is not offered; acknowledging a
# snoozed one ends the snooze; a resolved alert is closed.
ACTIONS_BY_STATUS: dict[str, tuple[str, ...]] = {
    "open": ("acknowledge", "snooze", "resolve"),
    "acknowledged": ("snooze", "resolve"),
    "snoozed": ("acknowledge", "snooze", "resolve"),
    "resolved": (),
}


def allowed_actions(alert: Alert) -> tuple[str, ...]:
    return ACTIONS_BY_STATUS.get(alert.status, ())


def acknowledge_alert(
    session: Session, *, alert: Alert, actor_id: str, now: datetime, note: str | None = None
) -> Alert:
    if alert.status == "resolved":
        raise Conflict("The alert is already resolved.")
    if alert.status == "acknowledged":
        return alert  # acknowledging twice changes nothing
    before = alert.status
    alert.status = "acknowledged"
    alert.acknowledged_by = actor_id
    alert.acknowledged_at = now
    alert.snoozed_until = None
    alert.updated_at = now
    _event(
        session,
        alert,
        action="acknowledged",
        at=now,
        from_status=before,
        actor_id=actor_id,
        actor_role="clinician",
        note=note,
    )
    return alert


MAX_SNOOZE = timedelta(days=90)


def snooze_alert(
    session: Session,
    *,
    alert: Alert,
    actor_id: str,
    now: datetime,
    until: datetime | None = None,
    hours: float | None = None,
    note: str | None = None,
) -> Alert:
    if alert.status == "resolved":
        raise Conflict("The alert is already resolved.")
    if until is None and hours is None:
        raise Unprocessable(
            "Give `until` or `hours`.", errors={"json": {"until": ["until or hours is required"]}}
        )
    if until is None:
        assert hours is not None
        until = now + timedelta(hours=hours)
    if until <= now:
        raise Unprocessable(
            "A snooze must end in the future.", errors={"json": {"until": ["must be in the future"]}}
        )
    if until - now > MAX_SNOOZE:
        raise Unprocessable(
            "A snooze may last at most 90 days.", errors={"json": {"until": ["at most 90 days ahead"]}}
        )
    before = alert.status
    alert.status = "snoozed"
    alert.snoozed_until = until
    alert.updated_at = now
    _event(
        session,
        alert,
        action="snoozed",
        at=now,
        from_status=before,
        actor_id=actor_id,
        actor_role="clinician",
        note=note if note else f"until {until.isoformat()}",
    )
    return alert


def resolve_alert(
    session: Session, *, alert: Alert, actor_id: str, now: datetime, note: str | None = None
) -> Alert:
    if alert.status == "resolved":
        raise Conflict("The alert is already resolved.")
    before = alert.status
    alert.status = "resolved"
    alert.open_episode_key = None
    alert.resolved_by = actor_id
    alert.resolved_at = now
    alert.resolution_note = note
    alert.snoozed_until = None
    alert.updated_at = now
    _event(
        session,
        alert,
        action="resolved",
        at=now,
        from_status=before,
        actor_id=actor_id,
        actor_role="clinician",
        note=note,
    )
    return alert


# ------------------------------------------------------------------ scheduled upkeep


def expire_snoozes(session: Session, *, now: datetime, settings: Settings) -> int:
    """Snoozed alerts whose time is up are open again (and urgent ones re-emailed)."""
    due = list(
        session.scalars(
            select(Alert)
            .where(Alert.status == "snoozed", Alert.snoozed_until <= now)
            .with_for_update(skip_locked=True)
        )
    )
    for alert in due:
        alert.status = "open"
        alert.snoozed_until = None
        alert.updated_at = now
        _event(session, alert, action="snooze_expired", at=now, from_status="snoozed")
        if alert.severity == "urgent":
            _renotify(session, alert, now=now, settings=settings)
    return len(due)


def _renotify(session: Session, alert: Alert, *, now: datetime, settings: Settings) -> int:
    round_no = max(1, alert.notify_count)
    queued = queue_alert_emails(session, alert=alert, settings=settings, now=now, round_no=round_no)
    alert.notify_count = round_no + 1
    alert.last_notified_at = now
    _event(session, alert, action="renotified", at=now, from_status=alert.status, note=f"round {round_no}")
    return queued


def renotify_unacknowledged(session: Session, *, now: datetime, settings: Settings) -> int:
    """Email urgent alerts again that nobody acknowledged within
    `alert_renotify_hours` of the last notification."""
    resolved = settings
    if resolved.alert_renotify_hours <= 0:
        return 0
    cutoff = now - timedelta(hours=resolved.alert_renotify_hours)
    stale = list(
        session.scalars(
            select(Alert)
            .where(
                Alert.status == "open",
                Alert.severity == "urgent",
                Alert.acknowledged_at.is_(None),
                Alert.last_notified_at.is_not(None),
                Alert.last_notified_at <= cutoff,
            )
            .with_for_update(skip_locked=True)
        )
    )
    for alert in stale:
        _renotify(session, alert, now=now, settings=resolved)
    return len(stale)
