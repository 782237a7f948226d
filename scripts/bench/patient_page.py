"""Server time of the care team's patient page with 2 years of daily home
readings (plus clinic values, daily dose logs, troughs, regimen changes and
side effects), on a fresh database of each kind.

The page is requested through the app's full WSGI stack in this process
(session cookie, CSRF-free GET, audit row, evaluation, SVG charts, Jinja), so
the time is the server's own, without a network hop. The clinician signs in
through the real forms with a TOTP code first.

    .venv/bin/python scripts/bench/patient_page.py [--db postgres sqlite] [--requests 200]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
import uuid
from datetime import date, timedelta

import pyotp
from common import JWT_KEYS, PASSWORD, database

from backend import create_app
from backend.auth.models import User
from backend.auth.principal import Principal
from backend.config import Settings
from backend.db import make_engine, make_sessionmaker, session_scope, utcnow
from backend.patients.accounts import create_clinician, create_team
from backend.patients.models import Patient
from backend.streams.ingest import ingest_batch
from backend.streams.registry import STREAMS

DAYS = 730
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def seed(url: str, settings: Settings) -> tuple[str, str, str]:
    now = utcnow()
    rnd = random.Random(1)
    sm = make_sessionmaker(make_engine(url))
    with session_scope(sm) as s:
        team = create_team(s, name="Bench team")
        clin = create_clinician(s, team_id=team.id, email="bench-clin@example.org", password=PASSWORD)
        patient = Patient(
            care_team_id=team.id,
            external_ref="BENCH-1",
            sex_at_birth="female",
            date_of_birth=date(1980, 5, 17),
            height_cm=165.0,
            lam_type="sporadic",
            timezone="Europe/London",
            treatment_status="on_sirolimus",
            trough_target_low=5.0,
            trough_target_high=15.0,
            expected_sessions_per_week=7,
            rule_overrides={},
            change_seq=0,
        )
        s.add(patient)
        s.flush()
        ids = (clin.id, patient.id)
    principal = Principal(user_id=ids[0], role="clinician")
    start_day = 400
    streams = {
        "spirometry": [
            {
                "client_id": str(uuid.uuid4()),
                "measured_at": (now - timedelta(days=d, hours=2)).isoformat(),
                "fev1_l": round(2.1 + 0.15 * max(d - start_day, 0) / 365 + rnd.gauss(0, 0.05), 3),
                "fvc_l": 3.0,
            }
            for d in range(DAYS, 0, -1)
        ]
        + [
            {
                "client_id": str(uuid.uuid4()),
                "measured_at": (now - timedelta(days=d)).isoformat(),
                "fev1_l": 2.2,
                "setting": "clinic",
            }
            for d in range(DAYS - 10, 0, -90)
        ],
        "doses": [
            {
                "client_id": str(uuid.uuid4()),
                "taken_at": (now - timedelta(days=d, hours=-8)).isoformat(),
                "status": "taken" if rnd.random() > 0.05 else "missed",
                "dose_mg": 2.0,
            }
            for d in range(start_day, 0, -1)
        ],
        "regimens": [
            {
                "client_id": str(uuid.uuid4()),
                "effective_at": (now - timedelta(days=start_day)).isoformat(),
                "kind": "start",
                "daily_dose_mg": 1.0,
            },
            {
                "client_id": str(uuid.uuid4()),
                "effective_at": (now - timedelta(days=300)).isoformat(),
                "kind": "dose_change",
                "daily_dose_mg": 2.0,
            },
        ],
        "troughs": [
            {
                "client_id": str(uuid.uuid4()),
                "drawn_at": (now - timedelta(days=d)).isoformat(),
                "value_ng_ml": round(rnd.uniform(4, 12), 1),
            }
            for d in (390, 370, 290, 200, 110, 20)
        ],
        "side-effects": [
            {
                "client_id": str(uuid.uuid4()),
                "onset_at": (now - timedelta(days=d)).isoformat(),
                "term": "mucositis_oral",
                "severity": "mild",
            }
            for d in (350, 180, 40)
        ],
    }
    for name, items in streams.items():
        spec = next(x for x in STREAMS if x.name == name)
        for i in range(0, len(items), 500):
            with session_scope(sm) as s:
                patient = s.get(Patient, ids[1], with_for_update=True)
                assert patient is not None
                ingest_batch(
                    s,
                    spec=spec,
                    patient=patient,
                    principal=principal,
                    items=items[i : i + 500],
                    now=now,
                    settings=settings,
                )
    with sm() as s:
        user = s.get(User, ids[0])
        assert user is not None
    sm.kw["bind"].dispose()
    return ids[0], ids[1], "bench-clin@example.org"


def run(kind: str, n: int) -> dict[str, float]:
    with database(kind) as url:
        settings = Settings(
            database_url=url,
            jwt_keys=dict([JWT_KEYS.split(":", 1)]),
            login_rate_limit="1000 per minute",
            email_backend="console",
        )
        _, pid, email = seed(url, settings)
        app = create_app(settings)
        client = app.test_client()
        page = client.get("/sign-in").get_data(as_text=True)
        client.post(
            "/sign-in", data={"csrf_token": CSRF.findall(page)[0], "email": email, "password": PASSWORD}
        )
        page = client.get("/sign-in/enrol").get_data(as_text=True)
        secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page).group(1)  # type: ignore[union-attr]
        resp = client.post(
            "/sign-in/enrol", data={"csrf_token": CSRF.findall(page)[0], "code": pyotp.TOTP(secret).now()}
        )
        assert resp.status_code == 200, resp.status_code
        for _ in range(5):  # warm-up: caches, GLI lookups, template compilation
            assert client.get(f"/patients/{pid}").status_code == 200
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            resp = client.get(f"/patients/{pid}")
            times.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 200 and b"fev1-chart" in resp.data
        size = len(resp.data)
        app.extensions["lamtrack.engine"].dispose()
    times.sort()
    return {
        "median": statistics.median(times),
        "p95": times[int(0.95 * (len(times) - 1))],
        "max": times[-1],
        "kb": size / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", default=["postgres", "sqlite"], choices=["postgres", "sqlite"])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    print(f"patient page, {DAYS} days of daily readings, {args.requests} requests after 5 warm-up")
    print("| database | median ms | p95 ms | max ms | page KiB | target p95 <= 200 ms |")
    print("|---|---|---|---|---|---|")
    for kind in args.db:
        r = run(kind, args.requests)
        verdict = "met" if r["p95"] <= 200 else "missed"
        print(f"| {kind} | {r['median']:.1f} | {r['p95']:.1f} | {r['max']:.1f} | {r['kb']:.0f} | {verdict} |")


if __name__ == "__main__":
    main()
