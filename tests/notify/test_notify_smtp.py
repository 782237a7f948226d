"""Outbox delivery against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert
from backend.alerts.services import raise_alert
from backend.clinical.model import AlertCandidate
from backend.config import Settings
from backend.notify.models import OutboxMessage
from backend.notify.outbox import alert_message_id, deliver_outbox
from tests.factories import add_patient, ensure_clinician, ensure_team
from tests.smtp_sink import SmtpSink

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_settings(settings: Settings, sink: SmtpSink) -> Settings:
    return dataclasses.replace(
        settings,
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_timeout_seconds=2.0,
        outbox_backoff_base_seconds=60.0,
        outbox_backoff_max_seconds=600.0,
        outbox_max_attempts=5,
    )


def seed(
    factory: sessionmaker[Session], clinicians: int = 2, team_settings: dict[str, Any] | None = None
) -> tuple[str, list[str]]:
    with factory.begin() as session:
        team = ensure_team(session, name="Respiratory team", settings=team_settings)
        emails = [f"doctor{i}@clinic.example" for i in range(clinicians)]
        for email in emails:
            ensure_clinician(session, team_id=team.id, email=email, password=PASSWORD)
        patient = add_patient(session, team_id=team.id, external_ref="MRN-778812", height_cm=163.0)
        return patient.id, emails


def urgent(episode: str = "e1", severity: str = "urgent") -> AlertCandidate:
    return AlertCandidate(
        rule="urgent_side_effect",
        severity=severity,
        episode_key=f"urgent_side_effect:{episode}",
        numbers={"term": "dyspnea", "grade": 3, "temperature_c": 38.7},
        explanation="Dyspnea reported (grade 3; fever 38.7 °C): same-day review.",
        patient_message="Contact your care team today.",
    )


def open_alert(
    factory: sessionmaker[Session],
    settings: Settings,
    patient_id: str,
    candidate: AlertCandidate,
    at: datetime = T0,
) -> Alert:
    from backend.patients.models import Patient

    with factory.begin() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        alert = raise_alert(session, patient=patient, candidate=candidate, as_of=at, settings=settings)
        assert alert is not None
        return alert


def rows(factory: sessionmaker[Session]) -> list[OutboxMessage]:
    with factory() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.recipient)))


def test_alert_email_is_delivered_once_per_clinician_without_patient_details(
    db_sessionmaker: sessionmaker[Session],
    smtp_settings: Settings,
    sink: SmtpSink,
) -> None:
    patient_id, emails = seed(db_sessionmaker)
    alert = open_alert(db_sessionmaker, smtp_settings, patient_id, urgent())

    report = deliver_outbox(db_sessionmaker, settings=smtp_settings, now=lambda: T0)

    assert report["sent"] == 2
    got = sink.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in got) == emails
    for r in got:
        assert r.message_id == alert_message_id(alert.id, r.rcpt_tos[0])
        assert r.message["Subject"].startswith("[LAMtrack] URGENT alert needs review")
        parts = {
            p.get_content_type(): p.get_payload(decode=True).decode()
            for p in r.message.walk()
            if not p.is_multipart()
        }
        assert set(parts) == {"text/plain", "text/html"}
        for body in parts.values():
            assert alert.id[:8].upper() in body
            assert f"/alerts/{alert.id}" in body and "/api/v1/" not in body
            # No patient reference, birth date or measured values by default.
            for secret in ("MRN-778812", "1980", "38.7", "Dyspnea", patient_id):
                assert secret not in body
            assert "no patient details" in body
    assert {r.status for r in rows(db_sessionmaker)} == {"sent"}
    with db_sessionmaker() as session:
        stored = session.get(Alert, alert.id)
        assert stored is not None
        assert stored.last_notified_at == T0
    # A second run sends nothing more.
    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=lambda: T0)["sent"] == 0
    assert len(sink.received) == 2


def test_team_may_opt_in_to_details(
    db_sessionmaker: sessionmaker[Session],
    smtp_settings: Settings,
    sink: SmtpSink,
) -> None:
    patient_id, _ = seed(db_sessionmaker, clinicians=1, team_settings={"email_include_details": True})
    open_alert(db_sessionmaker, smtp_settings, patient_id, urgent())
    deliver_outbox(db_sessionmaker, settings=smtp_settings, now=lambda: T0)
    [got] = sink.wait_for(1)
    body = got.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "MRN-778812" in text
    assert "38.7" in text
    assert "1980" not in text  # never a birth date
    # The footer says what the message holds.
    assert "no patient details" not in text
    assert "contains the patient's reference and values" in text
    html = got.message.get_body(("html",))
    assert html is not None
    assert "no patient details" not in html.get_content()


def test_detailed_email_never_rounds_a_value_across_its_limit(
    db_sessionmaker: sessionmaker[Session],
    smtp_settings: Settings,
    sink: SmtpSink,
) -> None:
    patient_id, _ = seed(db_sessionmaker, clinicians=1, team_settings={"email_include_details": True})
    candidate = AlertCandidate(
        rule="treatment_start_criteria",
        severity="review",
        episode_key="treatment_start_criteria",
        numbers={"percent_predicted": 69.96, "trough_ng_ml": 15.04, "threshold": 70.0},
        explanation="FEV1 is 69.9 % predicted, below the 70 % start criterion.",
        patient_message=None,
    )
    open_alert(db_sessionmaker, smtp_settings, patient_id, candidate)
    deliver_outbox(db_sessionmaker, settings=smtp_settings, now=lambda: T0)
    [got] = sink.wait_for(1)
    body = got.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "69.96" in text and "15.04" in text
    assert "threshold: 70\r\n" in text  # the limit itself, a whole number


def test_smtp_down_then_up_delivers_once_after_recovery(
    db_sessionmaker: sessionmaker[Session],
    smtp_settings: Settings,
    sink: SmtpSink,
) -> None:
    patient_id, emails = seed(db_sessionmaker)
    alert = open_alert(db_sessionmaker, smtp_settings, patient_id, urgent())
    clock = Clock(T0)
    sink.stop()

    first = deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)
    assert first == {"sent": 0, "retried": 2, "failed": 0, "deferred": 0}
    pending = rows(db_sessionmaker)
    assert all(r.status == "pending" and r.attempts == 1 for r in pending)
    assert all("Connection" in (r.last_error or "") for r in pending)
    # Backoff with jitter: between half and all of the 60 s base.
    delays = [(r.next_attempt_at - T0).total_seconds() for r in pending]
    assert all(30 <= d <= 60 for d in delays)
    # Not due yet: nothing is tried.
    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)["retried"] == 0

    clock.advance(seconds=61)
    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)["retried"] == 2
    second = rows(db_sessionmaker)
    assert all(r.attempts == 2 for r in second)
    assert all(60 <= (r.next_attempt_at - clock.now).total_seconds() <= 120 for r in second)

    sink.start()
    clock.advance(seconds=121)
    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)["sent"] == 2
    clock.advance(hours=5)
    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)["sent"] == 0
    got = sink.wait_for(2)
    assert len(got) == 2
    assert sorted(r.message_id for r in got) == sorted(alert_message_id(alert.id, e) for e in emails)
    assert all(r.status == "sent" and r.attempts == 3 for r in rows(db_sessionmaker))


def test_4xx_is_retried_with_the_same_message_id(
    db_sessionmaker: sessionmaker[Session],
    smtp_settings: Settings,
    sink: SmtpSink,
) -> None:
    patient_id, _ = seed(db_sessionmaker, clinicians=1)
    alert = open_alert(db_sessionmaker, smtp_settings, patient_id, urgent())
    sink.handler.data_replies = ["451 4.3.0 Mailbox busy, try again later"]
    clock = Clock(T0)

    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)["retried"] == 1
    [row] = rows(db_sessionmaker)
    assert row.status == "pending"
    assert row.last_smtp_code == 451
    clock.advance(seconds=61)
    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)["sent"] == 1
    [got] = sink.wait_for(1)
    expected = alert_message_id(alert.id, "doctor0@clinic.example")
    assert sink.handler.seen_ids == [expected, expected]
    assert got.message_id == expected


def test_5xx_fails_that_recipient_and_partial_refusal_spares_the_others(
    db_sessionmaker: sessionmaker[Session],
    smtp_settings: Settings,
    sink: SmtpSink,
) -> None:
    patient_id, emails = seed(db_sessionmaker, clinicians=3)
    sink.handler.rcpt_replies = {
        emails[0]: "550 5.1.1 No such user here",
        emails[1]: "452 4.2.2 Mailbox full",
    }
    open_alert(db_sessionmaker, smtp_settings, patient_id, urgent())
    clock = Clock(T0)

    report = deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)
    assert report == {"sent": 1, "retried": 1, "failed": 1, "deferred": 0}
    by_recipient = {r.recipient: r for r in rows(db_sessionmaker)}
    refused = by_recipient[emails[0]]
    assert refused.status == "failed"
    assert refused.last_smtp_code == 550
    assert "No such user" in (refused.last_error or "")
    assert by_recipient[emails[1]].status == "pending"
    assert by_recipient[emails[2]].status == "sent"

    sink.handler.rcpt_replies = {emails[0]: "550 5.1.1 No such user here"}
    clock.advance(minutes=5)
    report = deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)
    assert report["sent"] == 1
    assert report["failed"] == 0
    got = sink.wait_for(2)
    assert sorted(r.rcpt_tos[0] for r in got) == sorted(emails[1:])
    assert by_recipient[emails[0]].attempts == 1


def test_retries_stop_after_max_attempts(
    db_sessionmaker: sessionmaker[Session],
    smtp_settings: Settings,
    sink: SmtpSink,
) -> None:
    patient_id, _ = seed(db_sessionmaker, clinicians=1)
    open_alert(db_sessionmaker, smtp_settings, patient_id, urgent())
    sink.stop()
    clock = Clock(T0)
    for _ in range(smtp_settings.outbox_max_attempts):
        deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)
        clock.advance(hours=1)
    [row] = rows(db_sessionmaker)
    assert row.status == "failed"
    assert row.attempts == smtp_settings.outbox_max_attempts
    assert row.failed_at is not None


def test_hourly_cap_defers_routine_emails_but_never_urgent_ones(
    db_sessionmaker: sessionmaker[Session],
    smtp_settings: Settings,
    sink: SmtpSink,
) -> None:
    patient_id, _ = seed(db_sessionmaker, clinicians=1, team_settings={"email_hourly_cap": 2})
    for k in range(4):
        open_alert(db_sessionmaker, smtp_settings, patient_id, urgent(f"r{k}", "review"))
    clock = Clock(T0)
    first = deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)
    assert (first["sent"], first["deferred"]) == (2, 2)
    # Over the cap, an urgent alert still goes out at once.
    open_alert(db_sessionmaker, smtp_settings, patient_id, urgent("u1"))
    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)["sent"] == 1
    assert len(sink.wait_for(3)) == 3
    # The deferred ones go an hour later, once each.
    clock.advance(hours=1, seconds=2)
    assert deliver_outbox(db_sessionmaker, settings=smtp_settings, now=clock)["sent"] == 2
    assert len(sink.wait_for(5)) == 5
    assert {r.status for r in rows(db_sessionmaker)} == {"sent"}
