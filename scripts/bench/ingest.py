"""Ingest benchmark: the real API against a floor, same server kind, same
database, same run.

For each database (PostgreSQL, SQLite) two gunicorn servers run side by side on
127.0.0.1 with the same worker count, on the same PostgreSQL database, or on two
SQLite files made the same way (so that each side pays its own WAL checkpoints):
the real app (`backend.wsgi:app`: bearer
auth, per-item validation, patient row lock, client_id dedupe, GLI derivation,
audit row) and the floor (`scripts/bench/floor_app.py`: parse JSON, one Core
executemany). Requests alternate between the two one by one so that drift on a
shared machine hits both alike. Payloads are encoded before timing.

Printed: rows/second of each side over the whole run and their ratio (the
number compared with the target), the median of the per-pair ratios, and the
ratio of the servers' own CPU time (read from /proc; on PostgreSQL it leaves out
the database server's share), which is what the ratio would be on an otherwise
idle machine when the database is in-process (SQLite).

    .venv/bin/python scripts/bench/ingest.py [--db postgres sqlite] [--batches 30] [--singles 400]

Prints rows/second for each side and the ratio api/floor. Targets: batch >= 0.5,
single >= 0.6.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench.common import (
    Client,
    Server,
    database,
    login,
    print_machine,
    seed_accounts,
    spirometry_items,
)


def _cpu_seconds(server: Server) -> float:
    """User + system CPU time of the server's workers so far (from /proc)."""
    total = 0
    for pid in server.worker_pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _bodies(n_requests: int, per_request: int, seed: int) -> list[bytes]:
    return [
        json.dumps(
            {"items": spirometry_items(per_request, start_day=i * per_request, rng_seed=seed + i)}
        ).encode()
        for i in range(n_requests)
    ]


def _post(client: Client, path: str, body: bytes) -> float:
    t0 = time.perf_counter()
    status, raw, _ = client.raw("POST", path, body)
    if status != 200:
        raise RuntimeError(f"POST {path} -> {status}: {raw[:300]!r}")
    return time.perf_counter() - t0


def compare(kind: str, per_request: int, n_requests: int, workers: int) -> dict[str, float]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database(kind))
        # SQLite: each side gets its own file, so that each pays for its own WAL
        # checkpoints (a checkpoint is paid by whichever connection commits past
        # the threshold, which made the shared-file ratio swing by +-0.3).
        floor_url = stack.enter_context(database(kind)) if kind == "sqlite" else url
        seeded = seed_accounts(url, 1)
        api_pid, api_email = seeded.patients[0]
        floor_pid = seed_accounts(floor_url, 1).patients[0][0]
        with (
            Server("backend.wsgi:app", url, workers=workers) as api,
            Server("scripts.bench.floor_app:app", floor_url, workers=workers) as floor,
        ):
            api_client = Client(api.port, login(api.port, api_email))
            floor_client = Client(floor.port)
            api_path = f"/api/v1/patients/{api_pid}/spirometry"
            floor_path = f"/floor/patients/{floor_pid}/spirometry"
            # warm-up: imports, connection pools, prepared plans
            for body in _bodies(3, per_request, 900):
                _post(api_client, api_path, body)
            for body in _bodies(3, per_request, 950):
                _post(floor_client, floor_path, body)
            api_bodies = _bodies(n_requests, per_request, 10_000)
            floor_bodies = _bodies(n_requests, per_request, 20_000)
            api_cpu0, floor_cpu0 = _cpu_seconds(api), _cpu_seconds(floor)
            # Requests alternate one by one, so that drift on a shared machine
            # hits both sides alike; each pair gives a ratio.
            api_times, floor_times = [], []
            for api_body, floor_body in zip(api_bodies, floor_bodies, strict=True):
                floor_times.append(_post(floor_client, floor_path, floor_body))
                api_times.append(_post(api_client, api_path, api_body))
            api_cpu, floor_cpu = _cpu_seconds(api) - api_cpu0, _cpu_seconds(floor) - floor_cpu0
            api_client.close()
            floor_client.close()
    rows = n_requests * per_request
    api_t, floor_t = sum(api_times), sum(floor_times)
    return {
        "rows": rows,
        "api_rows_s": rows / api_t,
        "floor_rows_s": rows / floor_t,
        "ratio": floor_t / api_t,
        "ratio_median_pair": statistics.median(f / a for a, f in zip(api_times, floor_times, strict=True)),
        "ratio_cpu": floor_cpu / api_cpu if api_cpu else float("nan"),
        "api_ms_per_request": 1000 * api_t / n_requests,
        "floor_ms_per_request": 1000 * floor_t / n_requests,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", default=["postgres", "sqlite"], choices=["postgres", "sqlite"])
    parser.add_argument("--batches", type=int, default=30, help="500-item requests per side")
    parser.add_argument("--singles", type=int, default=400, help="1-item requests per side")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print_machine()
    ok = True
    for kind in args.db:
        for label, per_request, n, target in (
            ("batch-500", 500, args.batches, 0.5),
            ("single", 1, args.singles, 0.6),
        ):
            res = compare(kind, per_request, n, args.workers)
            met = res["ratio"] >= target
            ok &= met
            print(
                f"{kind:8s} {label:9s} rows={res['rows']:6d} "
                f"api={res['api_rows_s']:9.1f} rows/s ({res['api_ms_per_request']:7.1f} ms/req) "
                f"floor={res['floor_rows_s']:9.1f} rows/s ({res['floor_ms_per_request']:7.1f} ms/req) "
                f"ratio={res['ratio']:.2f} (median of pairs {res['ratio_median_pair']:.2f}, "
                f"server CPU {res['ratio_cpu']:.2f}) "
                f"target>={target} {'MET' if met else 'MISSED'}",
                flush=True,
            )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
