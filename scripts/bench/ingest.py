"""Ingest benchmark: the real API against a floor, same server kind, same
database, same run.

For each database (PostgreSQL, SQLite) two gunicorn servers run side by side on
127.0.0.1 with the same worker count: the real app (`backend.wsgi:app`: bearer
auth, per-item validation, patient row lock, client_id dedupe, GLI derivation,
audit row) and the floor (`scripts/bench/floor_app.py`: parse JSON, one Core
executemany). Requests alternate between the two in rounds so that drift on a
shared machine hits both alike. Payloads are encoded before timing.

    .venv/bin/python scripts/bench/ingest.py [--db postgres sqlite] [--batches 30] [--singles 400]

Prints rows/second for each side and the ratio api/floor. Targets: batch >= 0.5,
single >= 0.6.
"""

from __future__ import annotations

import argparse
import json
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

ROUNDS = 5


def _bodies(n_requests: int, per_request: int, seed: int) -> list[bytes]:
    return [json.dumps({"items": spirometry_items(per_request, start_day=i * per_request,
                                                  rng_seed=seed + i)}).encode()
            for i in range(n_requests)]


def _run(client: Client, path: str, bodies: list[bytes]) -> float:
    t0 = time.perf_counter()
    for body in bodies:
        status, raw, _ = client.raw("POST", path, body)
        if status != 200:
            raise RuntimeError(f"POST {path} -> {status}: {raw[:300]!r}")
    return time.perf_counter() - t0


def compare(kind: str, per_request: int, n_requests: int, workers: int) -> dict[str, float]:
    with database(kind) as url:
        seeded = seed_accounts(url, 2)
        api_pid, api_email = seeded.patients[0]
        floor_pid = seeded.patients[1][0]
        with Server("backend.wsgi:app", url, workers=workers) as api, \
                Server("scripts.bench.floor_app:app", url, workers=workers) as floor:
            api_client = Client(api.port, login(api.port, api_email))
            floor_client = Client(floor.port)
            api_path = f"/api/v1/patients/{api_pid}/spirometry"
            floor_path = f"/floor/patients/{floor_pid}/spirometry"
            # warm-up: imports, connection pools, prepared plans
            _run(api_client, api_path, _bodies(3, per_request, 900))
            _run(floor_client, floor_path, _bodies(3, per_request, 950))
            per_round = max(1, n_requests // ROUNDS)
            api_t = floor_t = 0.0
            api_rounds, floor_rounds = [], []
            for r in range(ROUNDS):
                a = _bodies(per_round, per_request, 10_000 + r * 1000)
                f = _bodies(per_round, per_request, 20_000 + r * 1000)
                ft = _run(floor_client, floor_path, f)
                at = _run(api_client, api_path, a)
                floor_t += ft
                api_t += at
                floor_rounds.append(per_round * per_request / ft)
                api_rounds.append(per_round * per_request / at)
            rows = ROUNDS * per_round * per_request
            api_client.close()
            floor_client.close()
    return {
        "rows": rows,
        "api_rows_s": rows / api_t,
        "floor_rows_s": rows / floor_t,
        "ratio": (rows / api_t) / (rows / floor_t),
        "ratio_median_round": statistics.median(a / f for a, f in zip(api_rounds, floor_rounds,
                                                                        strict=True)),
        "api_ms_per_request": 1000 * api_t / (ROUNDS * per_round),
        "floor_ms_per_request": 1000 * floor_t / (ROUNDS * per_round),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", nargs="+", default=["postgres", "sqlite"],
                        choices=["postgres", "sqlite"])
    parser.add_argument("--batches", type=int, default=30, help="500-item requests per side")
    parser.add_argument("--singles", type=int, default=400, help="1-item requests per side")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print_machine()
    ok = True
    for kind in args.db:
        for label, per_request, n, target in (("batch-500", 500, args.batches, 0.5),
                                              ("single", 1, args.singles, 0.6)):
            res = compare(kind, per_request, n, args.workers)
            met = res["ratio"] >= target
            ok &= met
            print(f"{kind:8s} {label:9s} rows={res['rows']:6d} "
                  f"api={res['api_rows_s']:9.1f} rows/s ({res['api_ms_per_request']:7.1f} ms/req) "
                  f"floor={res['floor_rows_s']:9.1f} rows/s ({res['floor_ms_per_request']:7.1f} ms/req) "
                  f"ratio={res['ratio']:.2f} (median of rounds {res['ratio_median_round']:.2f}) "
                  f"target>={target} {'MET' if met else 'MISSED'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
