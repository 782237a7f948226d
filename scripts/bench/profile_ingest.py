"""Profile one kind of ingest request in-process (pyinstrument), on a fresh
PostgreSQL or SQLite database: where does the time of a 500-item batch go?

    .venv/bin/python scripts/bench/profile_ingest.py [--db postgres] [--items 500] [--requests 20]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench.common import JWT_KEYS, PASSWORD, database, seed_accounts, spirometry_items


def main() -> None:
    from pyinstrument import Profiler

    from backend import create_app
    from backend.config import Settings

    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="postgres", choices=["postgres", "sqlite"])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--all", action="store_true", help="show library frames too")
    args = parser.parse_args()
    with database(args.db) as url:
        seeded = seed_accounts(url, 1)
        kid, secret = JWT_KEYS.split(":")
        app = create_app(
            Settings(
                database_url=url,
                jwt_keys={kid: secret},
                log_level="WARNING",
                login_rate_limit="1000 per minute",
            )
        )
        client = app.test_client()
        pid, email = seeded.patients[0]
        token = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).get_json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        bodies = [
            json.dumps({"items": spirometry_items(args.items, start_day=i * args.items, rng_seed=i)})
            for i in range(args.requests + 2)
        ]
        for body in bodies[:2]:
            client.post(f"/api/v1/patients/{pid}/spirometry", data=body, headers=headers)
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for body in bodies[2:]:
            resp = client.post(f"/api/v1/patients/{pid}/spirometry", data=body, headers=headers)
            assert resp.status_code == 200, resp.get_json()
        profiler.stop()
        app.extensions["lamtrack.engine"].dispose()
        print(profiler.output_text(unicode=False, color=False, show_all=("--all" in sys.argv)))


if __name__ == "__main__":
    main()
