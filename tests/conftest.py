"""Test fixtures: the real database (an SQLite file, or a PostgreSQL database
created for this run), built by `alembic upgrade head`, a real app over HTTP
semantics (Flask's test client), real signed tokens from real logins.

Select the database with `--db=sqlite` (default) or `--db=postgres`; the server
is `LAMTRACK_TEST_POSTGRES_URL` (default postgresql+psycopg://postgres@127.0.0.1:5432/test).
Under CI an unreachable PostgreSQL fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from backend import create_app
from backend.config import Settings
from backend.db import make_engine, make_sessionmaker, session_scope
from backend.db_admin import create_database, drop_database, upgrade
from backend.models import metadata

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSWORD = "correct horse battery staple"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default=os.environ.get("LAMTRACK_TEST_DB", "sqlite"),
        choices=["sqlite", "postgres"],
        help="database the suite runs against",
    )


@pytest.fixture(scope="session")
def database_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    kind = request.config.getoption("--db")
    if kind == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "lamtrack.sqlite3"
        url = f"sqlite:///{path}"
        upgrade(url, quiet=True)
        yield url
        return
    server = os.environ.get("LAMTRACK_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        url = create_database(server, "lamtrack_test")
    except Exception as exc:
        message = f"PostgreSQL at {make_url(server).render_as_string()} is unreachable: {exc}"
        if os.environ.get("CI"):
            pytest.exit(message, returncode=3)
        pytest.skip(message)
    try:
        upgrade(url, quiet=True)
        yield url
    finally:
        drop_database(server, url)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def is_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


def _wipe(engine: Engine) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            )
        else:
            for t in tables:
                conn.execute(text(f'DELETE FROM "{t}"'))


@pytest.fixture
def db_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    _wipe(engine)
    return make_sessionmaker(engine)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_keys={"test-1": "k" * 48},
        login_rate_limit="1000 per minute",
        email_backend="file",
        email_dir=str(tmp_path / "outbox"),
    )


@pytest.fixture
def app(settings: Settings, db_sessionmaker: sessionmaker[Session]) -> Iterator[Flask]:
    application = create_app(settings)
    application.config["TESTING"] = True
    yield application
    application.extensions["lamtrack.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Actor:
    """Someone signed in through the real login endpoint."""

    client: FlaskClient
    user_id: str
    email: str
    token: str
    refresh_token: str
    team_ids: list[str] = field(default_factory=list)
    patient_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, url: str, **kw: Any) -> Any:
        return self.client.get(url, headers=self.headers, **kw)

    def post(self, url: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(url, json=json, headers=self.headers, **kw)

    def patch(self, url: str, json: Any = None, **kw: Any) -> Any:
        return self.client.patch(url, json=json, headers=self.headers, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.client.delete(url, headers=self.headers, **kw)


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    resp = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    return body


@pytest.fixture
def make_clinician(client: FlaskClient, db_sessionmaker: sessionmaker[Session]) -> Any:
    from backend.patients.accounts import create_clinician, create_team

    def _make(team_ids: list[str] | None = None, email: str | None = None) -> Actor:
        email = email or f"clin-{uuid.uuid4().hex[:8]}@example.org"
        with session_scope(db_sessionmaker) as session:
            if not team_ids:
                team_ids = [create_team(session, name="Team " + uuid.uuid4().hex[:6]).id]
            user = None
            for tid in team_ids:
                user = create_clinician(session, team_id=tid, email=email, password=PASSWORD)
            assert user is not None
            user_id = user.id
        tokens = login(client, email)
        return Actor(
            client, user_id, email, tokens["access_token"], tokens["refresh_token"], team_ids=list(team_ids)
        )

    return _make


PATIENT_PROFILE = {
    "sex_at_birth": "female",
    "date_of_birth": "1985-03-02",
    "height_cm": 165.0,
    "lam_type": "sporadic",
    "timezone": "Europe/London",
}


@pytest.fixture
def make_patient(client: FlaskClient) -> Any:
    def _make(clinician: Actor, **profile: Any) -> Actor:
        body = {**PATIENT_PROFILE, "care_team_id": clinician.team_ids[0], **profile}
        resp = clinician.post("/api/v1/patients", json=body)
        assert resp.status_code == 201, resp.get_json()
        created = resp.get_json()
        email = f"pat-{uuid.uuid4().hex[:8]}@example.org"
        reg = client.post(
            "/api/v1/auth/register",
            json={"invite_code": created["invite_code"], "email": email, "password": PASSWORD},
        )
        assert reg.status_code == 201, reg.get_json()
        tokens = reg.get_json()
        me = client.get(
            "/api/v1/patients/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        ).get_json()
        account_id = jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"]
        return Actor(
            client, account_id, email, tokens["access_token"], tokens["refresh_token"], patient_id=me["id"]
        )

    return _make


@pytest.fixture
def clinician(make_clinician: Any) -> Actor:
    actor: Actor = make_clinician()
    return actor


@pytest.fixture
def patient(make_patient: Any, clinician: Actor) -> Actor:
    actor: Actor = make_patient(clinician)
    return actor
