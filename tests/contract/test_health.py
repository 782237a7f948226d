"""Liveness, readiness and what the API answers when the database is gone."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from backend import create_app
from backend.auth.tokens import ACCESS_TYP, issue_token
from backend.db import utcnow
from backend.scheduler.lease import LEASE_NAME, SchedulerLease


def test_readiness_follows_the_scheduler_heartbeat(client: Any, db_sessionmaker: Any) -> None:
    ready = client.get("/api/v1/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "scheduler": "never seen"}
    now = utcnow()
    with db_sessionmaker.begin() as session:
        session.add(
            SchedulerLease(
                name=LEASE_NAME, holder="host:1", expires_at=now, heartbeat_at=now, acquired_at=now
            )
        )
    assert client.get("/api/v1/readyz").get_json()["checks"]["scheduler"] == "ok"
    with db_sessionmaker.begin() as session:
        session.get(SchedulerLease, LEASE_NAME).heartbeat_at = now - timedelta(minutes=10)
    stale = client.get("/api/v1/readyz")
    assert stale.status_code == 503
    assert stale.mimetype == "application/problem+json"
    assert client.get("/api/v1/healthz").status_code == 200  # alive, just not ready


def test_database_outage_answers_503_problem_without_traceback(settings: Any) -> None:
    # Nothing listens on port 1: every database call fails to connect.
    down = dataclasses.replace(settings, database_url="postgresql+psycopg://postgres@127.0.0.1:1/none")
    app = create_app(down)
    client = app.test_client()
    token, _ = issue_token(
        down, user_id="u1", role="patient", typ=ACCESS_TYP, lifetime_seconds=60, now=utcnow()
    )
    answers = [
        client.get("/api/v1/readyz"),
        client.get("/api/v1/patients/me/spirometry", headers={"Authorization": f"Bearer {token}"}),
    ]
    for resp in answers:
        assert resp.status_code == 503, resp.get_data(as_text=True)
        assert resp.mimetype == "application/problem+json"
        assert resp.headers["Retry-After"]
        assert "Traceback" not in resp.get_data(as_text=True)
        assert resp.get_json()["status"] == 503
    app.extensions["lamtrack.engine"].dispose()
