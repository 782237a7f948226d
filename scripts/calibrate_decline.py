"""Calibrate the rapid-decline boundary by simulation of nightly looks (VALIDATION.md).

Records every nightly estimate of calibration cohorts (seeds of their own, not
those of `validate_detection_core.py`, which then validates the chosen point on
other patients), applies each boundary of a grid (rapid_decline_confidence x
early exponent x late exponent x pivot; margin -30 mL/yr) to all of
them, and prints the operating points within the false-flag budget.

The search keeps points with >= 90 % of -144 mL/yr patients flagged by
18 months and >= 25 % of -200 mL/yr patients by 9 months: without the
second bar it prefers bounds so wide before the pivot that nobody is flagged
before month 10, which buys 12-month sensitivity with early detection.

Usage:
  python scripts/calibrate_decline.py [--scale F] [--save DIR | --load DIR]
--scale multiplies the cohort sizes (1 = 600 patients at -200 mL/yr, 1,200
at -144, 2,400 at -30, 200 at 0, 150 at +20). 1,814 s from scratch with
2 worker processes here (recording 1,550 s); judging the 1,152 boundaries
of the grid alone (--load) 247-398 s.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from backend.clinical.boundary_calibration import (
    PID,
    Candidate,
    Operating,
    Recording,
    best,
    evaluate,
    grid,
    one_look_share,
    record,
)
from backend.clinical.detection_report import Scenario, scenario_config, table
from backend.clinical.thresholds import DEFAULT_THRESHOLDS

DAYS = 730
# (true slope mL/yr, seed, patients); several seeds per slope are pooled
COHORTS = {
    -200.0: ((5000, 300), (5100, 300)),
    -144.0: ((5001, 300), (5101, 300), (5201, 300), (5301, 300)),
    -30.0: ((5005, 400), (5105, 400), (5205, 400), (5305, 400), (5405, 400), (5505, 400)),
    0.0: ((5006, 200),),
    20.0: ((5008, 150),),
}
CONFIDENCES = (0.94, 0.95, 0.96, 0.965, 0.97, 0.975, 0.98, 0.985)
EARLY = (0.5, 1.0, 1.5, 2.0, 2.5, 4.0)
LATE = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5)
PIVOTS = (320, 335, 350, 365)
DECLINE_18 = 0.90  # -144 mL/yr flagged by 18 months, at least
FAST_9 = 0.25  # -200 mL/yr flagged by 9 months, at least (the previous default: 25.7 %)


def _job(args: tuple[float, int, int]) -> tuple[float, int, Recording]:
    slope, seed, n = args
    cfg = scenario_config(Scenario("C", slope, 150.0, 5.0, 0.3, n, seed, days=DAYS))
    return slope, seed, record(cfg, DEFAULT_THRESHOLDS, DAYS - 1)


def _pool(parts: list[Recording]) -> Recording:
    rows, offset = [], 0
    for p in parts:
        r = p.rows.copy()
        r[:, PID] += offset
        rows.append(r)
        offset += p.n_patients
    return Recording(offset, np.vstack(rows))


def _record_all(scale: float, save: Path | None, load: Path | None) -> dict[float, Recording]:
    jobs = [(s, seed, max(1, round(n * scale))) for s, parts in COHORTS.items() for seed, n in parts]
    got: dict[tuple[float, int], Recording] = {}
    if load is not None:
        for s, seed, n in jobs:
            got[(s, seed)] = Recording(n, np.load(load / f"{seed}_{n}.npy"))
    else:
        with ProcessPoolExecutor(max_workers=2) as pool:
            for s, seed, rec in pool.map(_job, sorted(jobs, key=lambda j: -j[2])):
                got[(s, seed)] = rec
                if save is not None:
                    save.mkdir(parents=True, exist_ok=True)
                    np.save(save / f"{seed}_{rec.n_patients}.npy", rec.rows)
    return {s: _pool([got[(s, seed)] for seed, _ in parts]) for s, parts in COHORTS.items()}


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _row(o: Operating, note: str = "") -> list[str]:
    c = o.candidate
    return [
        f"{c.confidence:g}",
        f"{c.early_exponent:g}",
        f"{c.late_exponent:g}",
        f"{c.pivot_days}",
        f"{_pct(o.decline_12)} / {_pct(o.decline_18)} / {_pct(o.decline_24)}",
        f"{o.decline_median_months:.1f}",
        f"{_pct(o.null_12)} / {_pct(o.null_ever)}",
        " / ".join(_pct(x) for x in o.others_ever),
        _pct(o.fast_9),
        note,
    ]


HEADER = [
    "confidence",
    "early exp",
    "late exp",
    "pivot (days)",
    "-144 flagged by 12 / 18 / 24 mo",
    "median mo (<= 12)",
    "-30 by 12 mo / ever",
    "0 / +20 ever",
    "-200 by 9 mo",
    "",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--save", type=Path)
    ap.add_argument("--load", type=Path)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rec = _record_all(args.scale, args.save, args.load)
    print(
        f"recorded in {time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"{s:+.0f}: {r.n_patients}" for s, r in rec.items())
    )
    cands = grid(CONFIDENCES, EARLY, LATE, PIVOTS)
    d = DEFAULT_THRESHOLDS
    default = Candidate.of(d)
    before = Candidate(0.965, 1.0, 1.0, 365)  # calibrated on 800 patients at -30 mL/yr
    flat = Candidate(0.98, 0.5, 0.0, 365)  # flat after 12 months, the one before
    for c in (default, before, flat):
        if c not in cands:
            cands.append(c)
    ops = evaluate(cands, d, rec[-144.0], rec[-30.0], (rec[0.0], rec[20.0]), fast=rec[-200.0])
    by = {o.candidate: o for o in ops}
    rows = [
        _row(by[default], "product default"),
        _row(by[before], "previous default"),
        _row(by[flat], "the default before it (flat after 12 mo)"),
    ]
    shown = {default, before, flat}
    # the frontier: the best 12-month share within each false-flag budget, under
    # both constraints, then with each one dropped (what it costs)
    for min18, min9 in ((DECLINE_18, FAST_9), (DECLINE_18, 0.0), (0.85, FAST_9)):
        for budget in (0.045, 0.05, 0.055, 0.06):
            top = best(ops, max_false=budget, min_decline_18=min18, min_fast_9=min9)[:1]
            note = (
                f"best at ever <= {_pct(budget)}, -144 by 18 mo >= {_pct(min18)}, "
                f"-200 by 9 mo >= {_pct(min9)}"
            )
            rows += [_row(o, note + (" (shown above)" if o.candidate in shown else "")) for o in top]
            shown |= {o.candidate for o in top}
    print(table(HEADER, rows))
    print("\nOne look with the product's estimator (5 % one-sided, no repeated looks), by 12 / 18 months:")
    for s, r in rec.items():
        print(f"  {s:+.0f} mL/yr: " + " / ".join(_pct(one_look_share(r, day, d)) for day in (364, 547)))
    print(
        f"\n{len(cands)} boundaries, margin {d.rapid_decline_ci_high_below_ml_per_year:g} mL/yr, "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
