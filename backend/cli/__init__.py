"""The `lamtrack` command."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from backend.cli.jobs import register as register_job_commands
from backend.config import REPO_ROOT, Settings


def _settings() -> Settings:
    return Settings.from_env()


@click.group()
def main() -> None:
    """lamtrack: home monitoring of sirolimus therapy for LAM."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=None, help="Default: $PORT or 8000.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes. More than one needs RATE_LIMIT_STORAGE_URL=redis://... so that "
    "login attempts are counted together.",
)
@click.option(
    "--threads", type=click.IntRange(min=1), default=8, show_default=True, help="Threads per worker."
)
def serve(host: str, port: int | None, workers: int, threads: int) -> None:
    """Serve the API with gunicorn (one worker with threads unless the rate limits are shared)."""
    from backend.serving import workers_problem

    settings = _settings()
    reason = workers_problem(workers, settings.rate_limit_storage_url)
    if reason is not None:
        raise click.UsageError(reason)
    port = port or settings.port
    os.execvp(  # noqa: S606 - replaces this process with gunicorn
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{host}:{port}",
            "--worker-class",
            "backend.serving.ProblemThreadWorker",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--access-logfile",
            "-",
            "--timeout",
            "60",
            "backend.wsgi:app",
        ],
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Bring the schema up to REVISION (default: head)."""
    from backend.db_admin import upgrade

    upgrade(_settings().database_url, revision)
    click.echo(f"database at {revision}")


@main.command("create-team")
@click.argument("name")
def create_team(name: str) -> None:
    """Create a care team; prints its id."""
    from backend.db import make_engine, make_sessionmaker, session_scope
    from backend.patients.accounts import create_team as create

    with session_scope(make_sessionmaker(make_engine(_settings().database_url))) as session:
        team = create(session, name=name)
        team_id = team.id
    click.echo(team_id)


@main.command("create-clinician")
@click.option("--team", "team_id", required=True, help="Care team id (from create-team).")
@click.option("--email", required=True)
@click.option(
    "--enrol-totp",
    is_flag=True,
    help="Also set up the web pages' second factor now: prints the otpauth:// URI and recovery codes "
    "(otherwise the clinician enrols with a QR code at first sign-in).",
)
def create_clinician(team_id: str, email: str, enrol_totp: bool) -> None:
    """Create a clinician in a team (password from $LAMTRACK_PASSWORD or a prompt)."""
    from backend.auth import totp
    from backend.db import make_engine, make_sessionmaker, session_scope, utcnow
    from backend.errors import APIError
    from backend.patients.accounts import create_clinician as create

    password = os.environ.get("LAMTRACK_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    try:
        with session_scope(make_sessionmaker(make_engine(_settings().database_url))) as session:
            user = create(session, team_id=team_id, email=email, password=password)
            user_id = user.id
            enrolment = totp.enrol_directly(session, user, now=utcnow()) if enrol_totp else None
            uri = totp.provisioning_uri(enrolment[0], user.email) if enrolment else None
    except APIError as exc:
        raise click.ClickException(str(exc.detail or exc.title)) from exc
    click.echo(user_id)
    if enrolment is not None:
        click.echo(f"otpauth URI: {uri}")
        click.echo("recovery codes (shown once): " + " ".join(enrolment[1]))


@main.command("export-openapi")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=str(REPO_ROOT / "openapi.yaml"),
    show_default=True,
)
def export_openapi(output: str) -> None:
    """Write the OpenAPI document generated from the code."""
    from backend.openapi import render_openapi

    Path(output).write_text(render_openapi())
    click.echo(f"wrote {output}")


@main.command("evaluate-cohort", context_settings={"ignore_unknown_options": True})
@click.argument("readings", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--truth",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV: patient_id, true_slope_ml_per_year[, drop_start, drop_end].",
)
@click.option("--markdown", type=click.Path(dir_okay=False), help="Also write the table here.")
def evaluate_cohort(readings: str, truth: str | None, markdown: str | None) -> None:
    """Replay the trend and FEV1 rules night by night over a cohort CSV
    (patient_id, measured_at, fev1_l[, fvc_l, grade, setting]) and report, by true
    slope, how many were flagged and when, beside a least-squares threshold and
    quarterly clinic spirometry. The engine is the one the scheduler runs."""
    from backend.clinical.detection_report import main as report

    argv = ["--cohort", readings]
    if truth:
        argv += ["--truth", truth]
    if markdown:
        argv += ["--markdown", markdown]
    raise SystemExit(report(argv))


# The scheduler, evaluation, delivery and demo commands live beside the jobs they run.
register_job_commands(main)
