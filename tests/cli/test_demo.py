"""`lamtrack demo` leaves a working product behind: patients, alerts in the
database, emails as files; a second run adds nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from backend.alerts.models import Alert
from backend.cli.demo import run_demo
from backend.config import Settings
from backend.patients.models import Patient


def test_demo_seeds_alerts_and_emails_once(settings: Settings, db_sessionmaker: Any) -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    first = run_demo(settings, n_patients=8, weeks=12, seed=3, echo=lambda _: None, now=now)
    assert first["created"] == 8
    with db_sessionmaker() as session:
        assert session.scalar(select(func.count(Patient.id))) == 8
        rules = set(session.scalars(select(Alert.rule)))
    assert rules, "the demo raised no alert"
    emails = list(Path(settings.email_dir).glob("*.eml"))
    assert emails, "the demo wrote no email"
    assert all("DEMO-" not in e.read_text() for e in emails)  # no patient references in emails
    again = run_demo(settings, n_patients=8, weeks=12, seed=3, echo=lambda _: None, now=now)
    assert again["created"] == 0
    with db_sessionmaker() as session:
        assert session.scalar(select(func.count(Patient.id))) == 8
