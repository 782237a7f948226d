"""Evaluation benchmark on PostgreSQL: the full nightly pass (ms per patient,
against the budget, and beside a floor of one `regr_slope ... GROUP BY
patient_id` query over the same rows for scale); peak RSS as the cohort grows;
the incremental pass after one day of new data for 1 % of the patients against
the full pass.

The cohort comes from the seeded simulator (`backend.clinical.simulation`):
two years of near-daily home spirometry, quarterly clinic sessions, and for the
patients who start sirolimus their regimen events, daily doses and trough
results. It is loaded with COPY in stages (default 1,000 -> 5,000 -> 10,000
patients); after each stage a full pass (`evaluate_patients(full=True)`, the
code behind `lamtrack evaluate`) runs in a fresh process so that its peak RSS
is its own. Derived GLI columns are left empty (the engine does not read them).

    .venv/bin/python scripts/bench/evaluation.py [--sizes 1000 5000 10000] [--keep]

Budget: full pass <= 10 ms per patient; peak RSS flat across sizes (max/min
< 1.25); incremental pass evaluates exactly the changed patients at a cost in
proportion to them (< 3x their share of the full pass).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

# LAMTRACK_BENCH_CODE: another checkout whose backend the passes run (a
# "before" export on the same kept database); this one by default
sys.path.insert(0, os.environ.get("LAMTRACK_BENCH_CODE") or str(Path(__file__).resolve().parents[2]))

from scripts.bench.common import (
    create_pg_database,
    drop_pg_database,
    print_machine,
    upgrade,
)

AS_OF = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)  # end of the simulated two years
NEXT_DAY = AS_OF + timedelta(days=1)
NS = uuid.UUID("8f7e6d5c-0000-4000-8000-62656e636800")
BUDGET_MS = 10.0  # full pass, per patient
COMMON = ("id", "client_id", "patient_id", "seq", "utc_offset_minutes", "created_at")


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def load_cohort(url: str, start: int, stop: int, team_id: str, seed: int = 20260101) -> dict[str, int]:
    """Simulate patients [start, stop) and COPY them in; one patient in memory at a time."""
    import numpy as np
    import psycopg

    from backend.clinical.simulation import CohortConfig, simulate_patient

    cfg = CohortConfig(n_patients=stop, seed=seed)
    children = np.random.SeedSequence(seed).spawn(stop)
    now = datetime.now(UTC)
    counts = {"patients": 0, "spirometry": 0, "doses": 0, "regimens": 0, "troughs": 0}

    def off(moment: datetime) -> int:
        return int(moment.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]

    with psycopg.connect(_psycopg_url(url)) as conn, conn.cursor() as cur:
        pat_cols = (
            "id",
            "care_team_id",
            "sex_at_birth",
            "date_of_birth",
            "height_cm",
            "lam_type",
            "timezone",
            "treatment_status",
            "trough_target_low",
            "trough_target_high",
            "expected_sessions_per_week",
            "rule_overrides",
            "change_seq",
            "data_changed_at",
            "created_at",
            "updated_at",
        )
        spi_cols = (*COMMON, "measured_at", "setting", "fev1_l", "fvc_l", "fev1_grade", "device")
        dose_cols = (*COMMON, "taken_at", "status", "dose_mg")
        reg_cols = (*COMMON, "effective_at", "kind", "daily_dose_mg", "drug_name", "recorded_by_role")
        tr_cols = (
            *COMMON,
            "drawn_at",
            "value_ng_ml",
            "last_dose_at",
            "assay_method",
            "not_true_trough",
            "before_steady_state",
        )
        step = 500
        for lo in range(start, stop, step):
            hi = min(stop, lo + step)
            sims = [simulate_patient(np.random.default_rng(children[i]), cfg, i) for i in range(lo, hi)]
            pids = [str(uuid.uuid5(NS, f"{seed}-{i}")) for i in range(lo, hi)]
            with cur.copy(f"COPY patients ({','.join(pat_cols)}) FROM STDIN") as cp:
                for pid, sim in zip(pids, sims, strict=True):
                    f = sim.history.facts
                    n = (
                        len(sim.history.readings)
                        + len(sim.history.doses)
                        + len(sim.history.regimens)
                        + len(sim.history.troughs)
                    )
                    cp.write_row(
                        (
                            pid,
                            team_id,
                            f.sex_at_birth,
                            f.date_of_birth,
                            f.height_cm,
                            f.lam_type,
                            f.timezone,
                            f.treatment_status,
                            5.0,
                            15.0,
                            f.expected_sessions_per_week,
                            "{}",
                            n,
                            now,
                            now,
                            now,
                        )
                    )
            counts["patients"] += len(pids)
            with cur.copy(f"COPY spirometry_sessions ({','.join(spi_cols)}) FROM STDIN") as cp:
                for pid, sim in zip(pids, sims, strict=True):
                    for seq, r in enumerate(sim.history.readings, 1):
                        device = json.dumps({"serial": r.device_id}) if r.device_id else None
                        cp.write_row(
                            (
                                str(uuid.uuid4()),
                                str(uuid.uuid4()),
                                pid,
                                seq,
                                off(r.measured_at),
                                now,
                                r.measured_at,
                                r.setting,
                                r.fev1_l,
                                r.fvc_l,
                                r.grade,
                                device,
                            )
                        )
                    counts["spirometry"] += len(sim.history.readings)
            with cur.copy(f"COPY sirolimus_doses ({','.join(dose_cols)}) FROM STDIN") as cp:
                for pid, sim in zip(pids, sims, strict=True):
                    base = len(sim.history.readings)
                    for k, d in enumerate(sim.history.doses, 1):
                        cp.write_row(
                            (
                                str(uuid.uuid4()),
                                str(uuid.uuid4()),
                                pid,
                                base + k,
                                off(d.taken_at),
                                now,
                                d.taken_at,
                                d.status,
                                d.dose_mg,
                            )
                        )
                    counts["doses"] += len(sim.history.doses)
            with cur.copy(f"COPY regimen_events ({','.join(reg_cols)}) FROM STDIN") as cp:
                for pid, sim in zip(pids, sims, strict=True):
                    base = len(sim.history.readings) + len(sim.history.doses)
                    for k, g in enumerate(sim.history.regimens, 1):
                        cp.write_row(
                            (
                                str(uuid.uuid4()),
                                str(uuid.uuid4()),
                                pid,
                                base + k,
                                off(g.effective_at),
                                now,
                                g.effective_at,
                                g.kind,
                                g.daily_dose_mg,
                                g.drug_name,
                                "clinician",
                            )
                        )
                    counts["regimens"] += len(sim.history.regimens)
            with cur.copy(f"COPY trough_results ({','.join(tr_cols)}) FROM STDIN") as cp:
                for pid, sim in zip(pids, sims, strict=True):
                    base = len(sim.history.readings) + len(sim.history.doses) + len(sim.history.regimens)
                    for k, t in enumerate(sim.history.troughs, 1):
                        cp.write_row(
                            (
                                str(uuid.uuid4()),
                                str(uuid.uuid4()),
                                pid,
                                base + k,
                                off(t.drawn_at),
                                now,
                                t.drawn_at,
                                t.value_ng_ml,
                                t.last_dose_at,
                                "lc_ms_ms",
                                False,
                                False,
                            )
                        )
                    counts["troughs"] += len(sim.history.troughs)
            conn.commit()
        cur.execute("ANALYZE")
    return counts


FLOOR_SQL = """
SELECT patient_id, regr_slope(fev1_l, extract(epoch from measured_at))
FROM spirometry_sessions WHERE deleted_at IS NULL {window}
GROUP BY patient_id
"""


def floor(url: str, window_days: int | None) -> tuple[float, int]:
    """Seconds for the regr_slope query (best of 3, rows fetched into Python)."""
    import psycopg

    window = ""
    if window_days is not None:
        window = (
            f"AND measured_at > timestamptz '{(AS_OF - timedelta(days=window_days)).isoformat()}' "
            f"AND measured_at <= timestamptz '{AS_OF.isoformat()}'"
        )
    best = float("inf")
    n = 0
    with psycopg.connect(_psycopg_url(url)) as conn, conn.cursor() as cur:
        for _ in range(3):
            t0 = time.perf_counter()
            cur.execute(FLOOR_SQL.format(window=window))  # type: ignore[arg-type]
            n = len(cur.fetchall())
            best = min(best, time.perf_counter() - t0)
    return best, n


def run_pass(url: str, *, full: bool, as_of: datetime) -> dict[str, float]:
    """One evaluation pass in a fresh process: seconds, patients, peak RSS (MiB)."""
    out = subprocess.run(
        [sys.executable, __file__, "--run-pass", url, "--as-of", as_of.isoformat()]
        + (["--full"] if full else []),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "LAMTRACK_JWT_KEYS": "bench-1:" + "b" * 48, "LOG_LEVEL": "WARNING"},
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _pass_main(url: str, as_of: str, full: bool) -> None:
    import logging

    import backend.clinical.evaluate  # noqa: F401 - imports (numpy, scipy) are not part of a pass
    from backend.config import Settings
    from backend.db import make_engine, make_sessionmaker
    from backend.evaluation.runner import evaluate_patients

    logging.disable(logging.WARNING)
    settings = Settings.from_env(database_url=url, email_backend="console")
    engine = make_engine(url)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0, cpu0 = time.perf_counter(), time.process_time()
    summary = evaluate_patients(
        make_sessionmaker(engine), settings=settings, as_of=datetime.fromisoformat(as_of), full=full
    )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    engine.dispose()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                **summary,
                "rss_before_mib": rss0,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def empty_alerts(url: str) -> None:
    """Remove what a pass writes (alerts, their events, audit rows, emails) so
    that each pass on a kept database does the same work as the first."""
    import psycopg

    with psycopg.connect(_psycopg_url(url)) as conn, conn.cursor() as cur:
        for table in ("outbox_messages", "alert_events", "audit_events", "alerts"):
            cur.execute(f"DELETE FROM {table}")  # type: ignore[arg-type]  # noqa: S608 - constant names
        cur.execute("UPDATE patients SET evaluated_at = NULL")
        conn.commit()
        conn.autocommit = True
        for table in ("outbox_messages", "alert_events", "audit_events", "alerts", "patients"):
            cur.execute(f"VACUUM ANALYZE {table}")  # type: ignore[arg-type]


def add_one_day(url: str, fraction: float) -> int:
    """One new session (on the day after AS_OF) for `fraction` of the patients,
    marked as changed data, as an upload would."""
    import psycopg

    now = datetime.now(UTC)
    with psycopg.connect(_psycopg_url(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, change_seq FROM patients ORDER BY id")
        rows = cur.fetchall()
        chosen = rows[:: max(1, round(1 / fraction))]
        with cur.copy(
            "COPY spirometry_sessions (id, client_id, patient_id, seq, utc_offset_minutes, "
            "created_at, measured_at, setting, fev1_l, fvc_l) FROM STDIN"
        ) as cp:
            for pid, seq in chosen:
                cp.write_row(
                    (
                        str(uuid.uuid4()),
                        str(uuid.uuid4()),
                        pid,
                        seq + 1,
                        0,
                        now,
                        NEXT_DAY - timedelta(hours=12),
                        "home",
                        1.9,
                        2.6,
                    )
                )
        cur.executemany(
            "UPDATE patients SET change_seq = change_seq + 1, data_changed_at = %s WHERE id = %s",
            [(now, pid) for pid, _ in chosen],
        )
        conn.commit()
    return len(chosen)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument(
        "--database",
        help="a database kept by an earlier --keep run: no load; its alerts, alert events, audit rows "
        "and emails are emptied, then one full pass (LAMTRACK_BENCH_CODE=DIR runs another checkout's "
        "backend); the database is kept",
    )
    parser.add_argument(
        "--alerts-open",
        action="store_true",
        help="with --database: keep the alerts the last pass left (a usual night: every alert already open)",
    )
    parser.add_argument("--run-pass", help=argparse.SUPPRESS)
    parser.add_argument("--as-of", help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_pass:
        _pass_main(args.run_pass, args.as_of, args.full)
        return 0

    from backend.clinical.thresholds import DEFAULT_THRESHOLDS
    from backend.db import make_engine, make_sessionmaker, session_scope
    from backend.patients.accounts import create_team

    print_machine()
    if args.database:
        return reuse(args.database, empty=not args.alerts_open)
    url = create_pg_database("lamtrack_bench_eval")
    ok = True
    try:
        upgrade(url)
        engine = make_engine(url)
        with session_scope(make_sessionmaker(engine)) as session:
            team_id = create_team(session, name="Bench cohort").id
        engine.dispose()
        # the rows the evaluation reads: the trend window plus its 60-day margin (evaluation.py)
        window = max(DEFAULT_THRESHOLDS.trend_window_days, DEFAULT_THRESHOLDS.acute_lookback_days) + 60
        loaded = 0
        rss = []
        last_full = None
        for size in sorted(args.sizes):
            t0 = time.perf_counter()
            counts = load_cohort(url, loaded, size, team_id)
            load_s = time.perf_counter() - t0
            loaded = size
            floor_all, _ = floor(url, None)
            floor_win, _ = floor(url, window)
            res = run_pass(url, full=True, as_of=AS_OF)
            last_full = res
            rss.append(res["peak_rss_mib"])
            ratio = res["seconds"] / floor_win
            ms = 1000 * res["seconds"] / size
            ok &= ms <= BUDGET_MS and res["errors"] == 0
            print(
                f"patients={size:6d} (+{counts['spirometry']} sessions, +{counts['doses']} doses "
                f"loaded in {load_s:.0f} s) full pass {res['seconds']:.1f} s "
                f"({ms:.2f} ms/patient, budget <= {BUDGET_MS:g} ms {'MET' if ms <= BUDGET_MS else 'MISSED'}; "
                f"CPU {1000 * res['cpu_seconds'] / size:.2f} ms/patient; "
                f"errors={res['errors']}, opened={res['opened']}) floor(window {window} d) {floor_win:.2f} s "
                f"floor(all rows) {floor_all:.2f} s ratio {ratio:.1f}x "
                f"(vs all rows {res['seconds'] / floor_all:.1f}x); peak RSS {res['peak_rss_mib']:.0f} MiB "
                f"(after imports {res['rss_before_mib']:.0f} MiB)",
                flush=True,
            )
        growth = max(rss) / min(rss)
        flat = growth < 1.25
        ok &= flat
        print(
            f"peak RSS across sizes {', '.join(f'{r:.0f}' for r in rss)} MiB: "
            f"max/min {growth:.2f} {'FLAT' if flat else 'GROWS'}",
            flush=True,
        )
        # incremental: one day of new data for 1 % of the patients
        changed = add_one_day(url, 0.01)
        inc = run_pass(url, full=False, as_of=NEXT_DAY)
        assert last_full is not None
        share = inc["seconds"] / last_full["seconds"]
        print(
            f"incremental: {changed} patients with new data ({100 * changed / loaded:.1f} %), "
            f"evaluated {inc['patients']} in {inc['seconds']:.2f} s = {100 * share:.2f} % of the "
            f"full pass ({1000 * inc['seconds'] / max(1, inc['patients']):.2f} ms/patient vs "
            f"{1000 * last_full['seconds'] / loaded:.2f}); peak RSS {inc['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        ok &= inc["patients"] == changed and share < 3 * changed / loaded
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            drop_pg_database(url)
    return 0 if ok else 1


def reuse(url: str, *, empty: bool = True) -> int:
    """One full pass on a kept database (see --database)."""
    import psycopg

    from backend.clinical.thresholds import DEFAULT_THRESHOLDS

    with psycopg.connect(_psycopg_url(url)) as conn:
        row = conn.execute("SELECT count(*) FROM patients").fetchone()
        size = int(row[0]) if row else 0
    if not size:
        raise SystemExit(f"no patients in {url}")
    window = max(DEFAULT_THRESHOLDS.trend_window_days, DEFAULT_THRESHOLDS.acute_lookback_days) + 60
    if empty:
        empty_alerts(url)
    floor_win, _ = floor(url, window)
    res = run_pass(url, full=True, as_of=AS_OF)
    ms, cpu_ms = 1000 * res["seconds"] / size, 1000 * res["cpu_seconds"] / size
    print(
        f"code={os.environ.get('LAMTRACK_BENCH_CODE') or 'this checkout'} patients={size} "
        f"{'alerts emptied' if empty else 'alerts already open'}: full pass "
        f"{res['seconds']:.1f} s ({ms:.2f} ms/patient wall, {cpu_ms:.2f} ms/patient CPU; budget <= "
        f"{BUDGET_MS:g} ms {'MET' if ms <= BUDGET_MS else 'MISSED'}; errors={res['errors']}, "
        f"opened={res['opened']}) floor(window {window} d) {floor_win:.2f} s ratio "
        f"{res['seconds'] / floor_win:.1f}x; peak RSS {res['peak_rss_mib']:.0f} MiB",
        flush=True,
    )
    return 0 if ms <= BUDGET_MS and res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
