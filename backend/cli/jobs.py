"""`lamtrack scheduler | evaluate | deliver | digest | demo`."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime

import click

from backend.config import Settings
from backend.scheduler.jobs import JobSpec


def job_registry(settings: Settings) -> list[JobSpec]:
    """Every scheduled job, each declared in its feature's `scheduled.py`."""
    from backend.alerts import scheduled as alerts
    from backend.evaluation import scheduled as evaluation
    from backend.notify import scheduled as notify
    from backend.reminders import scheduled as reminders

    return [
        *evaluation.jobs(settings),
        *alerts.jobs(settings),
        *reminders.jobs(settings),
        *notify.jobs(settings),
    ]


def _settings() -> Settings:
    return Settings.from_env()


def _parse_as_of(value: str | None) -> datetime | date | None:
    """A calendar date (end of that day in each patient's zone) or an ISO
    datetime with an offset."""
    if value is None:
        return None
    try:
        if "T" in value or " " in value:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise click.BadParameter("a time needs an offset, e.g. 2026-03-01T09:00+00:00")
            return moment
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def register(group: click.Group) -> None:
    @group.command()
    @click.option("--holder", default=None, help="Name of this scheduler in the lease row.")
    def scheduler(holder: str | None) -> None:
        """Run the scheduler (one active leader; others wait to take over)."""
        from backend.scheduler.service import run_scheduler

        settings = _settings()
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # One line per poll every few seconds would bury what matters.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        run_scheduler(settings, jobs=job_registry(settings), holder=holder)

    @group.command()
    @click.option(
        "--as-of",
        "as_of",
        default=None,
        help="Replay as of DATE (end of that day in each patient's time zone) or "
        "an ISO time with offset; only data measured by then are used.",
    )
    @click.option("--patient", "patients", multiple=True, help="Patient id (repeatable).")
    @click.option(
        "--changed-only", is_flag=True, help="Only patients whose data changed since their last evaluation."
    )
    def evaluate(as_of: str | None, patients: tuple[str, ...], changed_only: bool) -> None:
        """Evaluate trends and rules once and update alerts."""
        from backend.db import make_engine, make_sessionmaker
        from backend.evaluation.runner import evaluate_patients

        settings = _settings()
        moment = _parse_as_of(as_of)
        engine = make_engine(settings.database_url)
        try:
            summary = evaluate_patients(
                make_sessionmaker(engine),
                settings=settings,
                as_of=moment,
                full=not changed_only,
                patient_ids=list(patients) or None,
                replay=moment is not None,
            )
        finally:
            engine.dispose()
        click.echo(json.dumps(summary))
        if summary["errors"]:
            raise SystemExit(1)

    @group.command()
    def deliver() -> None:
        """Send what is due in the email outbox, once."""
        from backend.db import make_engine, make_sessionmaker
        from backend.notify.outbox import deliver_outbox

        settings = _settings()
        engine = make_engine(settings.database_url)
        try:
            report = deliver_outbox(make_sessionmaker(engine), settings=settings)
        finally:
            engine.dispose()
        click.echo(json.dumps(report))

    @group.command()
    def digest() -> None:
        """Queue this week's digest email for every care team now."""
        from backend.alerts.digest import queue_weekly_digests
        from backend.db import make_engine, make_sessionmaker, utcnow

        settings = _settings()
        engine = make_engine(settings.database_url)
        try:
            summary = queue_weekly_digests(make_sessionmaker(engine), settings=settings, now=utcnow())
        finally:
            engine.dispose()
        click.echo(json.dumps(summary))

    @group.command()
    @click.option("--patients", "n_patients", default=32, show_default=True)
    @click.option(
        "--weeks", default=30, show_default=True, help="How many weeks of weekly evaluation to replay."
    )
    @click.option("--seed", default=7, show_default=True)
    def demo(n_patients: int, weeks: int, seed: int) -> None:
        """Seed a synthetic cohort, replay evaluations and leave alerts and emails."""
        from backend.cli.demo import run_demo

        run_demo(_settings(), n_patients=n_patients, weeks=weeks, seed=seed, echo=click.echo)
