"""The `lamtrack` command as an operator uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from backend.auth.models import TeamMembership, User
from backend.cli import main
from backend.config import REPO_ROOT


def test_create_team_and_clinician(
    database_url: str, db_sessionmaker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    runner = CliRunner()
    team = runner.invoke(main, ["create-team", "Chest clinic"])
    assert team.exit_code == 0, team.output
    team_id = team.output.strip()
    monkeypatch.setenv("LAMTRACK_PASSWORD", "a long clinic password")
    made = runner.invoke(main, ["create-clinician", "--team", team_id, "--email", "Doc@Example.org"])
    assert made.exit_code == 0, made.output
    with db_sessionmaker() as session:
        user = session.scalars(select(User).where(User.email == "doc@example.org")).one()
        assert user.role == "clinician"
        assert user.password_hash.startswith("$argon2id$")
        assert session.scalars(
            select(TeamMembership.team_id).where(TeamMembership.user_id == user.id)
        ).all() == [team_id]
    monkeypatch.setenv("LAMTRACK_PASSWORD", "short")
    weak = runner.invoke(main, ["create-clinician", "--team", team_id, "--email", "b@example.org"])
    assert weak.exit_code != 0
    assert "(length)" in weak.output
    unknown = runner.invoke(main, ["create-clinician", "--team", "no-such-team", "--email", "c@example.org"])
    assert unknown.exit_code != 0


def test_export_openapi_writes_the_committed_document(tmp_path: Path) -> None:
    out = tmp_path / "openapi.yaml"
    result = CliRunner().invoke(main, ["export-openapi", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == (REPO_ROOT / "openapi.yaml").read_text()


def test_evaluate_cohort_reports_detection_on_a_cohort_file(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "simulate_cohort.py"),
            "--patients",
            "12",
            "--days",
            "300",
            "--true-slope",
            "-250",
            "--treatment-start-p",
            "0",
            "--out",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    result = CliRunner().invoke(
        main, ["evaluate-cohort", str(tmp_path / "readings.csv"), "--truth", str(tmp_path / "truth.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "12 patients" in result.output
    [row] = [line for line in result.output.splitlines() if line.startswith("| <= -144")]
    assert row.split("|")[2].strip() == "12"
