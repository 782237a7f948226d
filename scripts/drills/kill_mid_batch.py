"""Drill: a 500-item batch interrupted while it is being stored.

Against a real gunicorn server on 127.0.0.1 (SQLite file and, when reachable,
a PostgreSQL database created for the drill):
- client disconnect: the whole request is sent, then the socket is closed
  without reading the answer;
- worker SIGKILL: the worker serving the request is killed at several points
  of the request (20 % .. 95 % of its normal duration).
After each interruption the patient holds either all 500 items of the batch or
none of them; sending the same batch again then answers created/duplicate for
every item and leaves exactly 500 rows, no duplicates.

    .venv/bin/python scripts/drills/kill_mid_batch.py [--db sqlite postgres]   (exit 0 = pass)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench.common import Client, Server, database, login, seed_accounts, spirometry_items


def _count(url: str, pid: str, client_ids: list[str]) -> tuple[int, int]:
    """(rows of this batch, distinct client ids among them)."""
    from sqlalchemy import func, select

    from backend.db import make_engine
    from backend.streams.spirometry.models import SpirometrySession as S

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows, distinct = conn.execute(
                select(func.count(), func.count(S.client_id.distinct())).where(
                    S.patient_id == pid, S.client_id.in_(client_ids)
                )
            ).one()
    finally:
        engine.dispose()
    return int(rows), int(distinct)


def _send_and_drop(port: int, path: str, token: str, body: bytes) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_RDWR)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if Client(port, timeout=5).request("GET", "/api/v1/healthz")[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not come back")


def _check(url: str, pid: str, client_ids: list[str], label: str, failures: list[str]) -> int:
    rows, distinct = _count(url, pid, client_ids)
    ok = rows == distinct and rows in (0, len(client_ids))
    print(
        f"  {label}: {rows} of {len(client_ids)} items stored after the interruption "
        f"{'(all or none: ok)' if ok else '(PARTIAL: FAIL)'}",
        flush=True,
    )
    if not ok:
        failures.append(f"{label}: {rows} rows stored")
    return rows


def _retry(
    client: Client,
    url: str,
    path: str,
    pid: str,
    body: bytes,
    client_ids: list[str],
    label: str,
    failures: list[str],
) -> None:
    status, answer = client.request("POST", path, body)
    statuses = {r["status"] for r in answer["results"]} if status == 200 else {str(status)}
    rows, distinct = _count(url, pid, client_ids)
    ok = status == 200 and statuses <= {"created", "duplicate"} and rows == distinct == len(client_ids)
    print(
        f"  {label}: retry -> {status} {sorted(statuses)}, {rows} rows, {distinct} distinct "
        f"{'ok' if ok else 'FAIL'}",
        flush=True,
    )
    if not ok:
        failures.append(f"{label}: retry left {rows} rows ({distinct} distinct), {statuses}")


@contextlib.contextmanager
def _setup(kind: str) -> Iterator[tuple[str, Server, str, str]]:
    with database(kind) as url:
        seeded = seed_accounts(url, 1)
        pid, email = seeded.patients[0]
        with Server("backend.wsgi:app", url, workers=1) as srv:
            yield url, srv, pid, login(srv.port, email)


def drill(kind: str) -> list[str]:
    failures: list[str] = []
    print(f"[{kind}]", flush=True)
    with _setup(kind) as (url, srv, pid, token):
        path = f"/api/v1/patients/{pid}/spirometry"
        client = Client(srv.port, token)

        def batch(n: int) -> tuple[bytes, list[str]]:
            items = spirometry_items(500, start_day=n * 500, rng_seed=n)
            return json.dumps({"items": items}).encode(), [i["client_id"] for i in items]

        # normal duration of a batch request, to aim the kills
        body, _ = batch(0)
        t0 = time.perf_counter()
        assert client.request("POST", path, body)[0] == 200
        normal = time.perf_counter() - t0
        print(f"  a 500-item batch takes {1000 * normal:.0f} ms", flush=True)

        # 1. client disconnect after sending the whole request
        body, ids = batch(1)
        _send_and_drop(srv.port, path, token, body)
        time.sleep(normal * 3 + 0.5)  # the worker finishes (or abandons) the request
        _check(url, pid, ids, "client disconnect", failures)
        _retry(client, url, path, pid, body, ids, "client disconnect", failures)

        # 2. worker SIGKILL at several points of the request
        for n, share in enumerate((0.2, 0.4, 0.6, 0.8, 0.95), start=2):
            body, ids = batch(n)
            workers = srv.worker_pids()
            _send_and_drop(srv.port, path, token, body)
            time.sleep(normal * share)
            for w in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w, signal.SIGKILL)
            label = f"SIGKILL at {int(100 * share)} %"
            _wait_ready(srv.port)
            client.close()
            _check(url, pid, ids, label, failures)
            _retry(client, url, path, pid, body, ids, label, failures)
        client.close()
    return failures


def pg_reachable() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 5432), timeout=2):
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    args = parser.parse_args()
    failures: list[str] = []
    for kind in args.db:
        if kind == "postgres" and not pg_reachable():
            print("[postgres] not reachable: skipped")
            continue
        failures += drill(kind)
    print("PASS" if not failures else "FAIL: " + "; ".join(failures))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
