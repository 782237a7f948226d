"""The scheduler process: APScheduler polls the due jobs while this process
holds the lease (see `lease.py` for how one leader is kept, `jobs.py` for how a
due run is claimed)."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from backend.config import Settings
from backend.db import make_engine, make_sessionmaker, utcnow
from backend.scheduler.jobs import JobContext, JobSpec, run_job_if_due
from backend.scheduler.lease import Clock, LeaderLease, default_holder

log = logging.getLogger(__name__)


class SchedulerService:
    """Builds the APScheduler instance: a lease job and one poll per job."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine | None = None,
        holder: str | None = None,
        clock: Clock = utcnow,
        jobs: list[JobSpec],
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
        self.jobs = jobs
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


def run_scheduler(settings: Settings, *, jobs: list[JobSpec], holder: str | None = None) -> None:
    """Run until SIGTERM or SIGINT; release the lease on the way out."""
    service = SchedulerService(settings, jobs=jobs, holder=holder)
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
