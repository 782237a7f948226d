"""Leader lease and database-driven job state, in one process with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.scheduler.jobs import JobContext, JobSpec, daily_at, every, run_job_if_due, weekly_at
from backend.scheduler.lease import JobState, LeaderLease, last_heartbeat, scheduler_health

T0 = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def test_one_leader_at_a_time_and_takeover_after_expiry(
    engine: Engine,
    db_sessionmaker: sessionmaker[Session],
) -> None:
    clock = Clock(T0)
    a = LeaderLease(engine, holder="a", ttl_seconds=30, clock=clock)
    b = LeaderLease(engine, holder="b", ttl_seconds=30, clock=clock)
    with db_sessionmaker() as session:
        assert last_heartbeat(session) is None
        assert scheduler_health(session, now=T0)["ok"] is False

    assert a.try_acquire() is True
    assert b.try_acquire() is False
    clock.advance(seconds=10)
    assert a.try_acquire() is True  # renewal
    clock.advance(seconds=25)
    assert b.try_acquire() is False  # a renewed 25 s ago: still valid
    assert a.held() is True
    with db_sessionmaker() as session:
        assert last_heartbeat(session) == T0 + timedelta(seconds=10)

    clock.advance(seconds=6)  # a stopped renewing 31 s ago
    assert a.held() is False
    assert b.try_acquire() is True
    assert a.try_acquire() is False
    with db_sessionmaker() as session:
        health = scheduler_health(session, now=clock.now, stale_seconds=120)
        assert health["ok"] is True
        assert health["holder"] == "b"
        stale = scheduler_health(session, now=clock.now + timedelta(minutes=3))
        assert stale["ok"] is False

    b.release()  # a graceful stop hands over at once
    assert a.try_acquire() is True


def test_missed_due_time_runs_once_on_start_then_follows_the_schedule(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
) -> None:
    clock = Clock(T0)
    runs: list[datetime] = []
    spec = JobSpec("nightly_test", lambda ctx: runs.append(ctx.clock()), daily_at(2))
    ctx = JobContext(settings, db_sessionmaker, clock, "a")

    assert run_job_if_due(ctx, spec) is True  # never ran: due at once
    assert run_job_if_due(ctx, spec) is False
    with db_sessionmaker() as session:
        state = session.get(JobState, "nightly_test")
        assert state is not None
        assert state.next_due_at == datetime(2026, 10, 25, 2, tzinfo=UTC)
        assert state.run_count == 1
        assert state.last_status == "ok"

    clock.advance(days=3, hours=5)  # the scheduler was down for three nights
    assert run_job_if_due(ctx, spec) is True
    assert run_job_if_due(ctx, spec) is False
    assert runs == [T0, clock.now]
    with db_sessionmaker() as session:
        state = session.get(JobState, "nightly_test")
        assert state is not None
        assert state.run_count == 2
        assert state.next_due_at == datetime(2026, 10, 29, 2, tzinfo=UTC)


def test_a_failing_job_is_recorded_and_not_retried_before_its_next_slot(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
) -> None:
    clock = Clock(T0)

    def boom(ctx: JobContext) -> None:
        raise RuntimeError("smtp relay misconfigured")

    spec = JobSpec("failing", boom, every(60))
    ctx = JobContext(settings, db_sessionmaker, clock, "a")
    assert run_job_if_due(ctx, spec) is True
    assert run_job_if_due(ctx, spec) is False
    with db_sessionmaker() as session:
        state = session.get(JobState, "failing")
        assert state is not None
        assert state.last_status == "error"
        assert "misconfigured" in (state.last_error or "")
    clock.advance(seconds=61)
    assert run_job_if_due(ctx, spec) is True


def test_two_callers_claim_a_due_run_once(
    db_sessionmaker: sessionmaker[Session],
    settings: Settings,
) -> None:
    clock = Clock(T0)
    runs: list[str] = []
    spec = JobSpec("shared", lambda ctx: runs.append(ctx.holder), every(300))
    a = JobContext(settings, db_sessionmaker, clock, "a")
    b = JobContext(settings, db_sessionmaker, clock, "b")
    assert [run_job_if_due(a, spec), run_job_if_due(b, spec)] == [True, False]
    assert runs == ["a"]


def test_calendar_slots() -> None:
    # 2026-10-25 is a Sunday; Europe changes clocks that night, UTC does not.
    assert daily_at(2)(datetime(2026, 10, 25, 1, 59, tzinfo=UTC)) == datetime(2026, 10, 25, 2, tzinfo=UTC)
    assert daily_at(2)(datetime(2026, 10, 25, 2, 0, tzinfo=UTC)) == datetime(2026, 10, 26, 2, tzinfo=UTC)
    monday_7 = weekly_at(0, 7)
    assert monday_7(datetime(2026, 10, 25, 12, tzinfo=UTC)) == datetime(2026, 10, 26, 7, tzinfo=UTC)
    assert monday_7(datetime(2026, 10, 26, 7, tzinfo=UTC)) == datetime(2026, 11, 2, 7, tzinfo=UTC)
