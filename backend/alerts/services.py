"""Alert lifecycle: raise (idempotent per episode), acknowledge, snooze,
resolve, auto-resolve, snooze expiry and re-notification.

Every change writes an AlertEvent (the alert's own history) and an audit row.
Emails are queued in the outbox in the same transaction as the change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backend.alerts.models import Alert, AlertEvent
from backend.audit import record_audit
from backend.clinical.model import AlertCandidate
from backend.config import Settings
from backend.errors import Conflict, Unprocessable
from backend.notify.services import queue_alert_emails
from backend.patients.models import Patient

log = logging.getLogger(__name__)

SYSTEM_ROLE = "system"
UNRESOLVED = ("open", "acknowledged", "snoozed")
EVENT_RULES = frozenset({"urgent_side_effect", "lam_event"})


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from flask import has_app_context

    if has_app_context():
        from backend.web import settings as app_settings

        return app_settings()
    return Settings.from_env()


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
    session.add(
        AlertEvent(
            alert_id=alert.id,
            at=at,
            actor_id=actor_id,
            action=action,
            from_status=from_status,
            to_status=alert.status,
            note=note,
        )
    )
    record_audit(
        session,
        actor_id=actor_id,
        actor_role=actor_role,
        action=f"alert.{action}",
        patient_id=alert.patient_id,
        resource_type="alert",
        resource_id=alert.id,
        outcome="success",
    )


def _jsonable(numbers: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in numbers.items():
        if isinstance(value, float) and value != value:  # NaN is not JSON
            value = None
        out[str(key)] = value
    return out


def find_unresolved(
    session: Session, *, patient_id: str, rule: str, episode_key: str
) -> Alert | None:
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
    settings: Settings | None = None,
) -> Alert | None:
    """Open an alert for `candidate` unless its episode is already known.

    Returns the new alert, or None when an unresolved alert for the same
    (patient, rule, episode) exists (its numbers are refreshed) or when a
    clinician already resolved this very episode (a resolved episode is not
    raised again while it lasts; only one that cleared by itself may recur).
    The care-team emails are queued in the same transaction.
    """
    if source is None:
        source = "event" if candidate.rule in EVENT_RULES else "evaluation"
    existing = find_unresolved(
        session, patient_id=patient.id, rule=candidate.rule, episode_key=candidate.episode_key
    )
    if existing is not None:
        _refresh(existing, candidate, as_of)
        return None
    closed_by_clinician = session.scalar(
        select(Alert.id).where(
            Alert.patient_id == patient.id,
            Alert.rule == candidate.rule,
            Alert.episode_key == candidate.episode_key,
            Alert.status == "resolved",
            Alert.resolved_by.is_not(None),
        ).limit(1)
    )
    if closed_by_clinician is not None:
        return None
    alert = Alert(
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
        notify_count=0,
        created_at=as_of,
        updated_at=as_of,
    )
    try:
        with session.begin_nested():
            session.add(alert)
            session.flush()
    except IntegrityError:
        # Raised concurrently by another request or scheduler: already open.
        found = find_unresolved(
            session, patient_id=patient.id, rule=candidate.rule, episode_key=candidate.episode_key
        )
        if found is not None:
            _refresh(found, candidate, as_of)
        return None
    _event(session, alert, action="opened", at=as_of, from_status=None)
    resolved_settings = _settings(settings)
    queued = queue_alert_emails(session, alert=alert, settings=resolved_settings, now=as_of)
    if queued:
        alert.notify_count = 1
    log.info("alert %s opened: %s/%s for patient %s", alert.id, alert.rule, alert.severity,
             alert.patient_id)
    return alert


_SEVERITY_RANK = {"digest": 0, "review": 1, "urgent": 2}


def _refresh(alert: Alert, candidate: AlertCandidate, as_of: datetime) -> None:
    """The condition still holds: keep the numbers current."""
    if as_of > alert.last_seen_at:
        alert.last_seen_at = as_of
        alert.numbers = _jsonable(dict(candidate.numbers))
        alert.explanation = candidate.explanation
        if candidate.patient_message is not None:
            alert.patient_message = candidate.patient_message
    if _SEVERITY_RANK.get(candidate.severity, 0) > _SEVERITY_RANK.get(alert.severity, 0):
        alert.severity = candidate.severity


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
) -> int:
    """Resolve evaluation alerts whose (rule, episode) the evaluation no longer
    raises and has not raised for at least `clear_for` (hysteresis).

    Only alerts opened at or before `as_of` are considered, so replaying an
    older date never resolves an alert raised by a later one.
    """
    rules = list(evaluated_rules)
    if not rules:
        return 0
    candidates = session.scalars(
        select(Alert).where(
            Alert.patient_id == patient_id,
            Alert.status.in_(UNRESOLVED),
            Alert.source == "evaluation",
            Alert.rule.in_(rules),
            Alert.opened_at <= as_of,
        )
    )
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
        _event(session, alert, action="auto_resolved", at=as_of, from_status=before,
               note="condition cleared")
        count += 1
    return count


# ------------------------------------------------------------------ clinician actions


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
    _event(session, alert, action="acknowledged", at=now, from_status=before,
           actor_id=actor_id, actor_role="clinician", note=note)
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
        raise Unprocessable("Give `until` or `hours`.",
                            errors={"json": {"until": ["until or hours is required"]}})
    if until is None:
        assert hours is not None
        until = now + timedelta(hours=hours)
    if until <= now:
        raise Unprocessable("A snooze must end in the future.",
                            errors={"json": {"until": ["must be in the future"]}})
    if until - now > MAX_SNOOZE:
        raise Unprocessable("A snooze may last at most 90 days.",
                            errors={"json": {"until": ["at most 90 days ahead"]}})
    before = alert.status
    alert.status = "snoozed"
    alert.snoozed_until = until
    alert.updated_at = now
    _event(session, alert, action="snoozed", at=now, from_status=before,
           actor_id=actor_id, actor_role="clinician",
           note=note if note else f"until {until.isoformat()}")
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
    _event(session, alert, action="resolved", at=now, from_status=before,
           actor_id=actor_id, actor_role="clinician", note=note)
    return alert


# ------------------------------------------------------------------ scheduled upkeep


def expire_snoozes(session: Session, *, now: datetime, settings: Settings | None = None) -> int:
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
            _renotify(session, alert, now=now, settings=_settings(settings))
    return len(due)


def _renotify(session: Session, alert: Alert, *, now: datetime, settings: Settings) -> int:
    round_no = max(1, alert.notify_count)
    queued = queue_alert_emails(session, alert=alert, settings=settings, now=now,
                                round_no=round_no)
    alert.notify_count = round_no + 1
    alert.last_notified_at = now
    _event(session, alert, action="renotified", at=now, from_status=alert.status,
           note=f"round {round_no}")
    return queued


def renotify_unacknowledged(
    session: Session, *, now: datetime, settings: Settings | None = None
) -> int:
    """Email urgent alerts again that nobody acknowledged within
    `alert_renotify_hours` of the last notification."""
    resolved = _settings(settings)
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
