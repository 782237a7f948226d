"""Jobs as the scheduler sees them: what runs, when it is next due, and the
compare-and-set on `job_state` that starts a due run exactly once.

Each feature declares its jobs in its own `scheduled.py`; the `lamtrack
scheduler` command gathers them (`backend.cli.jobs.job_registry`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from backend.config import Settings
from backend.db import utcnow
from backend.scheduler.lease import JOB_TABLE, Clock, JobState, _rowcount

log = logging.getLogger(__name__)


@dataclass
class JobContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock = utcnow
    holder: str = ""


@dataclass(frozen=True)
class JobSpec:
    name: str
    run: Callable[[JobContext], object]
    # Given the time a run is claimed, when the following run is due.
    next_due: Callable[[datetime], datetime]
    # When a job has never run: due at once, or at its first calendar slot.
    first_due: Callable[[datetime], datetime] = field(default=lambda now: now)
    # How often the leader checks job_state for this job.
    poll_seconds: float = 5.0


def every(seconds: float) -> Callable[[datetime], datetime]:
    return lambda now: now + timedelta(seconds=seconds)


def daily_at(hour: int) -> Callable[[datetime], datetime]:
    def next_slot(now: datetime) -> datetime:
        slot = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        return slot if slot > now else slot + timedelta(days=1)

    return next_slot


def weekly_at(weekday: int, hour: int) -> Callable[[datetime], datetime]:
    def next_slot(now: datetime) -> datetime:
        slot = now.replace(hour=hour, minute=0, second=0, microsecond=0)
        slot += timedelta(days=(weekday - slot.weekday()) % 7)
        return slot if slot > now else slot + timedelta(days=7)

    return next_slot


def claim_due_job(
    session_factory: sessionmaker[Session], spec: JobSpec, *, now: datetime, holder: str
) -> bool:
    """Compare-and-set on job_state: True when this caller starts the due run."""
    table = JOB_TABLE
    with session_factory.begin() as session:
        state = session.get(JobState, spec.name)
        if state is None:
            try:
                with session.begin_nested():
                    session.add(JobState(name=spec.name, next_due_at=spec.first_due(now)))
            except IntegrityError:
                pass
            state = session.get(JobState, spec.name)
            assert state is not None
        due = state.next_due_at
        if due > now:
            return False
        result = session.execute(
            update(table)
            .where(table.c.name == spec.name, table.c.next_due_at == due)
            .values(next_due_at=spec.next_due(now), last_started_at=now, last_holder=holder)
        )
        return _rowcount(result) == 1


def record_job_run(
    session_factory: sessionmaker[Session],
    name: str,
    *,
    finished_at: datetime,
    duration_ms: int,
    error: str | None,
) -> None:
    table = JOB_TABLE
    with session_factory.begin() as session:
        session.execute(
            update(table)
            .where(table.c.name == name)
            .values(
                last_run_at=finished_at,
                last_status="error" if error else "ok",
                last_error=error,
                last_duration_ms=duration_ms,
                run_count=table.c.run_count + 1,
            )
        )


def run_job_if_due(ctx: JobContext, spec: JobSpec) -> bool:
    """Run one job when job_state says it is due. Returns whether it ran."""
    if not claim_due_job(ctx.session_factory, spec, now=ctx.clock(), holder=ctx.holder):
        return False
    started = time.monotonic()
    error: str | None = None
    try:
        result = spec.run(ctx)
        log.info("job %s done: %s", spec.name, result)
    except Exception as exc:  # a failing job must not stop the scheduler
        log.exception("job %s failed", spec.name)
        error = f"{type(exc).__name__}: {exc}"[:2000]
    record_job_run(
        ctx.session_factory,
        spec.name,
        finished_at=ctx.clock(),
        duration_ms=int((time.monotonic() - started) * 1000),
        error=error,
    )
    return True
