"""Replaying evaluations as of past dates (`lamtrack evaluate --as-of`) over a
trough schedule that crosses a daylight-saving change."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert
from backend.auth.principal import Principal
from backend.cli import main
from backend.config import Settings
from backend.notify.models import OutboxMessage
from tests.factories import add_patient, ensure_clinician, ensure_team, ingest


@pytest.fixture
def cli(settings: Settings, tmp_path: Path) -> CliRunner:
    return CliRunner(
        env={
            "DATABASE_URL": settings.database_url,
            "EMAIL_DIR": str(tmp_path / "outbox"),
            "LAMTRACK_JWT_KEYS": "test-1:" + "k" * 48,
        }
    )


def evaluate(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(main, ["evaluate", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def alerts(factory: sessionmaker[Session], pid: str) -> list[Alert]:
    with factory() as session:
        return list(
            session.scalars(
                select(Alert).where(Alert.patient_id == pid).order_by(Alert.opened_at, Alert.rule)
            )
        )


@pytest.fixture
def patients(db_sessionmaker: sessionmaker[Session]) -> dict[str, str]:
    """London: sirolimus started 2026-03-20 (UK clocks go forward 2026-03-29).
    New York: started 2026-03-01 03:00 UTC, which is still 28 February locally
    (US clocks go forward 2026-03-08); she draws her trough on 12 March."""
    with db_sessionmaker.begin() as session:
        team = ensure_team(session, name="Replay team")
        doc = ensure_clinician(
            session, team_id=team.id, email="replay@clinic.example", password="correct horse battery staple"
        )
        clinician = Principal(user_id=doc.id, role="clinician")
        london = add_patient(session, team_id=team.id, timezone="Europe/London", expected_sessions_per_week=0)
        ingest(
            session,
            patient=london,
            stream="regimens",
            principal=clinician,
            now=datetime(2026, 3, 20, 9, tzinfo=UTC),
            items=[{"effective_at": "2026-03-20T09:00:00+00:00", "kind": "start", "daily_dose_mg": 2.0}],
        )
        new_york = add_patient(
            session, team_id=team.id, timezone="America/New_York", expected_sessions_per_week=0
        )
        ingest(
            session,
            patient=new_york,
            stream="regimens",
            principal=clinician,
            now=datetime(2026, 3, 1, 3, tzinfo=UTC),
            items=[{"effective_at": "2026-02-28T22:00:00-05:00", "kind": "start", "daily_dose_mg": 2.0}],
        )
        ingest(
            session,
            patient=new_york,
            stream="troughs",
            principal=clinician,
            now=datetime(2026, 3, 12, 14, tzinfo=UTC),
            items=[
                {
                    "drawn_at": "2026-03-12T08:30:00-04:00",
                    "value_ng_ml": 8.2,
                    "last_dose_at": "2026-03-11T08:30:00-04:00",
                    "assay_method": "lc_ms_ms",
                }
            ],
        )
        return {"london": london.id, "new_york": new_york.id}


def test_trough_schedule_replayed_across_daylight_saving(
    cli: CliRunner,
    db_sessionmaker: sessionmaker[Session],
    patients: dict[str, str],
) -> None:
    pid = patients["london"]
    # Window opens on day 10 (30 March, local); before that nothing is due.
    evaluate(cli, "--as-of", "2026-03-29", "--patient", pid)
    assert alerts(db_sessionmaker, pid) == []

    evaluate(cli, "--as-of", "2026-03-30", "--patient", pid)
    [due] = alerts(db_sessionmaker, pid)
    assert due.rule == "trough_draw_due"
    assert due.severity == "digest"
    assert due.numbers["window_start"] == "2026-03-30"
    assert due.numbers["missed_after"] == "2026-04-16"
    # End of 30 March in London, which is on summer time (UTC+1) by then.
    assert due.opened_at == datetime(2026, 3, 30, 22, 59, 59, tzinfo=UTC)

    # Still overdue on the last day of grace: the same episode, nothing new.
    evaluate(cli, "--as-of", "2026-04-16", "--patient", pid)
    assert [a.id for a in alerts(db_sessionmaker, pid)] == [due.id]

    evaluate(cli, "--as-of", "2026-04-17", "--patient", pid)
    got = {a.rule: a for a in alerts(db_sessionmaker, pid)}
    assert set(got) == {"trough_draw_due", "trough_draw_missed"}
    missed = got["trough_draw_missed"]
    assert missed.status == "open"
    assert missed.severity == "review"
    assert missed.opened_at == datetime(2026, 4, 17, 22, 59, 59, tzinfo=UTC)
    assert got["trough_draw_due"].status == "resolved"
    assert got["trough_draw_due"].resolved_at == missed.opened_at
    assert got["trough_draw_due"].resolved_by is None

    # Replaying the same date again changes nothing.
    evaluate(cli, "--as-of", "2026-04-17", "--patient", pid)
    assert len(alerts(db_sessionmaker, pid)) == 2
    with db_sessionmaker() as session:
        emails = list(session.scalars(select(OutboxMessage)))
    # The digest-severity "due" is not emailed; the missed draw (review) is, once.
    assert [(m.alert_id, m.recipient) for m in emails] == [(missed.id, "replay@clinic.example")]


def test_local_calendar_days_and_later_data_are_ignored(
    cli: CliRunner,
    db_sessionmaker: sessionmaker[Session],
    patients: dict[str, str],
) -> None:
    pid = patients["new_york"]
    # Anchored on the local date 28 February: the window opens 10 March, not 11.
    evaluate(cli, "--as-of", "2026-03-09", "--patient", pid)
    assert alerts(db_sessionmaker, pid) == []
    evaluate(cli, "--as-of", "2026-03-10", "--patient", pid)
    [due] = alerts(db_sessionmaker, pid)
    assert due.rule == "trough_draw_due"
    assert due.numbers["window_start"] == "2026-03-10"
    # New York is on daylight time from 8 March: end of day is 03:59:59 UTC.
    assert due.opened_at == datetime(2026, 3, 11, 3, 59, 59, tzinfo=UTC)
    # The draw of 12 March is not seen as of 11 March ...
    evaluate(cli, "--as-of", "2026-03-11", "--patient", pid)
    assert alerts(db_sessionmaker, pid)[0].status == "open"
    # ... and clears the alert as of 12 March.
    evaluate(cli, "--as-of", "2026-03-12", "--patient", pid)
    [cleared] = alerts(db_sessionmaker, pid)
    assert cleared.status == "resolved"
    assert cleared.resolution_note == "condition cleared"


def test_incremental_pass_takes_only_changed_patients(
    cli: CliRunner,
    db_sessionmaker: sessionmaker[Session],
    patients: dict[str, str],
    settings: Settings,
) -> None:
    from backend.evaluation.runner import evaluate_patients
    from backend.patients.models import Patient

    now = datetime(2026, 4, 20, 12, tzinfo=UTC)
    first = evaluate_patients(db_sessionmaker, settings=settings, as_of=now)
    assert first["patients"] == 2
    assert evaluate_patients(db_sessionmaker, settings=settings, as_of=now)["patients"] == 0
    with db_sessionmaker.begin() as session:
        patient = session.get(Patient, patients["london"])
        assert patient is not None
        ingest(
            session,
            patient=patient,
            stream="troughs",
            principal=Principal(user_id="x", role="clinician"),
            now=datetime.now(UTC),
            items=[
                {"drawn_at": "2026-04-19T08:00:00+01:00", "value_ng_ml": 6.0, "assay_method": "immunoassay"}
            ],
        )
    again = evaluate_patients(db_sessionmaker, settings=settings, as_of=now)
    assert again["patients"] == 1
    output = evaluate(cli, "--changed-only")
    assert '"patients": 0' in output
