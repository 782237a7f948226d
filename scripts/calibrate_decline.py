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

--validate also records the validation patients (the D rows of
`validate_detection_core.py`, 300 a row) and prints the operating points of
VALIDATION.md on calibration | validation | both pooled, and the check of
the slope's standard error (z = (slope - truth) / SE at the 12-month look).

Usage:
  python scripts/calibrate_decline.py [--scale F] [--validate] [--save DIR | --load DIR]
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
    NINE_MONTHS,
    PID,
    SE,
    SLOPE,
    Candidate,
    Operating,
    Recording,
    best,
    evaluate,
    first_flag_days,
    grid,
    last_nights,
    one_look_share,
    record,
    share_by,
)
from backend.clinical.detection_report import Scenario, decline_grid, scenario_config, table
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
# the validation patients: rows D0-D8 of the decline grid (their seeds), 300 a row
VALIDATION = {
    scn.slope: ((scn.seed, scn.n),)
    for scn in decline_grid(False, 300)
    if scn.name.startswith("D") and scn.slope in (-200.0, -144.0, -90.0, -30.0, 0.0, 20.0)
}
# the operating points a team may choose (VALIDATION.md)
OPERATING_POINTS = (
    ("fewer false alarms", Candidate(0.985, 1.0, 0.5, 320)),
    ("default", Candidate.of(DEFAULT_THRESHOLDS)),
    ("earlier detection", Candidate(0.965, 1.5, 0.75, 320)),
    ("previous default", Candidate(0.965, 1.0, 1.0, 365)),
    ("flat after 12 months (the default before)", Candidate(0.98, 0.5, 0.0, 365)),
    ("12-month share, nothing before month 10", Candidate(0.95, 4.0, 1.25, 350)),
    ("much earlier, many false alarms", Candidate(0.95, 0.5, 0.0, 365)),
)


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


def _record_all(
    cohorts: dict[float, tuple[tuple[int, int], ...]], scale: float, save: Path | None, load: Path | None
) -> dict[float, Recording]:
    jobs = [(s, seed, max(1, round(n * scale))) for s, parts in cohorts.items() for seed, n in parts]
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
    return {s: _pool([got[(s, seed)] for seed, _ in parts]) for s, parts in cohorts.items()}


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
    ap.add_argument("--validate", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rec = _record_all(COHORTS, args.scale, args.save, args.load)
    print(
        f"recorded in {time.perf_counter() - t0:.0f} s: "
        + ", ".join(f"{s:+.0f}: {r.n_patients}" for s, r in rec.items())
    )
    cands = grid(CONFIDENCES, EARLY, LATE, PIVOTS)
    d = DEFAULT_THRESHOLDS
    default = Candidate.of(d)
    before = OPERATING_POINTS[3][1]  # calibrated on 800 patients at -30 mL/yr
    flat = OPERATING_POINTS[4][1]
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
    if args.validate:
        val = _record_all(VALIDATION, 1.0, args.save, args.load)
        print("\nOperating points: calibration | validation | pooled (0 mL/yr: calibration | validation)")
        print(table(OPERATING_HEADER, [_operating_row(n, c, rec, val) for n, c in OPERATING_POINTS]))
        print("\nStandard error at the 12-month look, z = (slope - truth) / SE, calibration patients:")
        for s in (-144.0, -30.0):
            z = _z_at(rec[s], s, 364)
            se = np.percentile(last_nights(rec[s], 364)[:, SE], (5, 50, 95))
            print(
                f"  {s:+.0f} mL/yr: mean {z.mean():+.2f}, SD {z.std():.2f} ({z.size} patients); "
                f"SE 5th / 50th / 95th percentile {se[0]:.0f} / {se[1]:.0f} / {se[2]:.0f} mL/yr"
            )
        print(f"\n{time.perf_counter() - t0:.0f} s in all")
    return 0


OPERATING_HEADER = [
    "team preference",
    "confidence / early / late exponent / pivot",
    "-200 by 9 mo",
    "-144 by 12 / 18 / 24 mo",
    "-90 by 12 / 18 / 24 mo (validation)",
    "-30 ever",
    "0 ever",
]


def _operating_row(
    name: str, c: Candidate, cal: dict[float, Recording], val: dict[float, Recording]
) -> list[str]:
    t = c.thresholds(DEFAULT_THRESHOLDS)

    def at(r: Recording, days: tuple[int, ...], digits: int = 0) -> str:
        first = first_flag_days(r, t)
        return "/".join(f"{100 * share_by(first, d):.{digits}f}" for d in days)

    def three(s: float, days: tuple[int, ...], digits: int = 0) -> str:
        parts = (cal[s], val[s], _pool([cal[s], val[s]]))
        return " \\| ".join(at(r, days, digits) for r in parts) + " %"

    return [
        name,
        f"{c.confidence:g} / {c.early_exponent:g} / {c.late_exponent:g} / {c.pivot_days}",
        three(-200.0, (NINE_MONTHS,)),
        three(-144.0, (364, 547, 729)),
        at(val[-90.0], (364, 547, 729)) + " %",
        three(-30.0, (729,), 1),
        " \\| ".join(at(r, (729,), 1) for r in (cal[0.0], val[0.0])) + " %",
    ]


def _z_at(rec: Recording, true_slope: float, day: int) -> np.ndarray:
    """(slope - truth) / SE of each patient on her last recorded night up to `day`."""
    last = last_nights(rec, day)
    z: np.ndarray = (last[:, SLOPE] - true_slope) / last[:, SE]
    return z


if __name__ == "__main__":
    raise SystemExit(main())
