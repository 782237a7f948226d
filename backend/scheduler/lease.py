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
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, String, Table, Text, insert, or_, select, update
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from backend.db import Base, utcnow

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
            current = conn.execute(select(table.c.holder).where(table.c.name == self.name)).scalar_one()
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
