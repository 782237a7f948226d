"""`raise_alerts` (many candidates, a few statements) writes exactly the rows
that `raise_alert` called once per candidate writes: alerts, alert events,
audit rows and care-team emails, with the same idempotency per episode. On
SQLite and PostgreSQL (`--db=postgres`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert, AlertEvent
from backend.alerts.services import raise_alert, raise_alerts, resolve_alert
from backend.audit import AuditEvent
from backend.clinical.model import AlertCandidate
from backend.config import Settings
from backend.notify.models import OutboxMessage
from backend.patients.models import Patient
from tests.factories import add_patient, ensure_clinician, ensure_team

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


def cand(rule: str, severity: str, key: str, value: float = 1.0) -> AlertCandidate:
    return AlertCandidate(
        rule=rule,
        severity=severity,
        episode_key=key,
        numbers={"value": value, "missing": float("nan")},
        explanation=f"{rule} {key} at {value}",
        patient_message="Please get in touch.",
    )


@pytest.fixture
def world(db_sessionmaker: sessionmaker[Session]) -> dict[str, Any]:
    """Two teams (one asks for details in its emails, two clinicians; one with
    default settings, one clinician) and five patients."""
    with db_sessionmaker.begin() as session:
        a = ensure_team(session, name="Team A", settings={"email_include_details": True})
        b = ensure_team(session, name="Team B")
        doc = ensure_clinician(session, team_id=a.id, email="a1@clinic.example", password=PASSWORD)
        ensure_clinician(session, team_id=a.id, email="a2@clinic.example", password=PASSWORD)
        ensure_clinician(session, team_id=b.id, email="b1@clinic.example", password=PASSWORD)
        patients = [add_patient(session, team_id=a.id).id for _ in range(3)]
        patients += [add_patient(session, team_id=b.id).id for _ in range(2)]
        session.flush()
        first = session.get(Patient, patients[0])
        assert first is not None
        first.external_ref = "MRN-0001"
        return {"doctor": doc.id, "patients": patients}


def _items(session: Session, pids: list[str]) -> list[tuple[Patient, AlertCandidate, datetime]]:
    p = [session.get(Patient, pid) for pid in pids]
    assert all(x is not None for x in p)
    return [
        (p[0], cand("rapid_fev1_decline", "review", "rapid:1"), T0),  # type: ignore[list-item]
        (p[0], cand("acute_fev1_drop", "urgent", "acute:1"), T0),  # type: ignore[list-item]
        (p[0], cand("readings_overdue", "digest", "overdue:1"), T0),  # type: ignore[list-item]
        (p[1], cand("trough_draw_missed", "review", "already-open"), T0),  # type: ignore[list-item]
        (p[1], cand("trough_draw_due", "review", "clinician-closed"), T0),  # type: ignore[list-item]
        (p[2], cand("rapid_fev1_decline", "review", "twice", 1.0), T0),  # type: ignore[list-item]
        # the same episode again in the same pass: refreshes (severity up) the new alert
        (p[2], cand("rapid_fev1_decline", "urgent", "twice", 2.0), T0),  # type: ignore[list-item]
        (p[3], cand("acute_fev1_drop", "urgent", "acute:1"), T0),  # type: ignore[list-item]
        (p[4], cand("fev1_below_start_criterion", "review", "start:1"), T0),  # type: ignore[list-item]
    ]


def _prepare(factory: sessionmaker[Session], settings: Settings, world: dict[str, Any]) -> None:
    """An episode already open (raised a day earlier) and one a clinician resolved."""
    pids = world["patients"]
    with factory.begin() as session:
        p1 = session.get(Patient, pids[1])
        assert p1 is not None
        earlier = T0 - timedelta(days=1)
        raise_alert(
            session,
            patient=p1,
            candidate=cand("trough_draw_missed", "review", "already-open", 0.5),
            as_of=earlier,
            settings=settings,
        )
        closed = raise_alert(
            session,
            patient=p1,
            candidate=cand("trough_draw_due", "review", "clinician-closed"),
            as_of=earlier,
            settings=settings,
        )
        assert closed is not None
        resolve_alert(session, alert=closed, actor_id=world["doctor"], now=earlier)


def _snapshot(factory: sessionmaker[Session]) -> list[Any]:
    """Every row the raises wrote, with the random alert ids replaced by the
    alert's (patient, rule, episode, status)."""
    with factory() as session:
        alerts = {a.id: a for a in session.scalars(select(Alert))}

        def name(alert_id: str | None) -> str:
            a = alerts[alert_id or ""]
            return f"{a.patient_id}/{a.rule}/{a.episode_key}/{a.status}"

        def scrub(text: str | None, alert_id: str | None) -> str | None:
            if text is None or alert_id is None:
                return text
            return text.replace(alert_id, "<id>").replace(alert_id[:8].upper(), "<ref>")

        out: list[Any] = sorted(
            (
                name(a.id),
                a.care_team_id,
                a.severity,
                a.source,
                json.dumps(a.numbers, sort_keys=True),
                a.explanation,
                a.patient_message,
                a.opened_at.isoformat(),
                a.last_seen_at.isoformat(),
                a.open_episode_key,
                a.notify_count,
                a.created_at.isoformat(),
                # changed after it was inserted: the wall-clock time of that change
                "unchanged" if a.updated_at == a.created_at else "changed",
            )
            for a in alerts.values()
        )
        out += sorted(
            (
                name(e.alert_id),
                e.at.isoformat(),
                e.actor_id or "",
                e.action,
                e.from_status or "",
                e.to_status,
                e.note or "",
            )
            for e in session.scalars(select(AlertEvent))
        )
        out += sorted(
            (
                name(r.resource_id),
                r.actor_id or "",
                r.actor_role,
                r.action,
                r.patient_id,
                r.outcome,
                r.detail or "",
            )
            for r in session.scalars(select(AuditEvent).where(AuditEvent.resource_type == "alert"))
        )
        out += sorted(
            (
                name(m.alert_id),
                scrub(m.message_id, m.alert_id),
                m.kind,
                m.urgent,
                m.care_team_id,
                m.recipient_user_id,
                m.recipient,
                scrub(m.subject, m.alert_id),
                scrub(m.body_text, m.alert_id),
                scrub(m.body_html, m.alert_id),
                m.status,
                m.attempts,
                m.next_attempt_at.isoformat(),
                m.created_at.isoformat(),
            )
            for m in session.scalars(select(OutboxMessage))
        )
    return out


