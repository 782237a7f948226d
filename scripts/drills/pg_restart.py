"""Drill: PostgreSQL stopped and restarted under load.

A gunicorn server (2 workers) on 127.0.0.1 takes a steady stream of 50-item
spirometry batches for several patients. PostgreSQL is stopped with
`pg_ctlcluster --skip-systemctl-redirect 15 main stop` for a few seconds and
started again (always, also when the drill fails). Checks:
- while it is down the API answers 503 application/problem+json with a
  Retry-After header and no traceback in the body;
- it recovers by itself (no server restart) within 30 s;
- nothing is half-written: every batch is either stored whole or not at all,
  and replaying every batch afterwards leaves exactly its items, no duplicates.

This stops the shared PostgreSQL server: run it on purpose, not in normal CI
(its test is marked slow).

    .venv/bin/python scripts/drills/pg_restart.py [--down 5]   (exit 0 = pass)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench.common import Client, Server, database, login, seed_accounts, spirometry_items

PG_CTL = ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main"]


def pg(action: str) -> None:
    subprocess.run([*PG_CTL, action], check=True, capture_output=True, timeout=60)


def pg_is_up() -> bool:
    return (
        subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", "5432"], capture_output=True, check=False
        ).returncode
        == 0
    )


def drill(down_seconds: float = 5.0) -> list[str]:
    failures: list[str] = []
    from sqlalchemy import func, select

    from backend.db import make_engine
    from backend.streams.spirometry.models import SpirometrySession as S

    with database("postgres") as url:
        seeded = seed_accounts(url, 4)
        with Server("backend.wsgi:app", url, workers=2) as srv:
            tokens = {pid: login(srv.port, email) for pid, email in seeded.patients}
            sent: list[tuple[str, bytes, list[str], int, bytes, dict[str, str]]] = []
            stop = threading.Event()

            def uploader(pid: str, token: str, n0: int) -> None:
                client = Client(srv.port, token, timeout=20)
                n = n0
                while not stop.is_set():
                    items = spirometry_items(50, start_day=n * 50, rng_seed=n)
                    body = json.dumps({"items": items}).encode()
                    try:
                        status, raw, headers = client.raw("POST", f"/api/v1/patients/{pid}/spirometry", body)
                    except OSError as exc:
                        status, raw, headers = 0, str(exc).encode(), {}
                        client.close()
                    sent.append((pid, body, [i["client_id"] for i in items], status, raw, headers))
                    n += 1
                    time.sleep(0.05)

            threads = [
                threading.Thread(target=uploader, args=(pid, tok, k * 10_000), daemon=True)
                for k, (pid, tok) in enumerate(tokens.items())
            ]
            for t in threads:
                t.start()
            time.sleep(2)
            stopped_at = time.monotonic()
            try:
                pg("stop")
                print(f"PostgreSQL stopped; API under load for {down_seconds:.0f} s", flush=True)
                time.sleep(down_seconds)
            finally:
                pg("start")
            deadline = time.monotonic() + 30
            while not pg_is_up() and time.monotonic() < deadline:
                time.sleep(0.2)
            started_at = time.monotonic()
            print(f"PostgreSQL started again after {started_at - stopped_at:.1f} s", flush=True)
            # recovery: a successful upload after the restart, without touching the API server
            recovered = None
            while time.monotonic() < started_at + 30:
                if any(s[3] == 200 for s in sent[-8:]) and sent[-1][3] == 200:
                    recovered = time.monotonic() - started_at
                    break
                time.sleep(0.2)
            time.sleep(1)
            stop.set()
            for t in threads:
                t.join(30)
            if recovered is None:
                failures.append("the API did not recover within 30 s of the restart")
            else:
                print(f"API answered 200 again {recovered:.1f} s after PostgreSQL was back", flush=True)

            by_status: dict[int, int] = {}
            for _pid, _body, _ids, status, raw, headers in sent:
                by_status[status] = by_status.get(status, 0) + 1
                if status == 200:
                    continue
                text = raw.decode(errors="replace")
                if status != 503:
                    failures.append(f"answer {status} while down: {text[:200]}")
                elif headers.get("content-type") != "application/problem+json" or "Retry-After" not in {
                    k.title() for k in headers
                }:
                    failures.append(f"503 without problem+json/Retry-After: {headers}")
                if "Traceback" in text or 'File "' in text:
                    failures.append("a traceback in the body")
            print(f"answers during the drill: {dict(sorted(by_status.items()))}", flush=True)
            if by_status.get(503, 0) == 0:
                failures.append("no request met the outage (no 503 seen)")

            engine = make_engine(url)
            partial = 0
            with engine.connect() as conn:
                for pid, _body, ids, status, _raw, _h in sent:
                    rows = conn.execute(
                        select(func.count()).where(S.patient_id == pid, S.client_id.in_(ids))
                    ).scalar_one()
                    if rows not in (0, len(ids)) or (status == 200 and rows != len(ids)):
                        partial += 1
            print(f"batches half-written: {partial} of {len(sent)}", flush=True)
            if partial:
                failures.append(f"{partial} batches half-written")
            # replay everything (a phone retries what was not confirmed): no duplicates
            clients = {pid: Client(srv.port, tok) for pid, tok in tokens.items()}
            for pid, body, _ids, _status, _raw, _h in sent:
                status, _ = clients[pid].request("POST", f"/api/v1/patients/{pid}/spirometry", body)
                if status != 200:
                    failures.append(f"replay answered {status}")
                    break
            with engine.connect() as conn:
                total, distinct = conn.execute(
                    select(func.count(), func.count(func.distinct(S.patient_id + S.client_id)))
                ).one()
            engine.dispose()
            expected = sum(len(s[2]) for s in sent)
            print(
                f"after replaying every batch: {total} rows, {distinct} distinct, {expected} expected",
                flush=True,
            )
            if not total == distinct == expected:
                failures.append(f"after replay {total} rows / {distinct} distinct, expected {expected}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--down", type=float, default=5.0, help="seconds PostgreSQL stays down")
    args = parser.parse_args()
    try:
        failures = drill(args.down)
    finally:
        if not pg_is_up():
            pg("start")
    print("PASS" if not failures else "FAIL: " + "; ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
