"""Bounded load run on loopback, then the shared login limit.

1. A fresh PostgreSQL database with one care team per 50 patients (a clinician
   each), gunicorn with several workers on 127.0.0.1, rate limits in Redis.
2. locust headless (scripts/load/locustfile.py) for --duration seconds with
   --users users; prints throughput, p50/p95/p99 and errors per request kind.
3. The login limit across workers: a server with LOGIN_RATE_LIMIT "10 per N
   minutes" (N chosen per run so earlier runs' counters do not interfere) and
   4 workers, 30 login attempts on fresh connections (spread over workers);
   with Redis exactly 10 get through. The same with memory:// storage is shown
   for contrast (each worker counts alone).

    .venv/bin/python scripts/load/run_load.py [--users 40] [--duration 90] [--workers 4]

Exit code 0 when there were no errors, p99 < 250 ms and the limit held.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench.common import (
    Client,
    Server,
    create_pg_database,
    drop_pg_database,
    login,
    print_machine,
    seed_accounts,
    spirometry_items,
    upgrade,
)

REDIS = os.environ.get("LAMTRACK_LOAD_REDIS_URL", "redis://127.0.0.1:6379/0")


def seed(url: str, n_patients: int, port: int) -> dict[str, list[dict[str, object]]]:
    accounts: dict[str, list[dict[str, object]]] = {"patients": [], "clinicians": []}
    for team in range(max(1, n_patients // 50)):
        seeded = seed_accounts(url, min(50, n_patients), tag=f"load{team}-{random.randrange(10**6)}")
        accounts["clinicians"].append(
            {"token": login(port, seeded.clinician_email), "patient_ids": [p for p, _ in seeded.patients]}
        )
        for pid, email in seeded.patients:
            token = login(port, email)
            # a history to read and sync: 60 days of sessions
            status, _ = Client(port, token).request(
                "POST",
                f"/api/v1/patients/{pid}/spirometry",
                {"items": spirometry_items(60, start_day=2100, rng_seed=hash(pid) % 1000)},
            )
            assert status == 200
            accounts["patients"].append({"patient_id": pid, "token": token})
    return accounts


def run_locust(port: int, accounts_file: str, users: int, duration: int, out: str) -> list[dict[str, str]]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(Path(__file__).with_name("locustfile.py")),
        "--headless",
        "--host",
        f"http://127.0.0.1:{port}",
        "-u",
        str(users),
        "-r",
        str(max(1, users // 10)),
        "-t",
        f"{duration}s",
        "--csv",
        out,
        "--only-summary",
        "--stop-timeout",
        "5",
    ]
    env = {**os.environ, "LAMTRACK_LOAD_ACCOUNTS": accounts_file}
    subprocess.run(
        cmd,
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=duration + 120,
    )
    with open(f"{out}_stats.csv") as f:
        return list(csv.DictReader(f))


def login_limit(url: str, storage: str, email: str, workers: int, minutes: int) -> tuple[int, int, int]:
    """(allowed, limited, other) of 30 attempts on fresh connections."""
    env = {"RATE_LIMIT_STORAGE_URL": storage, "LOGIN_RATE_LIMIT": f"10 per {minutes} minutes"}
    allowed = limited = other = 0
    with Server("backend.wsgi:app", url, workers=workers, env=env) as srv:
        for _ in range(30):
            client = Client(srv.port)
            status, _ = client.request(
                "POST", "/api/v1/auth/login", {"email": email, "password": "wrong password, on purpose"}
            )
            client.close()
            if status == 429:
                limited += 1
            elif status in (200, 401):
                allowed += 1
            else:
                other += 1
    return allowed, limited, other


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--duration", type=int, default=90)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--patients", type=int, default=100)
    args = parser.parse_args()
    print_machine()
    url = create_pg_database("lamtrack_load")
    ok = True
    try:
        upgrade(url)
        with (
            Server(
                "backend.wsgi:app", url, workers=args.workers, env={"RATE_LIMIT_STORAGE_URL": REDIS}
            ) as srv,
            tempfile.TemporaryDirectory() as tmp,
        ):
            accounts = seed(url, args.patients, srv.port)
            accounts_file = os.path.join(tmp, "accounts.json")
            Path(accounts_file).write_text(json.dumps(accounts))
            t0 = time.time()
            rows = run_locust(srv.port, accounts_file, args.users, args.duration, os.path.join(tmp, "load"))
            print(
                f"locust: {args.users} users, {args.duration} s, gunicorn {args.workers} sync workers, "
                f"PostgreSQL, rate limits in Redis (wall {time.time() - t0:.0f} s)"
            )
            print(
                f"{'request':42s} {'count':>7s} {'fail':>5s} {'req/s':>7s} {'p50':>5s} {'p95':>5s} "
                f"{'p99':>5s} {'max':>6s}  (ms)"
            )
            for r in rows:
                print(
                    f"{r['Name']:42s} {r['Request Count']:>7s} {r['Failure Count']:>5s} "
                    f"{float(r['Requests/s']):7.1f} {r['50%']:>5s} {r['95%']:>5s} {r['99%']:>5s} "
                    f"{float(r['Max Response Time']):6.0f}"
                )
            total = next(r for r in rows if r["Name"] == "Aggregated")
            fails = int(total["Failure Count"])
            p99 = float(total["99%"])
            met = fails == 0 and p99 < 250
            ok &= met
            print(
                f"aggregate: {float(total['Requests/s']):.1f} req/s, p50 {total['50%']} ms, p95 "
                f"{total['95%']} ms, p99 {total['99%']} ms, errors {fails} "
                f"-> target (0 errors, p99 < 250 ms) "
                f"{'MET' if met else 'MISSED'}"
            )
        seeded = seed_accounts(url, 0, tag=f"limit-{random.randrange(10**9)}")
        minutes = random.randrange(2, 59)
        allowed, limited, other = login_limit(url, REDIS, seeded.clinician_email, 4, minutes)
        held = allowed == 10 and limited == 20 and other == 0
        ok &= held
        print(
            f"login limit '10 per {minutes} minutes', 4 workers, Redis storage: {allowed} allowed, "
            f"{limited} answered 429, {other} other -> {'HOLDS' if held else 'DOES NOT HOLD'}"
        )
        seeded = seed_accounts(url, 0, tag=f"limit-mem-{random.randrange(10**9)}")
        allowed, limited, other = login_limit(url, "memory://", seeded.clinician_email, 4, minutes + 1)
        print(
            f"same with memory:// storage (contrast): {allowed} allowed, {limited} answered 429 "
            f"(each worker counts on its own)"
        )
    finally:
        drop_pg_database(url)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
