"""Patient reminder emails (trough draw due, readings overdue)."""

from __future__ import annotations

from backend.config import Settings
from backend.reminders.services import queue_reminder_emails
from backend.scheduler.jobs import JobContext, JobSpec, every


def patient_reminders(ctx: JobContext) -> object:
    return queue_reminder_emails(ctx.session_factory, settings=ctx.settings, now=ctx.clock())


def jobs(settings: Settings) -> list[JobSpec]:
    s = settings
    return [
        JobSpec(
            "patient_reminders",
            patient_reminders,
            every(s.scheduler_reminder_seconds),
            poll_seconds=max(1.0, s.scheduler_reminder_seconds / 60),
        )
    ]
