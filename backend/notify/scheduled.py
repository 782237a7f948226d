"""Outbox delivery, every few seconds."""

from __future__ import annotations

from backend.config import Settings
from backend.notify.outbox import deliver_outbox
from backend.scheduler.jobs import JobContext, JobSpec, every


def deliver(ctx: JobContext) -> object:
    return deliver_outbox(ctx.session_factory, settings=ctx.settings, now=ctx.clock, worker=ctx.holder)


def jobs(settings: Settings) -> list[JobSpec]:
    s = settings
    return [
        JobSpec(
            "deliver_outbox",
            deliver,
            every(s.scheduler_deliver_seconds),
            poll_seconds=max(0.5, float(s.scheduler_deliver_seconds)),
        )
    ]
