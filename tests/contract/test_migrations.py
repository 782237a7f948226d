"""The schema is built by Alembic, on SQLite and PostgreSQL alike, and the
migrations and the models agree (as `alembic check` would say)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from backend.db_admin import alembic_config, upgrade
from backend.models import metadata


def test_upgrade_from_empty_reaches_the_single_head(engine: Engine) -> None:
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))
    heads = script.get_heads()
    assert len(heads) == 1, f"migrations have several heads: {heads}"
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    assert current == heads[0]


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_every_model_table_exists(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables


def test_the_profile_migration_moves_start_criterion_alerts_to_the_new_rule(tmp_path: Path) -> None:
    """Alerts of the FEV1-only start rule become episodes of the treatment start
    criteria rule (an open one stays open under the new id); downgrade restores.
    On SQLite with foreign keys on, copying `patients` (batch mode) would have
    deleted them through the cascade: they must survive both ways."""
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    upgrade(url, "5afe7e1c0d11", quiet=True)
    engine = create_engine(url)
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO care_teams (id, name, settings, created_at) VALUES ('t', 'T', '{}', :n)"),
            {"n": now},
        )
        conn.execute(
            text(
                "INSERT INTO patients (id, care_team_id, sex_at_birth, date_of_birth, height_cm, lam_type, "
                "timezone, treatment_status, trough_target_low, trough_target_high, "
                "expected_sessions_per_week, rule_overrides, change_seq, created_at, updated_at) VALUES "
                "('p', 't', 'female', '1985-01-01', 165, 'sporadic', 'UTC', 'untreated', 5, 15, 7, "
                "'{}', 0, :n, :n)"
            ),
            {"n": now},
        )
        for aid, status, open_key in (("a1", "open", "fev1_below_start_criterion"), ("a2", "resolved", None)):
            conn.execute(
                text(
                    "INSERT INTO alerts (id, patient_id, care_team_id, rule, severity, episode_key, "
                    "open_episode_key, source, status, opened_at, last_seen_at, numbers, explanation, "
                    "notify_count, created_at, updated_at) VALUES (:id, 'p', 't', "
                    "'fev1_below_start_criterion', 'review', 'fev1_below_start_criterion', :k, "
                    "'evaluation', :s, :n, :n, '{}', 'x', 0, :n, :n)"
                ),
                {"id": aid, "k": open_key, "s": status, "n": now},
            )
    upgrade(url, quiet=True)

    def rows() -> set[tuple[Any, ...]]:
        with engine.connect() as conn:
            return set(conn.execute(text("SELECT id, rule, episode_key, open_episode_key FROM alerts")))

    assert rows() == {
        ("a1", "treatment_start_criteria", "treatment_start_criteria", "treatment_start_criteria"),
        ("a2", "treatment_start_criteria", "treatment_start_criteria", None),
    }
    with engine.connect() as conn:
        profile = conn.execute(text("SELECT menopausal_status, chylous_effusion FROM patients")).one()
    assert tuple(profile) == ("unknown", "absent")
    from alembic import command

    command.downgrade(alembic_config(url, quiet=True), "5afe7e1c0d11")
    assert {r[1] for r in rows()} == {"fev1_below_start_criterion"}
    engine.dispose()
