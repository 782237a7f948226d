"""Operating points of alternative rapid-decline rules on recorded nightly trajectories.

Records, for every night of 24 months, the slope the product judges
(`trend.decline_estimate`, the production estimator with level shifts
segmented) for the calibration design of VALIDATION.md (noise SD 150 mL,
AR(1) 0.3, 5/7 days, default cohort), then applies each candidate decision
rule to the same trajectories, so every rule is compared on the same patients.
The default rule re-applied here must agree with the replay
(`replay.fev1_first_flags`) up to the effort-drift check, which this
exploration leaves out (the default cohort has no effort drift).

Usage: python scripts/explore_decline_rules.py N
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from statistics import NormalDist

import numpy as np

from backend.clinical.detection_report import _series
from backend.clinical.simulation import CohortConfig, simulate_fev1_cohort
from backend.clinical.thresholds import DEFAULT_THRESHOLDS as TH
from backend.clinical.trend import _t_quantile, decline_estimate

DAYS = 730
SLOPES = (-144.0, -90.0, -30.0, 0.0)
# the seeds of rows D1, D3, D5, D6 of `validate_detection_core.py`: the cohort's
# patients are spawned one by one from the seed, so the first N are the first N
# patients of those rows
SEEDS = (1001, 1003, 1005, 1006)
ND = NormalDist()


def record(args: tuple[float, int, int]) -> list[np.ndarray]:
    """Per patient: (night, slope, se, effective_n, span, level shifts) on nights the window changed."""
    slope, n, seed = args
    cfg = CohortConfig(
        n_patients=n,
        days=DAYS,
        seed=seed,
        days_per_week=5.0,
        noise_sd_ml=150.0,
        ar1_rho=0.3,
        true_slope_ml_per_year=slope,
        treatment_start_p=0.0,
    )
    out = []
    for arrays, _ in simulate_fev1_cohort(cfg):
        s = _series(arrays.day, arrays.fev1_l, arrays.grade, arrays.device, TH, arrays.pef_l_s)
        rows = []
        for hi in range(TH.trend_min_readings, s.day.size + 1):
            if s.day[hi - 1] - s.day[0] < TH.trend_min_span_days:
                continue
            e = decline_estimate(s.day[:hi], s.fev1_l[:hi], s.device[:hi], TH)
            if e is None or e.n_readings < TH.trend_min_readings or e.span_days < TH.trend_min_span_days:
                continue
            rows.append(
                (
                    float(s.day[hi - 1]),
                    e.slope_ml_per_year,
                    e.se_ml_per_year,
                    e.effective_n,
                    e.span_days,
                    float(len(e.level_shifts)),
                )
            )
        out.append(np.array(rows).reshape(-1, 6))
    return out


Rule = Callable[[np.ndarray], np.ndarray]  # trajectory -> flagged per night


def t_bound(conf: float, margin: float, exponent: float, until: float = 365.0, late_z: float = 0.0) -> Rule:
    def rule(r: np.ndarray) -> np.ndarray:
        slope, se, neff, span = r[:, 1], r[:, 2], r[:, 3], r[:, 4]
        q = np.array([_t_quantile(max(1, int(np.floor(x)) - 2), round(conf, 6)) for x in neff])
        mult = np.maximum(1.0, until / np.maximum(span, 1.0)) ** exponent
        if late_z > 0:  # a different (usually stricter) quantile after `until` days
            q = np.where(span >= until, late_z, q)
        ok = np.isfinite(se)
        return ok & (slope <= -90.0) & (slope + q * se * mult < margin)

    return rule


def posterior(
    p: float, bar: float = -90.0, prior_mean: float = -89.0, prior_sd: float = 53.0, point: bool = True
) -> Rule:
    """P(true slope < bar | data) >= p, normal likelihood N(slope, se), registry prior."""

    def rule(r: np.ndarray) -> np.ndarray:
        slope, se = r[:, 1], r[:, 2]
        ok = np.isfinite(se) & (se > 0)
        se_ = np.where(ok, se, 1.0)
        prec = 1.0 / se_**2 + 1.0 / prior_sd**2
        mean = (slope / se_**2 + prior_mean / prior_sd**2) / prec
        prob = np.array([ND.cdf(x) for x in (bar - mean) * np.sqrt(prec)])
        flag = ok & (prob >= p)
        return flag & (slope <= -90.0) if point else flag

    return rule


def first_night(r: np.ndarray, rule: Rule) -> float | None:
    if r.size == 0:
        return None
    f = rule(r)
    return float(r[np.argmax(f), 0]) if f.any() else None


def shares(trajs: list[np.ndarray], rule: Rule) -> str:
    first = [first_night(r, rule) for r in trajs]
    n = len(first)
    by = [sum(d is not None and d < lim for d in first) for lim in (365, 548, 731)]
    return "/".join(f"{100 * x / n:.0f}" for x in by) + f" % ({by[-1]}/{n})"


def shifted_at_flag(trajs: list[np.ndarray], rule: Rule) -> str:
    """Of the patients flagged, how many had a level shift segmented on the night of the flag."""
    k = m = 0
    for r in trajs:
        if r.size == 0:
            continue
        f = rule(r)
        if f.any():
            m += 1
            k += int(r[np.argmax(f), 5] > 0)
    return f"{k}/{m}"


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    t0 = time.perf_counter()
    jobs = [(s, n, seed) for s, seed in zip(SLOPES, SEEDS, strict=True)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        rec = dict(zip(SLOPES, pool.map(record, jobs), strict=True))
    rules: list[tuple[str, Rule]] = [
        ("default: 99 % one-sided t < -30, widened sqrt(365/span)", t_bound(0.98, -30.0, 0.5)),
        ("99 % one-sided < -30, widened (365/span)^0.75", t_bound(0.98, -30.0, 0.75)),
        ("98.6 % (0.972) < -30, widened (365/span)^0.75", t_bound(0.972, -30.0, 0.75)),
        ("98 % (0.96) < -30, widened 365/span", t_bound(0.96, -30.0, 1.0)),
        ("99 % < -30, widened sqrt; z 2.8 after 365 d", t_bound(0.98, -30.0, 0.5, late_z=2.8)),
        ("98.6 % < -30, widened sqrt; z 2.8 after 365 d", t_bound(0.972, -30.0, 0.5, late_z=2.8)),
        ("98.6 % < -30, widened sqrt; z 3.0 after 365 d", t_bound(0.972, -30.0, 0.5, late_z=3.0)),
    ]
    for p in (0.95, 0.975, 0.99, 0.995):
        rules.append((f"posterior P(slope < -90) >= {p} (prior -89 +/- 53), slope <= -90", posterior(p)))
    for p in (0.99, 0.995, 0.999):
        name = f"posterior P(slope < -30) >= {p} (prior -89 +/- 53), slope <= -90"
        rules.append((name, posterior(p, -30.0)))
    head = " | ".join(f"{s:+.0f}" for s in SLOPES)
    print(f"| rule (flagged by 12 / 18 / 24 months) | {head} |")
    print("|---" * (len(SLOPES) + 1) + "|")
    for name, rule in rules:
        print(f"| {name} | " + " | ".join(shares(rec[s], rule) for s in SLOPES) + " |", flush=True)
    default = rules[0][1]
    print("\nflagged with a level shift segmented on the night of the flag (default rule): ", end="")
    print(", ".join(f"{s:+.0f}: {shifted_at_flag(rec[s], default)}" for s in SLOPES))
    print(f"\nn = {n} per slope, seeds {SEEDS}, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
