"""Alerts over HTTP: event-driven alert to the SMTP server, filters, paging,
lifecycle, object-level authorization and audit."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert
from backend.alerts.services import raise_alert
from backend.audit import AuditEvent
from backend.clinical.model import AlertCandidate
from backend.config import Settings
from backend.notify.outbox import deliver_outbox
from backend.patients.models import Patient
from tests.smtp_sink import SmtpSink


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink().start()
    yield server
    server.stop()


def side_effect(**fields: Any) -> dict[str, Any]:
    return {"items": [{"client_id": str(uuid.uuid4()), "onset_at": datetime.now(UTC).isoformat(), **fields}]}


def seed_alerts(factory: sessionmaker[Session], settings: Settings, patient_id: str) -> None:
    base = datetime(2026, 6, 1, 8, tzinfo=UTC)
    specs = [
        ("trough_draw_missed", "review"),
        ("readings_overdue", "digest"),
        ("rapid_fev1_decline", "review"),
        ("urgent_side_effect", "urgent"),
    ]
    with factory.begin() as session:
        patient = session.get(Patient, patient_id)
        assert patient is not None
        for i, (rule, severity) in enumerate(specs):
            raise_alert(
                session,
                patient=patient,
                as_of=base + timedelta(days=i),
                settings=settings,
                candidate=AlertCandidate(
                    rule=rule,
                    severity=severity,
                    episode_key=f"{rule}:{i}",
                    numbers={"value": i},
                    explanation=f"{rule} explanation",
                    patient_message=f"message {i}",
                ),
            )


def test_urgent_side_effect_reaches_the_smtp_server_quickly(
    patient: Any,
    clinician: Any,
    settings: Settings,
    sink: SmtpSink,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    smtp = dataclasses.replace(settings, email_backend="smtp", smtp_port=sink.port)
    started = time.monotonic()
    resp = patient.post(
        "/api/v1/patients/me/side-effects",
        json=side_effect(term="dyspnea", severity="severe", temperature_c=38.6),
    )
    assert resp.status_code == 200, resp.get_json()
    [result] = resp.get_json()["results"]
    assert result["status"] == "created"
    assert result["alert_id"]
    assert result["patient_message"]

    report = deliver_outbox(db_sessionmaker, settings=smtp)  # the scheduler's deliver job
    [got] = sink.wait_for(1, timeout=5)
    elapsed = got.at - started
    assert report["sent"] == 1
    assert elapsed < 5.0
    assert got.rcpt_tos == [clinician.email]
    assert result["alert_id"][:8].upper() in got.message.get_body(("plain",)).get_content()

    alert = clinician.get(f"/api/v1/alerts/{result['alert_id']}").get_json()
    assert alert["rule"] == "urgent_side_effect"
    assert alert["severity"] == "urgent"
    assert alert["last_notified_at"] is not None
    # Replaying the same batch raises nothing new.
    with db_sessionmaker() as session:
        assert len(list(session.scalars(select(Alert)))) == 1


def test_list_filters_and_cursor_paging(
    clinician: Any,
    patient: Any,
    make_patient: Any,
    settings: Settings,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    other = make_patient(clinician)
    seed_alerts(db_sessionmaker, settings, patient.patient_id)
    seed_alerts(db_sessionmaker, settings, other.patient_id)

    everything = clinician.get("/api/v1/alerts").get_json()
    assert len(everything["items"]) == 8
    assert everything["next_cursor"] is None
    opened = [a["opened_at"] for a in everything["items"]]
    assert opened == sorted(opened, reverse=True)

    mine = clinician.get(f"/api/v1/alerts?patient_id={patient.patient_id}").get_json()["items"]
    assert {a["patient_id"] for a in mine} == {patient.patient_id}
    assert len(mine) == 4
    review = clinician.get("/api/v1/alerts?severity=review").get_json()["items"]
    assert {a["rule"] for a in review} == {"trough_draw_missed", "rapid_fev1_decline"}
    assert len(review) == 4
    assert len(clinician.get("/api/v1/alerts?rule=readings_overdue").get_json()["items"]) == 2
    assert clinician.get("/api/v1/alerts?status=resolved").get_json()["items"] == []

    seen: list[str] = []
    url = "/api/v1/alerts?limit=3"
    while url:
        page = clinician.get(url).get_json()
        assert len(page["items"]) <= 3
        seen += [a["id"] for a in page["items"]]
        url = f"/api/v1/alerts?limit=3&cursor={page['next_cursor']}" if page["next_cursor"] else ""
    assert seen == [a["id"] for a in everything["items"]]

    for bad in ("limit=0", "limit=501", "severity=high", "rule=nope", "cursor=%%%", "extra=1"):
        resp = clinician.get(f"/api/v1/alerts?{bad}")
        assert resp.status_code == 422, bad
        assert resp.headers["Content-Type"] == "application/problem+json"


def test_lifecycle_over_http_is_audited(
    clinician: Any,
    patient: Any,
    settings: Settings,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    seed_alerts(db_sessionmaker, settings, patient.patient_id)
    alert_id = clinician.get("/api/v1/alerts?rule=trough_draw_missed").get_json()["items"][0]["id"]
    base = f"/api/v1/alerts/{alert_id}"

    ack = clinician.post(f"{base}/acknowledge", json={"note": "phoned the lab"})
    assert ack.status_code == 200, ack.get_json()
    assert ack.get_json()["status"] == "acknowledged"
    assert ack.get_json()["acknowledged_by"] == clinician.user_id

    assert clinician.post(f"{base}/snooze", json={}).status_code == 422
    assert (
        clinician.post(f"{base}/snooze", json={"hours": 2, "until": "2030-01-01T00:00:00Z"}).status_code
        == 422
    )
    assert (
        clinician.post(f"{base}/snooze", json={"hours": 24, "status": "resolved"}).status_code == 422
    )  # unknown field
    snoozed = clinician.post(f"{base}/snooze", json={"hours": 24}).get_json()
    assert snoozed["status"] == "snoozed"
    until = datetime.fromisoformat(snoozed["snoozed_until"])
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)

    resolved = clinician.post(f"{base}/resolve", json={"note": "drawn at clinic"}).get_json()
    assert resolved["status"] == "resolved"
    assert resolved["resolution_note"] == "drawn at clinic"
    assert [h["action"] for h in resolved["history"]] == ["opened", "acknowledged", "snoozed", "resolved"]
    again = clinician.post(f"{base}/resolve", json={})
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"

    with db_sessionmaker() as session:
        audit = list(
            session.scalars(
                select(AuditEvent).where(
                    AuditEvent.resource_id == alert_id, AuditEvent.actor_id == clinician.user_id
                )
            )
        )
    actions = [a.action for a in audit]
    assert actions == ["alert.acknowledged", "alert.snoozed", "alert.resolved"]
    assert all(a.patient_id == patient.patient_id and a.request_id for a in audit)


def test_other_teams_alerts_are_not_found(
    clinician: Any,
    patient: Any,
    make_clinician: Any,
    settings: Settings,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    seed_alerts(db_sessionmaker, settings, patient.patient_id)
    alert = clinician.get("/api/v1/alerts").get_json()["items"][0]
    stranger = make_clinician()

    assert stranger.get("/api/v1/alerts").get_json()["items"] == []
    assert stranger.get(f"/api/v1/alerts?patient_id={patient.patient_id}").get_json()["items"] == []
    assert stranger.get(f"/api/v1/alerts/{alert['id']}").status_code == 404
    for action in ("acknowledge", "resolve"):
        resp = stranger.post(f"/api/v1/alerts/{alert['id']}/{action}", json={})
        assert resp.status_code == 404
    assert stranger.post(f"/api/v1/alerts/{alert['id']}/snooze", json={"hours": 1}).status_code == 404
    assert stranger.get(f"/api/v1/patients/{patient.patient_id}/alerts").status_code == 404
    assert clinician.get(f"/api/v1/alerts/{uuid.uuid4()}").status_code == 404
    # Nothing changed.
    assert clinician.get(f"/api/v1/alerts/{alert['id']}").get_json()["status"] == "open"


def test_patient_sees_only_her_own_alerts_with_patient_fields(
    clinician: Any,
    patient: Any,
    make_patient: Any,
    settings: Settings,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    other = make_patient(clinician)
    seed_alerts(db_sessionmaker, settings, patient.patient_id)
    seed_alerts(db_sessionmaker, settings, other.patient_id)

    page = patient.get("/api/v1/patients/me/alerts").get_json()
    assert len(page["items"]) == 4
    for item in page["items"]:
        assert set(item) == {"id", "rule", "severity", "status", "opened_at", "patient_message"}
    own = patient.get(f"/api/v1/patients/{patient.patient_id}/alerts").get_json()["items"]
    assert [a["id"] for a in own] == [a["id"] for a in page["items"]]
    assert patient.get(f"/api/v1/patients/{other.patient_id}/alerts").status_code == 404
    assert patient.get("/api/v1/alerts").status_code == 403
    alert_id = page["items"][0]["id"]
    assert patient.post(f"/api/v1/alerts/{alert_id}/acknowledge", json={}).status_code == 403

    as_clinician = clinician.get(f"/api/v1/patients/{patient.patient_id}/alerts?status=open")
    assert "explanation" in as_clinician.get_json()["items"][0]


def test_an_urgent_side_effect_goes_to_the_outbox_in_one_straight_line(
    patient: Any, clinician: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend files on the call stack at the moment the outbox row is
    written are the documented line (README, Layout), in order: the request
    reaches the outbox without handing the row back to an earlier file."""
    import traceback

    import backend.notify.outbox as outbox
    from backend.config import REPO_ROOT

    real = outbox.insert
    stacks: list[list[str]] = []

    def spy(table: Any, *args: Any, **kw: Any) -> Any:
        if table.name == "outbox_messages":
            files = [f.filename for f in traceback.extract_stack()[:-1]]
            backend = str(REPO_ROOT / "backend") + "/"
            line: list[str] = []
            for name in files:
                if name.startswith(backend) and (not line or line[-1] != name[len(backend) :]):
                    line.append(name[len(backend) :])
            stacks.append(line)
        return real(table, *args, **kw)

    monkeypatch.setattr(outbox, "insert", spy)
    resp = patient.post(
        "/api/v1/patients/me/side-effects",
        json=side_effect(term="dyspnea", severity="severe", temperature_c=38.6),
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["results"][0]["alert_id"]
    assert stacks == [
        [
            "streams/routes.py",
            "streams/ingest.py",
            "alerts/on_ingest.py",
            "alerts/services.py",
            "notify/outbox.py",
        ]
    ]
