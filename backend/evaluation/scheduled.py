"""Evaluation jobs: every minute the patients with new data, every night all."""

from __future__ import annotations

from backend.config import Settings
from backend.evaluation.runner import evaluate_patients
from backend.scheduler.jobs import JobContext, JobSpec, daily_at, every


def evaluate_changed(ctx: JobContext) -> object:
    return evaluate_patients(ctx.session_factory, settings=ctx.settings, as_of=ctx.clock())


def evaluate_all(ctx: JobContext) -> object:
    return evaluate_patients(ctx.session_factory, settings=ctx.settings, as_of=ctx.clock(), full=True)


def jobs(settings: Settings) -> list[JobSpec]:
    s = settings
    return [
        JobSpec(
            "evaluate_changed",
            evaluate_changed,
            every(s.scheduler_evaluate_seconds),
            poll_seconds=max(1.0, s.scheduler_evaluate_seconds / 6),
        ),
        JobSpec(
            "evaluate_all",
            evaluate_all,
            daily_at(s.scheduler_nightly_hour_utc),
            first_due=lambda n: n,
            poll_seconds=30,
        ),
    ]
