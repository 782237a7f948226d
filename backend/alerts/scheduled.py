"""Alert upkeep: snoozes that ran out reopen, unacknowledged urgent alerts are
sent again; and the weekly digest to each team."""

from __future__ import annotations

from backend.alerts.digest import queue_weekly_digests
from backend.alerts.services import expire_snoozes, renotify_unacknowledged
from backend.config import Settings
from backend.scheduler.jobs import JobContext, JobSpec, every, weekly_at


def alert_maintenance(ctx: JobContext) -> object:
    now = ctx.clock()
    with ctx.session_factory.begin() as session:
        reopened = expire_snoozes(session, now=now, settings=ctx.settings)
    with ctx.session_factory.begin() as session:
        renotified = renotify_unacknowledged(session, now=now, settings=ctx.settings)
    return {"reopened": reopened, "renotified": renotified}


def weekly_digest(ctx: JobContext) -> object:
    return queue_weekly_digests(ctx.session_factory, settings=ctx.settings, now=ctx.clock())


def jobs(settings: Settings) -> list[JobSpec]:
    s = settings
    weekly = weekly_at(s.scheduler_digest_weekday, s.scheduler_digest_hour_utc)
    return [
        JobSpec(
            "alert_maintenance",
            alert_maintenance,
            every(s.scheduler_maintenance_seconds),
            poll_seconds=max(1.0, s.scheduler_maintenance_seconds / 10),
        ),
        JobSpec("weekly_digest", weekly_digest, weekly, first_due=weekly, poll_seconds=60),
    ]
