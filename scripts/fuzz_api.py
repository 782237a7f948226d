"""A longer Schemathesis run over every operation, in process, with a patient, a
clinician and an anonymous caller: no 5xx, every response conforms to the spec.

    .venv/bin/python scripts/fuzz_api.py [--examples 200] [--seed N] [--database-url URL]

Without --database-url a fresh SQLite file in a temporary directory is used; a
PostgreSQL URL must point at an empty database (it is migrated to head).
Exit status 1 when any operation fails."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "api")]

PASSWORD = "correct horse battery staple"  # noqa: S105 - the seeded test accounts


class Actor:
    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    from test_fuzz_schemathesis import fuzz, seed_alert  # type: ignore[import-not-found]

    from backend import create_app
    from backend.config import Settings
    from backend.db import session_scope
    from backend.db_admin import upgrade
    from backend.patients.accounts import create_clinician, create_team

    tmp = tempfile.mkdtemp(prefix="lamtrack-fuzz-")
    url = args.database_url or f"sqlite:///{tmp}/fuzz.sqlite3"
    upgrade(url, quiet=True)
    settings = Settings(
        database_url=url,
        jwt_keys={"fuzz-1": uuid.uuid4().hex * 2},
        login_rate_limit="100000 per minute",
        email_backend="file",
        email_dir=f"{tmp}/outbox",
        log_level="ERROR",
    )
    app = create_app(settings)
    client = app.test_client()
    email = f"clin-{uuid.uuid4().hex[:8]}@example.org"
    with session_scope(app.extensions["lamtrack.sessionmaker"]) as session:
        team_id = create_team(session, name="Fuzz team").id
        create_clinician(session, team_id=team_id, email=email, password=PASSWORD)
    clin = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    clinician = Actor(clin.get_json()["access_token"])
    created = client.post(
        "/api/v1/patients",
        headers=clinician.headers,
        json={
            "sex_at_birth": "female",
            "date_of_birth": "1985-03-02",
            "height_cm": 165.0,
            "lam_type": "sporadic",
            "timezone": "Europe/London",
            "care_team_id": team_id,
        },
    ).get_json()
    reg = client.post(
        "/api/v1/auth/register",
        json={
            "invite_code": created["invite_code"],
            "email": f"pat-{uuid.uuid4().hex[:8]}@example.org",
            "password": PASSWORD,
        },
    ).get_json()
    patient = Actor(reg["access_token"])
    upload = client.post(
        "/api/v1/patients/me/spirometry",
        headers=patient.headers,
        json={
            "items": [
                {
                    "client_id": str(uuid.uuid4()),
                    "measured_at": "2026-03-01T08:30:00+01:00",
                    "fev1_l": 2.5,
                    "fvc_l": 3.0,
                }
            ]
        },
    ).get_json()
    record_id = upload["results"][0]["id"]
    alert_id = seed_alert(app.extensions["lamtrack.sessionmaker"], created["id"], team_id)
    ids = {
        "patient": {"pid": ["me", created["id"]], "record_id": [record_id]},
        "clinician": {
            "pid": [created["id"]],
            "record_id": [record_id],
            "alert_id": [alert_id],
            "team_id": [team_id],
        },
    }
    started = time.monotonic()
    failures = fuzz(
        app,
        {"patient": patient, "clinician": clinician, "anonymous": None},
        ids,
        max_examples=args.examples,
        seed=args.seed,
        report=print,
    )
    print(
        f"\n{args.examples} examples per operation and caller, "
        f"{time.monotonic() - started:.0f} s, {len(failures)} failing operations"
    )
    for failure in failures:
        print("\n" + failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
