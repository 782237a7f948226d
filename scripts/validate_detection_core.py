"""Core rows of the rapid-decline validation: nightly looks over 24 months (see VALIDATION.md).

validate_detection_core.py [N]            decline, artefact and effort rows (N per decline row)
validate_detection_core.py --design [N]   noise, frequency and autocorrelation rows (N // 2 each)
validate_detection_core.py --level-drops [N]  share ever given a segmented step down (N a row)
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor

from backend.clinical.detection_report import (
    ARTEFACT_HEADER,
    DECLINE_HEADER,
    Scenario,
    _decline_job,
    artefact_grid,
    decline_grid,
    patient_series,
    run_effort,
    scenario_config,
    summarize_artefact,
    summarize_decline,
    table,
)
from backend.clinical.simulation import simulate_fev1_cohort
from backend.clinical.thresholds import DEFAULT_THRESHOLDS
from backend.clinical.trend import decline_estimate


def design_rows(n: int) -> int:
    """Noise, frequency and autocorrelation rows of the full grid (n // 2 patients each)."""
    t0 = time.perf_counter()
    rows = [s for s in decline_grid(False, n) if s.name[0] in "NFR"]
    with ProcessPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(_decline_job, rows))
    print(table(DECLINE_HEADER, [summarize_decline(s, r) for s, r in done]), flush=True)
    print(f"\nRun time {time.perf_counter() - t0:.0f} s, {n // 2} patients per row")
    return 0


def _level_drop_job(scn: Scenario) -> tuple[Scenario, int]:
    """Patients with a segmented step down on at least one weekly look from month 6."""
    cfg = scenario_config(scn)
    t = DEFAULT_THRESHOLDS
    ever = 0
    for arrays, _truth in simulate_fev1_cohort(cfg):
        s = patient_series(arrays, t)
        for d in range(180, scn.days, 7):
            seen = s.day <= d
            if seen.sum() < t.trend_min_readings or s.day[seen][-1] - s.day[seen][0] < t.trend_min_span_days:
                continue
            est = decline_estimate(s.day[seen], s.fev1_l[seen], s.device[seen], t)
            if est is not None and any(ml < 0 for _, ml in est.level_shifts):
                ever += 1
                break
    return scn, ever


def level_drop_rows(n: int) -> int:
    rows = [
        Scenario(f"D{i}", s, 150.0, 5.0, 0.3, n, 1000 + i, days=730)
        for i, s in ((1, -144.0), (5, -30.0), (6, 0.0), (8, 20.0))
    ]
    rows += [s for s in artefact_grid(False, 2 * n) if s.name in ("X10", "X30", "X40")]
    with ProcessPoolExecutor(max_workers=2) as pool:
        for scn, ever in pool.map(_level_drop_job, rows):
            what = scn.label or f"{scn.slope:+.0f} mL/yr"
            print(f"{scn.name} ({what}): {ever}/{scn.n} ever had a segmented step down", flush=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--level-drops":
        return level_drop_rows(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    if len(sys.argv) > 1 and sys.argv[1] == "--design":
        return design_rows(int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    t0 = time.perf_counter()
    # same scenario names and seeds as the full grid (`decline_grid`)
    rows = [
        Scenario(f"D{i}", s, 150.0, 5.0, 0.3, n, 1000 + i, days=730)
        for i, s in ((1, -144.0), (3, -90.0), (5, -30.0), (6, 0.0), (8, 20.0))
    ]
    arte = [
        s for s in artefact_grid(False, n) if s.slope == 0.0 and s.name in ("X10", "X20", "X30", "X40", "X50")
    ]
    with ProcessPoolExecutor(max_workers=2) as pool:
        # every row is one job with its own seed, so submitting them all at once
        # (slowest first: stable rows are never flagged and are replayed to the
        # end) only balances the two workers; each row's patients are unchanged
        order = [s for s in rows if s.slope > -60] + arte + [s for s in rows if s.slope <= -60]
        futures = {s.name: pool.submit(_decline_job, s) for s in order}
        dec = [futures[s.name].result() for s in rows]
        print(table(DECLINE_HEADER, [summarize_decline(s, r) for s, r in dec]), flush=True)
        print(f"\n(decline rows done at {time.perf_counter() - t0:.0f} s)\n", flush=True)
        art = [futures[s.name].result() for s in arte]
    print(table(ARTEFACT_HEADER, [summarize_artefact(s, r) for s, r in art]), flush=True)
    print(f"\n(artefact rows done at {time.perf_counter() - t0:.0f} s)\n", flush=True)
    print(run_effort(n // 2, 2))  # effort drift: the same patients with the check off and on
    print(f"\nRun time {time.perf_counter() - t0:.0f} s, n={n} per decline row, {n // 2} per artefact row")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
