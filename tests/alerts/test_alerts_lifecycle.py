"""Alert lifecycle on the real database: one open alert per episode (a database
constraint), auto-resolve, snooze expiry, re-notification, digest."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.digest import queue_weekly_digests
from backend.alerts.models import Alert, AlertEvent
from backend.alerts.services import (
    acknowledge_alert,
    auto_resolve_cleared,
    expire_snoozes,
    raise_alert,
    renotify_unacknowledged,
    resolve_alert,
    snooze_alert,
)
from backend.audit import AuditEvent
from backend.clinical.model import AlertCandidate
from backend.config import Settings
from backend.errors import Conflict
from backend.notify.models import OutboxMessage
from backend.patients.models import Patient
from tests.factories import add_patient, ensure_clinician, ensure_team

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def candidate(
    rule: str = "trough_draw_missed",
    severity: str = "review",
    key: str = "trough_draw_missed:start:2026-04-20",
) -> AlertCandidate:
    return AlertCandidate(
        rule=rule,
        severity=severity,
        episode_key=key,
        numbers={"due_date": "2026-04-20"},
        explanation="No trough recorded for the draw due 2026-04-20.",
        patient_message="Your blood test is overdue.",
    )


@pytest.fixture
def world(db_sessionmaker: sessionmaker[Session]) -> dict[str, str]:
    with db_sessionmaker.begin() as session:
        team = ensure_team(session, name="Team A")
        doc = ensure_clinician(
            session, team_id=team.id, email="a@clinic.example", password="correct horse battery staple"
        )
        ensure_clinician(
            session, team_id=team.id, email="b@clinic.example", password="correct horse battery staple"
        )
        patient = add_patient(session, team_id=team.id)
        return {"team": team.id, "doctor": doc.id, "patient": patient.id}


def _raise(
    factory: sessionmaker[Session], settings: Settings, pid: str, cand: AlertCandidate, at: datetime = T0
) -> Alert | None:
    with factory.begin() as session:
        patient = session.get(Patient, pid)
        assert patient is not None
        return raise_alert(session, patient=patient, candidate=cand, as_of=at, settings=settings)


def _count(factory: sessionmaker[Session], model: type, *where: object) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_database_refuses_a_second_open_alert_for_one_episode(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, str],
) -> None:
    first = _raise(db_sessionmaker, settings, world["patient"], candidate())
    assert first is not None
    with pytest.raises(IntegrityError), db_sessionmaker.begin() as session:
        session.add(
            Alert(
                patient_id=world["patient"],
                care_team_id=world["team"],
                rule=first.rule,
                severity="review",
                episode_key=first.episode_key,
                open_episode_key=first.episode_key,
                status="open",
                opened_at=T0,
                last_seen_at=T0,
                numbers={},
                explanation="dup",
            )
        )
    # Once resolved, its key is released: another episode row may exist beside it.
    with db_sessionmaker.begin() as session:
        alert = session.get(Alert, first.id)
        assert alert is not None
        resolve_alert(session, alert=alert, actor_id=world["doctor"], now=T0)
        session.add(
            Alert(
                patient_id=world["patient"],
                care_team_id=world["team"],
                rule=first.rule,
                severity="review",
                episode_key=first.episode_key,
                open_episode_key=first.episode_key,
                status="open",
                opened_at=T0,
                last_seen_at=T0,
                numbers={},
                explanation="recurrence",
            )
        )
    assert _count(db_sessionmaker, Alert) == 2


def test_raise_is_idempotent_per_episode_and_queues_email_once(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, str],
) -> None:
    assert _raise(db_sessionmaker, settings, world["patient"], candidate()) is not None
    later = T0 + timedelta(days=1)
    assert _raise(db_sessionmaker, settings, world["patient"], candidate(), later) is None
    assert _count(db_sessionmaker, Alert) == 1
    assert _count(db_sessionmaker, OutboxMessage) == 2  # one per clinician, not per raise
    with db_sessionmaker() as session:
        alert = session.scalars(select(Alert)).one()
        assert alert.opened_at == T0
        assert alert.last_seen_at == later
        assert [e.action for e in session.scalars(select(AlertEvent))] == ["opened"]
    assert _count(db_sessionmaker, AuditEvent, AuditEvent.action == "alert.opened") == 1


def test_concurrent_raises_open_one_alert(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, str],
) -> None:
    barrier = threading.Barrier(4)
    results: list[object] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            results.append(_raise(db_sessionmaker, settings, world["patient"], candidate()))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r is not None for r in results) == 1
    assert _count(db_sessionmaker, Alert) == 1
    assert _count(db_sessionmaker, OutboxMessage) == 2


def test_resolved_episode_is_not_raised_again_but_a_cleared_one_may_recur(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, str],
) -> None:
    alert = _raise(db_sessionmaker, settings, world["patient"], candidate())
    assert alert is not None
    with db_sessionmaker.begin() as session:
        stored = session.get(Alert, alert.id)
        assert stored is not None
        resolve_alert(session, alert=stored, actor_id=world["doctor"], now=T0, note="known")
    assert _raise(db_sessionmaker, settings, world["patient"], candidate(), T0 + timedelta(days=1)) is None

    other = candidate(rule="readings_overdue", severity="digest", key="readings_overdue:2026-04-01")
    assert _raise(db_sessionmaker, settings, world["patient"], other) is not None
    with db_sessionmaker.begin() as session:
        n = auto_resolve_cleared(
            session,
            patient_id=world["patient"],
            evaluated_rules=["readings_overdue", "trough_draw_missed"],
            present=set(),
            as_of=T0 + timedelta(days=2),
        )
        assert n == 1
    again = _raise(db_sessionmaker, settings, world["patient"], other, T0 + timedelta(days=3))
    assert again is not None  # the condition came back: a new alert
    # Digest-severity alerts are never emailed one by one.
    assert _count(db_sessionmaker, OutboxMessage, OutboxMessage.alert_id == again.id) == 0


def test_auto_resolve_ignores_alerts_opened_after_the_as_of_time(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, str],
) -> None:
    later = _raise(db_sessionmaker, settings, world["patient"], candidate(), T0 + timedelta(days=10))
    assert later is not None
    with db_sessionmaker.begin() as session:
        assert (
            auto_resolve_cleared(
                session,
                patient_id=world["patient"],
                evaluated_rules=["trough_draw_missed"],
                present=set(),
                as_of=T0,
            )
            == 0
        )


def test_transitions_snooze_expiry_and_renotification(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, str],
) -> None:
    urgent = candidate(rule="urgent_side_effect", severity="urgent", key="urgent_side_effect:r1")
    alert = _raise(db_sessionmaker, settings, world["patient"], urgent)
    assert alert is not None
    cfg = dataclasses.replace(settings, alert_renotify_hours=4)
    with db_sessionmaker.begin() as session:
        session.execute(Alert.__table__.update().values(last_notified_at=T0))  # as the deliverer does
    with db_sessionmaker.begin() as session:
        assert renotify_unacknowledged(session, now=T0 + timedelta(hours=3), settings=cfg) == 0
    with db_sessionmaker.begin() as session:
        assert renotify_unacknowledged(session, now=T0 + timedelta(hours=4, minutes=1), settings=cfg) == 1
    assert _count(db_sessionmaker, OutboxMessage, OutboxMessage.kind == "renotify") == 2
    with db_sessionmaker.begin() as session:  # the same round is not queued twice
        assert renotify_unacknowledged(session, now=T0 + timedelta(hours=5), settings=cfg) == 0

    with db_sessionmaker.begin() as session:
        stored = session.get(Alert, alert.id)
        assert stored is not None
        snooze_alert(session, alert=stored, actor_id=world["doctor"], now=T0 + timedelta(hours=5), hours=24)
        assert stored.status == "snoozed"
    with db_sessionmaker.begin() as session:
        assert expire_snoozes(session, now=T0 + timedelta(hours=28), settings=cfg) == 0
    with db_sessionmaker.begin() as session:
        assert expire_snoozes(session, now=T0 + timedelta(hours=29, minutes=1), settings=cfg) == 1
    with db_sessionmaker.begin() as session:
        stored = session.get(Alert, alert.id)
        assert stored is not None
        assert stored.status == "open"
        acknowledge_alert(session, alert=stored, actor_id=world["doctor"], now=T0 + timedelta(hours=30))
        resolve_alert(
            session,
            alert=stored,
            actor_id=world["doctor"],
            now=T0 + timedelta(hours=31),
            note="seen in clinic",
        )
        with pytest.raises(Conflict):
            acknowledge_alert(session, alert=stored, actor_id=world["doctor"], now=T0)
    with db_sessionmaker() as session:
        actions = [
            e.action
            for e in session.scalars(
                select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.at)
            )
        ]
    assert actions == [
        "opened",
        "renotified",
        "snoozed",
        "snooze_expired",
        "renotified",
        "acknowledged",
        "resolved",
    ]
    # Snooze expiry of an urgent alert emails again (round 2).
    assert _count(db_sessionmaker, OutboxMessage, OutboxMessage.alert_id == alert.id) == 6


def test_weekly_digest_is_queued_once_per_week_and_recipient(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, str],
) -> None:
    _raise(
        db_sessionmaker,
        settings,
        world["patient"],
        candidate(rule="trough_draw_due", severity="digest", key="trough_draw_due:start:x"),
    )
    first = queue_weekly_digests(db_sessionmaker, settings=settings, now=T0)
    again = queue_weekly_digests(db_sessionmaker, settings=settings, now=T0 + timedelta(days=2))
    assert first == {"teams": 1, "queued": 2}
    assert again == {"teams": 1, "queued": 0}
    with db_sessionmaker() as session:
        digest = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "digest")).first()
        assert digest is not None
        assert "Trough draws due/missed: 1" in digest.body_text
        assert world["patient"] not in digest.body_text
    nxt = queue_weekly_digests(db_sessionmaker, settings=settings, now=T0 + timedelta(days=7))
    assert nxt["queued"] == 2


def test_a_flickering_condition_keeps_one_alert_until_clear_for_long_enough(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, str],
) -> None:
    flicker = candidate(rule="repeated_missed_doses", severity="review", key="repeated_missed_doses")
    first = _raise(db_sessionmaker, settings, world["patient"], flicker)
    assert first is not None
    hold = timedelta(days=7)
    with db_sessionmaker.begin() as session:  # absent for 3 days: still open
        assert (
            auto_resolve_cleared(
                session,
                patient_id=world["patient"],
                evaluated_rules=["repeated_missed_doses"],
                present=set(),
                as_of=T0 + timedelta(days=3),
                clear_for=hold,
            )
            == 0
        )
    # Back again: the same alert is refreshed, no new one.
    assert _raise(db_sessionmaker, settings, world["patient"], flicker, T0 + timedelta(days=4)) is None
    with db_sessionmaker.begin() as session:  # 6 days after it was last seen: still open
        assert (
            auto_resolve_cleared(
                session,
                patient_id=world["patient"],
                evaluated_rules=["repeated_missed_doses"],
                present=set(),
                as_of=T0 + timedelta(days=10),
                clear_for=hold,
            )
            == 0
        )
    with db_sessionmaker.begin() as session:  # clear for a full week: resolved
        assert (
            auto_resolve_cleared(
                session,
                patient_id=world["patient"],
                evaluated_rules=["repeated_missed_doses"],
                present=set(),
                as_of=T0 + timedelta(days=11),
                clear_for=hold,
            )
            == 1
        )
    # A trough-due alert ends with the draw itself: resolved at once, whatever the hold.
    due = candidate(rule="trough_draw_due", severity="review", key="trough_draw_due:2026-04-14")
    assert _raise(db_sessionmaker, settings, world["patient"], due, T0 + timedelta(days=12))
    with db_sessionmaker.begin() as session:
        assert (
            auto_resolve_cleared(
                session,
                patient_id=world["patient"],
                evaluated_rules=["trough_draw_due"],
                present=set(),
                as_of=T0 + timedelta(days=13),
                clear_for=hold,
            )
            == 1
        )


def test_a_refresh_raises_severity_only_and_keeps_the_advice_of_the_severity_kept(
    db_sessionmaker: sessionmaker[Session], settings: Settings, world: dict[str, str]
) -> None:
    """While an episode stays open, each later evaluation refreshes its alert:
    the numbers, explanation and last-seen time follow the latest candidate;
    the severity only ever rises; the patient message is replaced only by a
    candidate at least as severe as the alert (never a milder one's advice)."""
    pid, key = world["patient"], "rapid_fev1_decline:segment:1"

    def seen(severity: str, n: int, message: str | None) -> AlertCandidate:
        return AlertCandidate(
            rule="rapid_fev1_decline",
            severity=severity,
            episode_key=key,
            numbers={"slope_ml_per_year": -100.0 * n},
            explanation=f"night {n}",
            patient_message=message,
        )

    def current() -> tuple[Any, ...]:
        with db_sessionmaker() as session:
            a = session.scalars(select(Alert).where(Alert.patient_id == pid)).one()
            events = session.scalar(
                select(func.count()).select_from(AlertEvent).where(AlertEvent.alert_id == a.id)
            )
            return (a.severity, a.numbers, a.explanation, a.patient_message, a.last_seen_at, a.status, events)

    assert _raise(db_sessionmaker, settings, pid, seen("review", 1, "review advice"), T0) is not None
    day = timedelta(days=1)
    # more severe: severity, message and numbers all follow
    assert _raise(db_sessionmaker, settings, pid, seen("urgent", 2, "urgent advice"), T0 + day) is None
    assert current() == (
        "urgent",
        {"slope_ml_per_year": -200.0},
        "night 2",
        "urgent advice",
        T0 + day,
        "open",
        1,
    )
    # milder: the severity and the urgent advice stay, the numbers follow
    assert _raise(db_sessionmaker, settings, pid, seen("review", 3, "review advice"), T0 + 2 * day) is None
    assert current() == (
        "urgent",
        {"slope_ml_per_year": -300.0},
        "night 3",
        "urgent advice",
        T0 + 2 * day,
        "open",
        1,
    )
    # as severe again, with new advice: the advice is replaced
    assert (
        _raise(db_sessionmaker, settings, pid, seen("urgent", 4, "new urgent advice"), T0 + 3 * day) is None
    )
    assert current() == (
        "urgent",
        {"slope_ml_per_year": -400.0},
        "night 4",
        "new urgent advice",
        T0 + 3 * day,
        "open",
        1,
    )
    # as severe with no advice at all: the advice stays
    assert _raise(db_sessionmaker, settings, pid, seen("urgent", 5, None), T0 + 4 * day) is None
    assert current() == (
        "urgent",
        {"slope_ml_per_year": -500.0},
        "night 5",
        "new urgent advice",
        T0 + 4 * day,
        "open",
        1,
    )
    # an older candidate (a replay of an earlier night) changes none of it
    assert _raise(db_sessionmaker, settings, pid, seen("review", 0, "old advice"), T0) is None
    assert current() == (
        "urgent",
        {"slope_ml_per_year": -500.0},
        "night 5",
        "new urgent advice",
        T0 + 4 * day,
        "open",
        1,
    )
