"""Real `lamtrack scheduler` processes on one database and a loopback SMTP server:
one leader at a time, each alert and each email exactly once, takeover after the
leader is killed, and work missed while no scheduler ran done once on start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.alerts.models import Alert
from backend.auth.principal import Principal
from backend.notify.models import OutboxMessage
from backend.scheduler.lease import JobState, SchedulerLease
from tests.factories import add_patient, ensure_clinician, ensure_team, ingest
from tests.smtp_sink import SmtpSink

CLINICIANS = ["lead@clinic.example", "nurse@clinic.example"]


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture
def team(db_sessionmaker: sessionmaker[Session]) -> dict[str, str]:
    with db_sessionmaker.begin() as session:
        t = ensure_team(session, name="Scheduler team")
        ids = [
            ensure_clinician(session, team_id=t.id, email=e, password="correct horse battery staple").id
            for e in CLINICIANS
        ]
        return {"team": t.id, "clinician": ids[0]}


def add_untested_patient(factory: sessionmaker[Session], team: dict[str, str]) -> str:
    """On sirolimus for 60 days without a trough: a missed draw (review alert)."""
    started = datetime.now(UTC) - timedelta(days=60)
    with factory.begin() as session:
        patient = add_patient(session, team_id=team["team"], expected_sessions_per_week=0)
        ingest(
            session,
            patient=patient,
            stream="regimens",
            principal=Principal(user_id=team["clinician"], role="clinician"),
            now=datetime.now(UTC),
            items=[{"effective_at": started.isoformat(), "kind": "start", "daily_dose_mg": 2.0}],
        )
        return patient.id


class Schedulers:
    def __init__(self, database_url: str, sink: SmtpSink, tmp: Path) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "EMAIL_BACKEND": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(sink.port),
            "SCHEDULER_LEASE_SECONDS": "3",
            "SCHEDULER_RENEW_SECONDS": "1",
            "SCHEDULER_DELIVER_SECONDS": "1",
            "SCHEDULER_EVALUATE_SECONDS": "1",
            "LAMTRACK_JWT_KEYS": "test-1:" + "k" * 48,
            "LAMTRACK_INSTANCE_DIR": str(tmp),
            "LOG_LEVEL": "INFO",
        }
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, holder: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{holder}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-c", "from backend.cli import main; main()", "scheduler", "--holder", holder],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[holder] = proc
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp.glob("*.log"))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def schedulers(database_url: str, sink: SmtpSink, tmp_path: Path) -> Iterator[Schedulers]:
    runner = Schedulers(database_url, sink, tmp_path)
    yield runner
    runner.stop_all()


def wait_until(check: Callable[[], Any], timeout: float, what: str, logs: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{logs()}")


def lease_holder(factory: sessionmaker[Session]) -> str | None:
    with factory() as session:
        lease = session.get(SchedulerLease, "scheduler")
        if lease is None or lease.expires_at < datetime.now(UTC):
            return None
        return lease.holder


def count(factory: sessionmaker[Session], model: type, *where: Any) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_two_schedulers_one_leader_exactly_once_and_takeover_after_kill(
    db_sessionmaker: sessionmaker[Session],
    team: dict[str, str],
    sink: SmtpSink,
    schedulers: Schedulers,
) -> None:
    first = [add_untested_patient(db_sessionmaker, team) for _ in range(3)]
    schedulers.start("alpha")
    schedulers.start("beta")

    leader = wait_until(lambda: lease_holder(db_sessionmaker), 30, "a leader", schedulers.logs)
    wait_until(lambda: len(sink.received) >= len(first) * 2, 45, "the first emails", schedulers.logs)
    time.sleep(2.5)  # any duplicate would arrive now
    assert count(db_sessionmaker, Alert) == len(first)
    assert len(sink.received) == len(first) * len(CLINICIANS)

    # Kill the leader without a chance to release its lease.
    schedulers.procs[leader].send_signal(signal.SIGKILL)
    schedulers.procs[leader].wait(timeout=10)
    killed_at = time.monotonic()
    survivor = "beta" if leader == "alpha" else "alpha"
    wait_until(lambda: lease_holder(db_sessionmaker) == survivor, 60, "the takeover", schedulers.logs)
    takeover_seconds = time.monotonic() - killed_at
    assert takeover_seconds < 60

    second = [add_untested_patient(db_sessionmaker, team) for _ in range(2)]
    total = len(first) + len(second)
    wait_until(lambda: len(sink.received) >= total * 2, 45, "emails after takeover", schedulers.logs)
    time.sleep(2.5)

    with db_sessionmaker() as session:
        alerts = list(session.scalars(select(Alert)))
    assert sorted(a.patient_id for a in alerts) == sorted(first + second)
    assert {a.rule for a in alerts} == {"trough_draw_missed"}
    ids = Counter(r.message_id for r in sink.received)
    assert len(ids) == total * len(CLINICIANS)
    assert max(ids.values()) == 1  # every email exactly once
    assert Counter(r.rcpt_tos[0] for r in sink.received) == dict.fromkeys(CLINICIANS, total)
    assert count(db_sessionmaker, OutboxMessage, OutboxMessage.status != "sent") == 0


def test_restart_runs_missed_work_once(
    db_sessionmaker: sessionmaker[Session],
    team: dict[str, str],
    sink: SmtpSink,
    schedulers: Schedulers,
) -> None:
    add_untested_patient(db_sessionmaker, team)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    with db_sessionmaker.begin() as session:
        # The nightly pass and the weekly digest fell due while nothing ran.
        for name in ("evaluate_all", "weekly_digest"):
            session.add(JobState(name=name, next_due_at=long_ago, last_run_at=long_ago, run_count=5))

    def state(name: str) -> JobState:
        with db_sessionmaker() as session:
            row = session.get(JobState, name)
            assert row is not None
            return row

    def digests_sent() -> int:
        return sum(1 for r in sink.received if r.message["X-LAMtrack-Kind"] == "digest")

    proc = schedulers.start("first")
    wait_until(
        lambda: state("weekly_digest").run_count == 6 and state("evaluate_all").run_count == 6,
        45,
        "the missed runs",
        schedulers.logs,
    )
    wait_until(lambda: digests_sent() == len(CLINICIANS), 30, "the digest", schedulers.logs)
    for name in ("evaluate_all", "weekly_digest"):
        assert state(name).next_due_at > datetime.now(UTC)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert lease_holder(db_sessionmaker) is None  # released on a clean stop

    schedulers.start("second")
    wait_until(lambda: lease_holder(db_sessionmaker) == "second", 30, "the restart", schedulers.logs)
    deliveries = state("deliver_outbox").run_count
    wait_until(
        lambda: state("deliver_outbox").run_count >= deliveries + 3, 30, "a few polls", schedulers.logs
    )
    assert state("weekly_digest").run_count == 6
    assert state("evaluate_all").run_count == 6
    assert digests_sent() == len(CLINICIANS)
    assert count(db_sessionmaker, OutboxMessage, OutboxMessage.kind == "digest") == 2
    assert count(db_sessionmaker, Alert) == 1
