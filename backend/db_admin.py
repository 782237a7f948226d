"""Schema migration and throwaway databases, for the CLI, the demo, the tests,
the benchmarks and the drills alike."""

from __future__ import annotations

import os
import secrets
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def migrations_dir() -> Path:
    """The Alembic script folder: the repository's `migrations/`, shipped as the
    package `backend._migrations` (setup.py), wherever it is installed."""
    return Path(str(files("backend._migrations")))


def alembic_config(database_url: str, *, quiet: bool = False) -> Any:
    from alembic.config import Config

    where = migrations_dir()
    cfg = Config(str(where / "alembic.ini"))
    cfg.set_main_option("script_location", str(where))
    cfg.attributes["database_url"] = database_url
    cfg.attributes["skip_logging"] = quiet
    return cfg


def upgrade(database_url: str, revision: str = "head", *, quiet: bool = False) -> None:
    """Bring the schema to `revision`; an SQLite file's folder is created if needed."""
    from alembic import command

    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url, quiet=quiet), revision)


def create_database(server_url: str, prefix: str) -> str:
    """A new empty database on the PostgreSQL server of `server_url`; its URL."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, database_url: str) -> None:
    name = make_url(database_url).database
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