def _wipe(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        session.execute(delete(OutboxMessage))
        session.execute(delete(AlertEvent))
        session.execute(delete(AuditEvent).where(AuditEvent.resource_type == "alert"))
        session.execute(delete(Alert))


Raise = Callable[[Session, list[tuple[Patient, AlertCandidate, datetime]], Settings], list[bool]]


def _one_by_one(
    session: Session, items: list[tuple[Patient, AlertCandidate, datetime]], settings: Settings
) -> list[bool]:
    return [
        raise_alert(session, patient=p, candidate=c, as_of=t, settings=settings) is not None
        for p, c, t in items
    ]


def _together(
    session: Session, items: list[tuple[Patient, AlertCandidate, datetime]], settings: Settings
) -> list[bool]:
    return [a is not None for a in raise_alerts(session, items, settings=settings)]


def _run(
    factory: sessionmaker[Session], settings: Settings, world: dict[str, Any], how: Raise
) -> tuple[list[bool], list[Any]]:
    _prepare(factory, settings, world)
    with factory.begin() as session:
        opened = how(session, _items(session, world["patients"]), settings)
    return opened, _snapshot(factory)


def test_raising_together_writes_the_rows_raising_one_by_one_writes(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, Any],
) -> None:
    opened, expected = _run(db_sessionmaker, settings, world, _one_by_one)
    assert opened == [True, True, True, False, False, True, False, True, True]
    _wipe(db_sessionmaker)
    assert _run(db_sessionmaker, settings, world, _together) == (opened, expected)
    with db_sessionmaker() as session:
        twice = session.scalars(select(Alert).where(Alert.episode_key == "twice")).one()
        assert twice.severity == "urgent"  # raised as review, seen again as urgent
        detailed = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.recipient == "a1@clinic.example", OutboxMessage.body_text.contains("MRN-0001")
            )
        ).all()
        assert len(detailed) == 2  # patient 0's review and urgent alerts, by her reference
        # one email per clinician of the team; none for the digest alert
        assert len(session.scalars(select(OutboxMessage)).all()) == 2 * 5 + 2


def test_raising_together_again_refreshes_and_opens_nothing(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, Any],
) -> None:
    _run(db_sessionmaker, settings, world, _together)
    later = T0 + timedelta(days=1)
    with db_sessionmaker.begin() as session:
        items = [
            (p, dataclass_replace(c, value=9.0), later) for p, c, _ in _items(session, world["patients"])
        ]
        assert raise_alerts(session, items, settings=settings) == [None] * len(items)
    with db_sessionmaker() as session:
        alerts = session.scalars(select(Alert).where(Alert.status == "open")).all()
        assert {a.last_seen_at for a in alerts} == {later}
        assert all(a.numbers["value"] == 9.0 for a in alerts)
        assert len(session.scalars(select(AlertEvent).where(AlertEvent.action == "opened")).all()) == 8


def dataclass_replace(c: AlertCandidate, *, value: float) -> AlertCandidate:
    return cand(c.rule, c.severity, c.episode_key, value)


def test_an_episode_opened_by_another_transaction_is_refreshed_not_duplicated(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
    world: dict[str, Any],
) -> None:
    """The INSERT skips a row the unique open-episode constraint refuses (here
    an open alert this transaction's lookup could not see: inserted after it)."""
    import backend.alerts.services as services

    pid = world["patients"][3]
    real = services._insert_new_alerts

    raced: list[bool] = []

    def racing(session: Session, alerts: Any) -> set[str]:
        if raced:  # the other request's own INSERT
            return real(session, alerts)
        raced.append(True)
        # another request raises the same episode between lookup and INSERT
        with db_sessionmaker.begin() as other:
            patient = other.get(Patient, pid)
            assert patient is not None
            raise_alert(
                other,
                patient=patient,
                candidate=cand("acute_fev1_drop", "urgent", "acute:1", 0.1),
                as_of=T0 - timedelta(hours=1),
                settings=settings,
            )
        return real(session, alerts)

    if db_sessionmaker.kw["bind"].dialect.name == "sqlite":
        pytest.skip("SQLite takes its write lock at BEGIN: no other writer can interleave")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(services, "_insert_new_alerts", racing)
        with db_sessionmaker.begin() as session:
            patient = session.get(Patient, pid)
            assert patient is not None
            got = raise_alerts(
                session, [(patient, cand("acute_fev1_drop", "urgent", "acute:1"), T0)], settings=settings
            )
    assert got == [None]
    with db_sessionmaker() as session:
        alert = session.scalars(select(Alert).where(Alert.patient_id == pid)).one()
        assert alert.last_seen_at == T0 and alert.numbers["value"] == 1.0  # refreshed
        assert (
            len(session.scalars(select(OutboxMessage).where(OutboxMessage.alert_id == alert.id)).all()) == 1
        )  # the other raise's email only
