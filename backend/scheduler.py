"""The scheduler process: one active leader, jobs due from database state.

`lamtrack scheduler` runs this in its own process (never inside API workers;
APScheduler's job stores cannot be shared between processes). Several may run:
they compete for one lease row, and only the holder runs jobs. The lease is
taken with one atomic UPDATE ... WHERE expires_at < now OR holder = me, which
behaves the same on SQLite and PostgreSQL; the holder renews it every
`scheduler_renew_seconds` (that renewal is also the heartbeat `/readyz` reads),
so a standby takes over within lease + renew seconds after the leader dies.

What is due lives in `job_state` (next_due_at per job), not in APScheduler's
memory: APScheduler only polls. A poll claims a due job with a compare-and-set
UPDATE, so a job that fell due while no scheduler ran is done once on start, and
a run is never started twice. Every job is idempotent besides (unique keys on
alerts and outbox messages), so even two leaders in a split brain double nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, cast

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Integer, String, Table, Text, insert, or_, select, update
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from backend.config import Settings
from backend.db import Base, make_engine, make_sessionmaker, utcnow

log = logging.getLogger(__name__)

LEASE_NAME = "scheduler"
Clock = Callable[[], datetime]


class SchedulerLease(Base):
    """Who runs the jobs. One row per lease name."""

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    acquired_at: Mapped[datetime]


class JobState(Base):
    """When each job is next due and how its last run went."""

    __tablename__ = "job_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_due_at: Mapped[datetime]
    last_started_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)
    run_count: Mapped[int] = mapped_column(Integer, default=0)
    last_holder: Mapped[str | None] = mapped_column(String(200))


LEASE_TABLE = cast(Table, SchedulerLease.__table__)
JOB_TABLE = cast(Table, JobState.__table__)


def _rowcount(result: object) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


# ---------------------------------------------------------------- leader lease


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaderLease:
    def __init__(
        self,
        engine: Engine,
        *,
        holder: str,
        ttl_seconds: float,
        name: str = LEASE_NAME,
        clock: Clock = utcnow,
    ) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl = timedelta(seconds=ttl_seconds)
        self.name = name
        self.clock = clock
        self._held_until: datetime | None = None
        self._lock = threading.Lock()

    def _ensure_row(self, now: datetime) -> None:
        table = LEASE_TABLE
        with self.engine.begin() as conn:
            exists = conn.execute(select(table.c.name).where(table.c.name == self.name)).first()
        if exists:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(table).values(
                        name=self.name,
                        holder="",
                        expires_at=now - timedelta(seconds=1),
                        heartbeat_at=now,
                        acquired_at=now,
                    )
                )
        except IntegrityError:
            pass  # another process created it first

    def try_acquire(self) -> bool:
        """Take or renew the lease; True while this process is the leader."""
        now = self.clock()
        self._ensure_row(now)
        table = LEASE_TABLE
        expires = now + self.ttl
        with self.engine.begin() as conn:
            current = conn.execute(
                select(table.c.holder).where(table.c.name == self.name)
            ).scalar_one()
            values: dict[str, Any] = {
                "holder": self.holder,
                "expires_at": expires,
                "heartbeat_at": now,
            }
            if current != self.holder:
                values["acquired_at"] = now
            result = conn.execute(
                update(table)
                .where(table.c.name == self.name)
                .where(or_(table.c.expires_at < now, table.c.holder == self.holder))
                .values(**values)
            )
            won = _rowcount(result) == 1
        with self._lock:
            was = self._held_until is not None and self._held_until > now
            self._held_until = expires if won else None
        if won and not was:
            log.info("scheduler lease %s taken by %s", self.name, self.holder)
        elif was and not won:
            log.warning("scheduler lease %s lost by %s", self.name, self.holder)
        return won

    def held(self) -> bool:
        """True while the last successful renewal has not expired locally."""
        with self._lock:
            return self._held_until is not None and self._held_until > self.clock()

    def release(self) -> None:
        now = self.clock()
        table = LEASE_TABLE
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(table.c.name == self.name, table.c.holder == self.holder)
                .values(expires_at=now - timedelta(seconds=1))
            )
        with self._lock:
            self._held_until = None


def scheduler_health(
    session: Session, *, now: datetime | None = None, stale_seconds: float = 120
) -> dict[str, Any]:
    """Heartbeat of the active scheduler, for `/readyz`.

    `ok` is False when no scheduler ever ran or its last heartbeat is older than
    `stale_seconds`.
    """
    now = now or utcnow()
    lease = session.get(SchedulerLease, LEASE_NAME)
    if lease is None or not lease.holder:
        return {"ok": False, "holder": None, "heartbeat_at": None, "age_seconds": None}
    age = (now - lease.heartbeat_at).total_seconds()
    return {
        "ok": age <= stale_seconds,
        "holder": lease.holder,
        "heartbeat_at": lease.heartbeat_at.isoformat(),
        "age_seconds": round(age, 1),
    }


def last_heartbeat(session: Session) -> datetime | None:
    """When the active scheduler last renewed its lease (None: never ran)."""
    lease = session.get(SchedulerLease, LEASE_NAME)
    if lease is None or not lease.holder:
        return None
    return lease.heartbeat_at


# ---------------------------------------------------------------- jobs


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


def _job_evaluate_changed(ctx: JobContext) -> object:
    from backend.evaluation import evaluate_patients

    return evaluate_patients(ctx.session_factory, settings=ctx.settings, as_of=ctx.clock())


def _job_evaluate_all(ctx: JobContext) -> object:
    from backend.evaluation import evaluate_patients

    return evaluate_patients(
        ctx.session_factory, settings=ctx.settings, as_of=ctx.clock(), full=True
    )


def _job_alert_maintenance(ctx: JobContext) -> object:
    from backend.alerts.services import expire_snoozes, renotify_unacknowledged

    now = ctx.clock()
    with ctx.session_factory.begin() as session:
        reopened = expire_snoozes(session, now=now, settings=ctx.settings)
    with ctx.session_factory.begin() as session:
        renotified = renotify_unacknowledged(session, now=now, settings=ctx.settings)
    return {"reopened": reopened, "renotified": renotified}


def _job_patient_reminders(ctx: JobContext) -> object:
    from backend.reminders import queue_reminder_emails

    return queue_reminder_emails(ctx.session_factory, settings=ctx.settings, now=ctx.clock())


def _job_deliver_outbox(ctx: JobContext) -> object:
    from backend.notify.services import deliver_outbox

    return deliver_outbox(
        ctx.session_factory, settings=ctx.settings, now=ctx.clock, worker=ctx.holder
    )


def _job_weekly_digest(ctx: JobContext) -> object:
    from backend.notify.services import queue_weekly_digests

    return queue_weekly_digests(ctx.session_factory, settings=ctx.settings, now=ctx.clock())


def job_registry(settings: Settings) -> list[JobSpec]:
    s = settings
    nightly = daily_at(s.scheduler_nightly_hour_utc)
    weekly = weekly_at(s.scheduler_digest_weekday, s.scheduler_digest_hour_utc)
    deliver_poll = max(0.5, float(s.scheduler_deliver_seconds))
    return [
        JobSpec(
            "evaluate_changed",
            _job_evaluate_changed,
            every(s.scheduler_evaluate_seconds),
            poll_seconds=max(1.0, s.scheduler_evaluate_seconds / 6),
        ),
        JobSpec("evaluate_all", _job_evaluate_all, nightly, first_due=lambda n: n, poll_seconds=30),
        JobSpec(
            "alert_maintenance",
            _job_alert_maintenance,
            every(s.scheduler_maintenance_seconds),
            poll_seconds=max(1.0, s.scheduler_maintenance_seconds / 10),
        ),
        JobSpec(
            "patient_reminders",
            _job_patient_reminders,
            every(s.scheduler_reminder_seconds),
            poll_seconds=max(1.0, s.scheduler_reminder_seconds / 60),
        ),
        JobSpec(
            "deliver_outbox",
            _job_deliver_outbox,
            every(s.scheduler_deliver_seconds),
            poll_seconds=deliver_poll,
        ),
        JobSpec("weekly_digest", _job_weekly_digest, weekly, first_due=weekly, poll_seconds=60),
    ]


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


class SchedulerService:
    """Builds the APScheduler instance: a lease job and one poll per job."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        holder: str | None = None,
        clock: Clock = utcnow,
        jobs: list[JobSpec] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        self.session_factory = make_sessionmaker(self.engine)
        self.holder = holder or default_holder()
        self.clock = clock
        self.lease = LeaderLease(
            self.engine,
            holder=self.holder,
            ttl_seconds=settings.scheduler_lease_seconds,
            clock=clock,
        )
        self.jobs = jobs if jobs is not None else job_registry(settings)
        self.ctx = JobContext(settings, self.session_factory, clock, self.holder)
        self.scheduler = BackgroundScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def _renew(self) -> None:
        try:
            self.lease.try_acquire()
        except Exception:  # database down: keep trying; jobs stop once the lease lapses
            log.exception("lease renewal failed")

    def _poll(self, spec: JobSpec) -> None:
        if not self.lease.held():
            return
        try:
            run_job_if_due(self.ctx, spec)
        except Exception:
            log.exception("poll of job %s failed", spec.name)

    def start(self) -> None:
        start_at = self.clock()
        self.scheduler.add_job(
            self._renew,
            "interval",
            seconds=self.settings.scheduler_renew_seconds,
            id="lease",
            next_run_time=start_at,
        )
        for spec in self.jobs:
            self.scheduler.add_job(
                self._poll,
                "interval",
                args=[spec],
                seconds=spec.poll_seconds,
                id=f"poll:{spec.name}",
                next_run_time=start_at + timedelta(seconds=0.2),
            )
        self.scheduler.start()
        log.info("scheduler %s started with jobs %s", self.holder, [j.name for j in self.jobs])

    def stop(self) -> None:
        self.scheduler.shutdown(wait=True)
        try:
            self.lease.release()
        except Exception:
            log.exception("lease release failed")
        self.engine.dispose()


def run_scheduler(settings: Settings, *, holder: str | None = None) -> None:
    """Run until SIGTERM or SIGINT; release the lease on the way out."""
    service = SchedulerService(settings, holder=holder)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping scheduler", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    service.start()
    print(f"scheduler {service.holder} running; waiting for the lease", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        service.stop()
