"""One side-effect report, one alert: the alert the upload raises is the one the
evaluation passes (replayed weeks, the live pass) find again, never a second.

Two urgent reports sent late in one batch (as `lamtrack demo` sends a year of
side effects) are two alerts, both opened at the upload's time; what tells them
apart is each one's onset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert
from backend.config import Settings
from backend.evaluation.runner import evaluate_patients
from tests.factories import add_patient, ensure_team, ingest


def test_each_report_keeps_one_alert_through_upload_and_evaluations(
    db_sessionmaker: sessionmaker[Session], settings: Settings
) -> None:
    sent_at = datetime(2026, 9, 4, 18, tzinfo=UTC)  # the batch's last item, a mild report
    reports = [
        {"onset_at": "2026-01-10T19:00:00+00:00", "term": "cough", "severity": "severe"},
        {"onset_at": "2026-07-30T17:00:00+00:00", "term": "cough", "severity": "severe"},
        {"onset_at": sent_at.isoformat(), "term": "edema_limbs", "severity": "mild"},
    ]
    with db_sessionmaker.begin() as session:
        team = ensure_team(session, name="Episodes team")
        patient = add_patient(session, team_id=team.id, timezone="Europe/London")
        pid = patient.id
        results = ingest(
            session, patient=patient, stream="side-effects", items=reports, now=sent_at, settings=settings
        )
    report_ids = [r["id"] for r in results]
    assert [bool(r.get("alert_id")) for r in results] == [True, True, False]

    for week in range(1, 40):
        as_of = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=7 * week)
        evaluate_patients(db_sessionmaker, settings=settings, as_of=as_of, full=True, replay=True)
    evaluate_patients(db_sessionmaker, settings=settings, as_of=sent_at + timedelta(days=1), full=True)

    with db_sessionmaker() as session:
        found: list[Any] = list(
            session.execute(
                select(Alert.episode_key, Alert.opened_at, Alert.numbers, Alert.source).where(
                    Alert.patient_id == pid, Alert.rule == "urgent_side_effect"
                )
            )
        )
    assert sorted(key for key, *_ in found) == sorted(f"urgent_side_effect:{i}" for i in report_ids[:2])
    assert {source for *_, source in found} == {"event"}
    # both opened when the batch arrived; each carries its own report's onset
    assert {opened.replace(tzinfo=UTC) for _, opened, *_ in found} == {sent_at}
    assert sorted(numbers["onset_at"] for _, _, numbers, _ in found) == [
        "2026-01-10T19:00:00+00:00",
        "2026-07-30T17:00:00+00:00",
    ]
