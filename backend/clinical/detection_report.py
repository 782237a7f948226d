"""Validate rapid-decline and acute-drop detection on a synthetic or external cohort.

Every night of the follow-up is re-evaluated with only the data available that
night (repeated looks count for false alarms). Three detectors are compared on
the same data:
  product  - the lamtrack detector (robust slope, AR(1)-honest CI, verdict rules);
  ols      - a plain least-squares slope <= -90 mL/yr on the same home series,
             same window, minimum span and reading count;
  clinic   - usual practice: quarterly clinic spirometry, least-squares slope of
             the clinic values of the last 12 months <= -90 mL/yr (>= 3 visits
             over >= 180 days), looked at on visit days.
Acute drops: product rule (Bjortuft 1993 with the personal noise floor, 'all' and
'mean' variants) vs the plain 10 % rule (acute_drop_noise_z = 0) vs a drop
>= 10 % between consecutive quarterly clinic visits.

Usage:
  python scripts/validate_detection.py                 # default grid (a few minutes, 2 cores)
  python scripts/validate_detection.py --quick         # CI (< 60 s)
  python scripts/validate_detection.py --acute         # acute-drop grid only
  python scripts/validate_detection.py --acute-sweep   # operating points of the noise floor
  python scripts/validate_detection.py --sweep         # operating points of the decline rule
  python scripts/validate_detection.py --precision     # slope SD and CI coverage
  python scripts/validate_detection.py --effort -n 200 # effort drift: check off vs on, same patients
  python scripts/validate_detection.py --cohort readings.csv [--truth truth.csv]
  ... --markdown results.md  writes the tables as Markdown as well.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path

import numpy as np

from backend.clinical.model import SlopeEstimate
from backend.clinical.replay import fev1_first_flags
from backend.clinical.series import DailySeries, series_from_arrays
from backend.clinical.simulation import CohortConfig, Fev1Arrays, simulate_fev1_cohort
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from backend.clinical.trend import (
    ML_PER_YEAR_PER_L_PER_DAY,
    decline_estimate,
    effort_drift,
    ols_slope,
    robust_slope,
)

TRUSTED = ("", "A", "B", "C")


@dataclass(frozen=True)
class Scenario:
    name: str
    slope: float
    noise_sd: float
    days_per_week: float
    rho: float
    n: int
    seed: int
    days: int = 365
    extra: tuple[tuple[str, float | bool], ...] = ()  # CohortConfig overrides (artefacts)
    label: str = ""


@dataclass(frozen=True)
class PatientResult:
    product_day: int | None
    ols_day: int | None
    clinic_day: int | None
    final_slope: float | None = None
    level_shifts: int = 0
    effort_review_day: int | None = None  # first night of the effort data-quality alert
    final_effort_pct: float | None = None  # PEF/FEV1 slope at the end, % per year


# ------------------------------------------------------- one-look limit


def one_look_limit(
    slope: float,
    noise_sd: float,
    days_per_week: float,
    rho: float,
    months: float,
    *,
    null_ml_per_year: float = -30.0,
    alpha: float = 0.05,
    within_day_sd: float = 50.0,
    patterns: int = 12,
    seed: int = 99,
) -> float:
    """Power of one least-squares look at `months` against a stable null.

    The statistical limit of the design: one look, after `months` of home
    readings from day 0 (each day with probability days/7), day-level AR(1)
    noise with marginal SD `noise_sd` and lag-1 correlation `rho` plus
    within-day noise, no artefacts, the slope's exact variance (averaged over
    random reading patterns), and the bar set so a patient at
    `null_ml_per_year` is flagged with probability `alpha`. For slopes at or
    above the null it is the false-alarm rate (<= alpha).
    """
    from statistics import NormalDist

    rng = np.random.default_rng(seed)
    days = round(months * 30.4375)
    var = 0.0
    for _ in range(patterns):
        d = np.flatnonzero(rng.random(days) < days_per_week / 7.0).astype(np.float64)
        t = d / 365.25
        tc = t - t.mean()
        c = tc / float(tc @ tc)
        lag = np.abs(d[:, None] - d[None, :])
        cov = (noise_sd**2) * rho**lag + np.eye(d.size) * within_day_sd**2
        var += float(c @ cov @ c)
    se = float(np.sqrt(var / patterns))
    nd = NormalDist()
    return nd.cdf((null_ml_per_year - slope) / se - nd.inv_cdf(1.0 - alpha))


def _ols_naive_estimate(s: DailySeries) -> SlopeEstimate | None:
    """Least squares with the textbook (independent-noise) standard error."""
    t = s.day.astype(np.float64)
    b = ols_slope(t, s.fev1_l)
    if b is None or t.size < 3:
        return None
    tc = t - t.mean()
    resid = s.fev1_l - s.fev1_l.mean() - b * tc
    se = float(np.sqrt(resid @ resid / (t.size - 2) / (tc @ tc))) * ML_PER_YEAR_PER_L_PER_DAY
    ml = b * ML_PER_YEAR_PER_L_PER_DAY
    return SlopeEstimate(
        ml, ml - 1.96 * se, ml + 1.96 * se, se, 0.0, t.size, float(t[-1] - t[0]), 0.0, float(t.size), 0.0, 0
    )


def _ols_estimate(s: DailySeries) -> SlopeEstimate | None:
    b = ols_slope(s.day.astype(np.float64), s.fev1_l)
    if b is None:
        return None
    ml = b * ML_PER_YEAR_PER_L_PER_DAY
    span = float(s.day[-1] - s.day[0])
    return SlopeEstimate(ml, ml, ml, 0.0, 0.0, len(s), span, 0.0, float(len(s)), 0.0, 0)


def clinic_first_flag(
    clinic_day: np.ndarray, clinic_fev1: np.ndarray, last_day: int, thresholds: Thresholds
) -> int | None:
    """Usual practice: OLS slope of the last 12 months of clinic values."""
    for k in range(len(clinic_day)):
        d = int(clinic_day[k])
        if d > last_day:
            break
        m = (clinic_day <= d) & (clinic_day > d - thresholds.trend_window_days)
        if m.sum() < 3 or d - int(clinic_day[m][0]) < thresholds.trend_min_span_days:
            continue
        b = ols_slope(clinic_day[m].astype(np.float64), clinic_fev1[m])
        if b is not None and b * ML_PER_YEAR_PER_L_PER_DAY <= thresholds.rapid_decline_ml_per_year:
            return d
    return None


def _series(
    day: np.ndarray,
    fev1: np.ndarray,
    grade: np.ndarray,
    device: np.ndarray,
    thresholds: Thresholds,
    pef: np.ndarray | None = None,
) -> DailySeries:
    ok = np.isin(grade, TRUSTED)
    ok &= (fev1 >= thresholds.fev1_plausible_min_l) & (fev1 <= thresholds.fev1_plausible_max_l)
    return series_from_arrays(
        day[ok],
        fev1[ok],
        device[ok],
        thresholds,
        first_home_day=int(day.min()),
        pef_l_s=None if pef is None else pef[ok],
    )


def patient_series(arrays: Fev1Arrays, thresholds: Thresholds) -> DailySeries:
    """A simulated patient's daily series as the product sees it (trusted, plausible sessions)."""
    return _series(arrays.day, arrays.fev1_l, arrays.grade, arrays.device, thresholds, arrays.pef_l_s)


def scenario_config(scn: Scenario, **overrides: float | bool | tuple[int, int]) -> CohortConfig:
    """The simulated cohort of a scenario: its design, no treatment starts, its extra settings."""
    cfg = CohortConfig(
        n_patients=scn.n,
        days=scn.days,
        seed=scn.seed,
        days_per_week=scn.days_per_week,
        noise_sd_ml=scn.noise_sd,
        ar1_rho=scn.rho,
        true_slope_ml_per_year=scn.slope,
        treatment_start_p=0.0,
    )
    settings = {**dict(scn.extra), **overrides}
    return replace(cfg, **settings) if settings else cfg  # type: ignore[arg-type]


def run_decline(scn: Scenario, thresholds: Thresholds) -> list[PatientResult]:
    cfg = scenario_config(scn)
    out = []
    for arrays, _truth in simulate_fev1_cohort(cfg):
        s = patient_series(arrays, thresholds)
        last = scn.days - 1
        prod = fev1_first_flags(s, 0, last, thresholds, acute=False)
        tail = s.day > last - thresholds.trend_window_days
        drift = effort_drift(
            s.day[tail], None if s.effort is None else s.effort[tail], s.device[tail], thresholds
        )
        final = decline_estimate(
            s.day[s.day > last - thresholds.trend_window_days],
            s.fev1_l[s.day > last - thresholds.trend_window_days],
            s.device[s.day > last - thresholds.trend_window_days],
            thresholds,
        )
        ols = fev1_first_flags(
            s,
            0,
            min(last, 364),
            thresholds,
            acute=False,
            slope_fn=_ols_estimate,
            decide=lambda e: e is not None and e.slope_ml_per_year <= thresholds.rapid_decline_ml_per_year,
        )
        clinic = clinic_first_flag(arrays.clinic_day, arrays.clinic_fev1_l, min(last, 364), thresholds)
        out.append(
            PatientResult(
                prod.rapid_decline_day,
                ols.rapid_decline_day,
                clinic,
                None if final is None else final.slope_ml_per_year,
                0 if final is None else len(final.level_shifts),
                prod.effort_review_day,
                None if drift is None else drift.slope_pct_per_year,
            )
        )
    return out


@dataclass(frozen=True)
class DropResult:
    detected_all: bool
    detected_mean: bool
    detected_clinic: bool
    false_all: int
    false_mean: int
    years: float
    detected_plain: bool = False
    false_plain: int = 0
    during_all: bool = False  # product rule flagged the drop before it ended
    baseline_l: float = 0.0


def run_drop(scn: Scenario, thresholds: Thresholds, with_drop: bool) -> list[DropResult]:
    cfg = scenario_config(
        scn, acute_drop_p=1.0 if with_drop else 0.0, acute_drop_fraction=0.15, acute_drop_days=(3, 7)
    )
    t_mean = replace(thresholds, acute_drop_statistic="mean")
    t_plain = replace(thresholds, acute_drop_noise_z=0.0)  # Bjortuft 1993 without noise floor
    out = []
    for arrays, truth in simulate_fev1_cohort(cfg):
        s = _series(arrays.day, arrays.fev1_l, arrays.grade, arrays.device, thresholds)
        res = {}
        for label, th in (("all", thresholds), ("mean", t_mean), ("plain", t_plain)):
            f = fev1_first_flags(s, 0, scn.days - 1, th, acute=True, decline=False)
            detected = False
            during = False
            false = 0
            for night, onset in zip(f.acute_drop_days, f.acute_drop_onsets, strict=True):
                # an onset up to 3 days early is the same episode (a low reading
                # just before the drop can start it)
                true_hit = any(d0 - 3 <= onset <= d1 + 2 for d0, d1, _ in truth.drops)
                if true_hit:
                    if any(d0 <= night <= d0 + 2 for d0, _, _ in truth.drops):
                        detected = True
                    if any(d0 <= night <= d1 for d0, d1, _ in truth.drops):
                        during = True
                else:
                    false += 1
            res[label] = (detected, false, during)
        clinic = False
        for d0, _d1, _ in truth.drops:
            k = np.flatnonzero((arrays.clinic_day >= d0) & (arrays.clinic_day <= d0 + 2))
            if k.size and k[0] > 0:
                prev = arrays.clinic_fev1_l[k[0] - 1]
                clinic = bool(arrays.clinic_fev1_l[k[0]] <= 0.9 * prev)
        years = scn.days / 365.25
        out.append(
            DropResult(
                res["all"][0],
                res["mean"][0],
                clinic,
                res["all"][1],
                res["mean"][1],
                years,
                res["plain"][0],
                res["plain"][1],
                res["all"][2],
                truth.baseline_fev1_l,
            )
        )
    return out


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _median_months(days: Sequence[int | None], n: int) -> str:
    """Median time to detection over all patients (undetected count as never)."""
    vals = sorted(d for d in days if d is not None)
    if 2 * len(vals) < n:
        return "> 12"
    return f"{(vals[(n - 1) // 2] + 1) / 30.44:.1f}"


def _flagged_by(days: Sequence[int | None], by_day: int) -> float:
    return sum(d is not None and d < by_day for d in days) / max(1, len(days))


def summarize_decline(scn: Scenario, res: list[PatientResult]) -> list[str]:
    n = len(res)
    prod = [r.product_day for r in res]
    long = scn.days > 365
    lim12 = one_look_limit(scn.slope, scn.noise_sd, scn.days_per_week, scn.rho, 12)
    lim18 = one_look_limit(scn.slope, scn.noise_sd, scn.days_per_week, scn.rho, 18)
    p12 = _flagged_by(prod, 365)
    p18 = _flagged_by(prod, 548)
    row = [
        scn.name,
        f"{scn.slope:+.0f}",
        f"{scn.noise_sd:.0f}",
        f"{scn.days_per_week:g}/7",
        f"{scn.rho:g}",
        str(n),
        _fmt_pct(p12),
        _fmt_pct(lim12),
        f"{p12 / lim12:.2f}" if scn.slope < -30 and lim12 > 0 else "",
        _fmt_pct(p18) if long else "",
        _fmt_pct(lim18) if long else "",
        _fmt_pct(_flagged_by(prod, 731)) if long else "",
        _median_months([d if d is not None and d < 365 else None for d in prod], n),
    ]
    for attr in ("ols_day", "clinic_day"):
        days = [getattr(r, attr) for r in res]
        within_12 = [d if d is not None and d < 365 else None for d in days]
        row += [_fmt_pct(sum(d is not None for d in within_12) / n), _median_months(within_12, n)]
    return row


DECLINE_HEADER = [
    "scenario",
    "true slope mL/yr",
    "noise SD mL",
    "days/week",
    "AR(1) rho",
    "n",
    "product flagged by 12 mo",
    "one-look limit 12 mo",
    "ratio to limit 12 mo",
    "product flagged by 18 mo",
    "one-look limit 18 mo",
    "product flagged by 24 mo",
    "product median mo (<= 12)",
    "OLS flagged by 12 mo",
    "OLS median mo",
    "clinic flagged by 12 mo",
    "clinic median mo",
]


def summarize_artefact(scn: Scenario, res: list[PatientResult]) -> list[str]:
    prod = [r.product_day for r in res]
    slopes = [r.final_slope for r in res if r.final_slope is not None]
    return [
        scn.name,
        scn.label,
        f"{scn.slope:+.0f}",
        str(len(res)),
        _fmt_pct(_flagged_by(prod, 365)),
        _fmt_pct(_flagged_by(prod, 731)) if scn.days > 365 else "",
        f"{np.median(slopes):+.0f}" if slopes else "",
        _fmt_pct(sum(r.level_shifts > 0 for r in res) / max(1, len(res))),
    ]


ARTEFACT_HEADER = [
    "scenario",
    "home-data artefact",
    "true slope mL/yr",
    "n",
    "flagged by 12 mo",
    "flagged by 24 mo",
    "median slope at the end mL/yr",
    "level shift segmented",
]


def artefact_grid(quick: bool, n: int) -> list[Scenario]:
    days = 365 if quick else 730
    m = n // 2
    cases: list[tuple[str, tuple[tuple[str, float | bool], ...]]] = [
        ("none (default cohort)", ()),
        ("replacement, same model, no serial, -200 mL", (("replacement_step_ml", -200.0),)),
        ("step +300 mL, no device data", (("replacement_step_ml", 300.0), ("replacement_day", 200))),
        (
            "replacement with a new serial, -200 mL",
            (("replacement_step_ml", -200.0), ("replacement_new_serial", True)),
        ),
        ("infection dips (2/yr, 15 %, recover in 3 weeks)", (("infection_dips_per_year", 2.0),)),
        ("ungraded effort drift -124 mL/yr", (("effort_drift_ml_per_year", -124.0),)),
        ("poor-effort sessions 10 %", (("outlier_p", 0.10),)),
        ("holiday gaps 4/yr", (("gaps_per_year", 4.0),)),
        ("learning effect 300 mL", (("learning_effect_ml", 300.0), ("learning_tau_days", 14.0))),
    ]
    slopes: tuple[float, ...] = (0.0, -144.0)
    if quick:
        cases, slopes = cases[1:3], (0.0,)
    grid = []
    for i, (label, extra) in enumerate(cases):
        for j, slope in enumerate(slopes):
            grid.append(
                Scenario(f"X{10 * i + j}", slope, 150.0, 5.0, 0.3, m, 3000 + 10 * i + j, days, extra, label)
            )
    return grid


def effort_grid(n: int, days: int = 730) -> list[Scenario]:
    """True 0 and -144 mL/yr, without and with ungraded effort drift of -124 mL/yr."""
    grid = []
    for i, (slope, drift) in enumerate(((0.0, 0.0), (0.0, -124.0), (-144.0, 0.0), (-144.0, -124.0))):
        extra: tuple[tuple[str, float | bool], ...] = (("effort_drift_ml_per_year", drift),) if drift else ()
        label = f"effort drift {drift:+.0f} mL/yr" if drift else "no effort drift"
        grid.append(Scenario(f"E{i + 1}", slope, 150.0, 5.0, 0.3, n, 6000 + i, days, extra, label))
    return grid


EFFORT_OFF = replace(DEFAULT_THRESHOLDS, effort_drift_min_pct_per_year=0.0)


def _effort_job(args: tuple[Scenario, bool]) -> tuple[Scenario, bool, list[PatientResult]]:
    scn, check = args
    return scn, check, run_decline(scn, DEFAULT_THRESHOLDS if check else EFFORT_OFF)


def _wilson(k: int, n: int) -> str:
    if n == 0:
        return ""
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{100 * p:.0f} % ({100 * max(0.0, centre - half):.0f}-{100 * min(1.0, centre + half):.0f})"


def summarize_effort(scn: Scenario, off: list[PatientResult], on: list[PatientResult]) -> list[str]:
    n = len(on)
    end = scn.days + 1

    def by(days: list[int | None], limit: int) -> int:
        return sum(d is not None and d < limit for d in days)

    off_d = [r.product_day for r in off]
    on_d = [r.product_day for r in on]
    review = [r.effort_review_day for r in on]
    either = [
        min((d for d in (a, b) if d is not None), default=None) for a, b in zip(on_d, review, strict=True)
    ]
    eff = [r.final_effort_pct for r in on if r.final_effort_pct is not None]
    return [
        scn.name,
        f"{scn.slope:+.0f}",
        scn.label,
        str(n),
        f"{_fmt_pct(by(off_d, 365) / n)} / {_fmt_pct(by(off_d, 548) / n)} / {_wilson(by(off_d, end), n)}",
        f"{_fmt_pct(by(on_d, 365) / n)} / {_fmt_pct(by(on_d, 548) / n)} / {_wilson(by(on_d, end), n)}",
        _wilson(by(review, end), n),
        _wilson(by(either, end), n),
        f"{np.median(eff):+.1f}" if eff else "",
    ]


EFFORT_HEADER = [
    "scenario",
    "true slope mL/yr",
    "effort",
    "n",
    "confident rapid decline, no effort check: 12 / 18 / 24 mo (95 % CI)",
    "confident rapid decline, effort check (default): 12 / 18 / 24 mo (95 % CI)",
    "effort review alert instead, by 24 mo",
    "either alert by 24 mo",
    "median PEF/FEV1 slope at 24 mo, %/yr",
]


def run_effort(n: int, workers: int) -> str:
    """The effort-drift rows of VALIDATION.md: the same patients with the check off and on."""
    t0 = time.perf_counter()
    jobs = [(scn, check) for scn in effort_grid(n) for check in (False, True)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        done = list(pool.map(_effort_job, jobs))
    res = {(scn.name, check): r for scn, check, r in done}
    rows = [summarize_effort(scn, res[(scn.name, False)], res[(scn.name, True)]) for scn in effort_grid(n)]
    return (
        table(EFFORT_HEADER, rows)
        + f"\n\nRun time {time.perf_counter() - t0:.0f} s, n={n} per row, nightly looks over 24 months"
    )


def summarize_drop(scn: Scenario, hit: list[DropResult], stable: list[DropResult]) -> list[str]:
    n = len(hit)
    py = sum(r.years for r in stable)
    return [
        scn.name,
        f"{scn.noise_sd:.0f}",
        f"{scn.days_per_week:g}/7",
        f"{scn.rho:g}",
        str(n),
        _fmt_pct(sum(r.detected_plain for r in hit) / n),
        f"{sum(r.false_plain for r in stable) / py:.2f}",
        _fmt_pct(sum(r.detected_all for r in hit) / n),
        f"{sum(r.false_all for r in stable) / py:.2f}",
        _fmt_pct(sum(r.detected_mean for r in hit) / n),
        f"{sum(r.false_mean for r in stable) / py:.2f}",
        _fmt_pct(sum(r.detected_clinic for r in hit) / n),
    ]


DROP_HEADER = [
    "scenario",
    "noise SD mL",
    "days/week",
    "AR(1) rho",
    "n",
    "plain 10 % detected <= 3 d",
    "plain 10 % false / pt-yr",
    "'all' detected <= 3 d",
    "'all' false / pt-yr",
    "'mean' detected <= 3 d",
    "'mean' false / pt-yr",
    "clinic detected <= 3 d",
]


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def decline_grid(quick: bool, n: int) -> list[Scenario]:
    slopes: tuple[float, ...] = (-200.0, -144.0, -120.0, -90.0, -60.0, -30.0, 0.0, 12.0, 20.0)
    if quick:
        slopes = (-144.0, -30.0)
    grid = [
        Scenario(f"D{i}", s, 150.0, 5.0, 0.3, n, 1000 + i, days=365 if quick else 730)
        for i, s in enumerate(slopes)
    ]
    if not quick:
        k = 100
        for noise in (100.0, 200.0):
            for s in (-144.0, -30.0):
                grid.append(Scenario(f"N{k}", s, noise, 5.0, 0.3, n // 2, 2000 + k, days=730))
                k += 1
        for dpw in (7.0, 3.0, 1.0):
            for s in (-144.0, -30.0):
                grid.append(Scenario(f"F{k}", s, 150.0, dpw, 0.3, n // 2, 2000 + k, days=730))
                k += 1
        for rho in (0.0, 0.4, 0.6):
            for s in (-144.0, -30.0):
                grid.append(Scenario(f"R{k}", s, 150.0, 5.0, rho, n // 2, 2000 + k, days=730))
                k += 1
    return grid


def drop_grid(quick: bool, n: int) -> list[Scenario]:
    grid = [Scenario("A0", -30.0, 150.0, 5.0, 0.3, n, 5000)]
    if not quick:
        grid += [
            Scenario("A1", -30.0, 100.0, 5.0, 0.3, n // 2, 5001),
            Scenario("A2", -30.0, 150.0, 7.0, 0.3, n // 2, 5002),
            Scenario("A3", -30.0, 150.0, 5.0, 0.0, n // 2, 5003),
            Scenario("A4", -30.0, 200.0, 5.0, 0.3, n // 2, 5004),
        ]
    return grid


def _decline_job(scn: Scenario) -> tuple[Scenario, list[PatientResult]]:
    return scn, run_decline(scn, DEFAULT_THRESHOLDS)


def _drop_job(args: tuple[Scenario, bool]) -> tuple[Scenario, bool, list[DropResult]]:
    scn, with_drop = args
    return scn, with_drop, run_drop(scn, DEFAULT_THRESHOLDS, with_drop)


def run_synthetic(quick: bool, n: int, workers: int, acute_only: bool = False) -> str:
    t0 = time.perf_counter()
    dgrid = [] if acute_only else decline_grid(quick, n)
    xgrid = [] if acute_only else artefact_grid(quick, n)
    agrid = drop_grid(quick, n)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        decline = list(pool.map(_decline_job, dgrid))
        artefacts = list(pool.map(_decline_job, xgrid))
        drop_jobs = [(s, True) for s in agrid] + [(replace(s, seed=s.seed + 77), False) for s in agrid]
        drops = list(pool.map(_drop_job, drop_jobs))
    rows = [summarize_decline(s, r) for s, r in decline]
    hits = {s.name: r for s, w, r in drops if w}
    stables = {s.name: r for s, w, r in drops if not w}
    drop_rows = [summarize_drop(s, hits[s.name], stables[s.name]) for s in agrid]
    elapsed = time.perf_counter() - t0
    decline_text = (
        ""
        if acute_only
        else "## Rapid decline (nightly evaluation from the first home reading)\n\n"
        + table(DECLINE_HEADER, rows)
        + "\n\n## Home-data artefacts (noise 150 mL, 5/7 days, rho 0.3)\n\n"
        + table(ARTEFACT_HEADER, [summarize_artefact(s, r) for s, r in artefacts])
        + "\n\n"
    )
    return (
        decline_text + "## Acute drop (true 15 % drop lasting 3-7 days; false alarms in stable "
        "patients without drops)\n\n"
        + table(DROP_HEADER, drop_rows)
        + f"\n\nRun time {elapsed:.0f} s with {workers} worker(s); "
        f"{'quick' if quick else 'full'} grid, n={n} per main scenario.\n"
    )


# ------------------------------------------------ acute-drop operating points

ACUTE_SWEEP_Z = (0.0, 1.5, 2.0, 2.5, 3.0)
FEV1_BANDS = ((0.0, 1.8, "< 1.8 L"), (1.8, 2.6, "1.8-2.6 L"), (2.6, 99.0, ">= 2.6 L"))


def _acute_sweep_job(args: tuple[Scenario, bool, float]) -> tuple[float, bool, list[DropResult]]:
    scn, with_drop, z = args
    th = replace(DEFAULT_THRESHOLDS, acute_drop_noise_z=z)
    return z, with_drop, run_drop(scn, th, with_drop)


def run_acute_sweep(n: int, workers: int) -> str:
    """Operating points of the personal noise floor (`acute_drop_noise_z`) on the
    default acute-drop scenario, with results by baseline FEV1."""
    t0 = time.perf_counter()
    scn = Scenario("A0", -30.0, 150.0, 5.0, 0.3, n, 5000)
    jobs = [(scn, True, z) for z in ACUTE_SWEEP_Z]
    jobs += [(replace(scn, seed=scn.seed + 77), False, z) for z in ACUTE_SWEEP_Z]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        out = list(pool.map(_acute_sweep_job, jobs))
    hits = {z: r for z, w, r in out if w}
    stables = {z: r for z, w, r in out if not w}
    header = ["noise z", "detected <= 3 d", "detected before the drop ends", "false / pt-yr"]
    for _lo, _hi, name in FEV1_BANDS:
        header += [f"detected <= 3 d, FEV1 {name}", f"false / pt-yr, FEV1 {name}"]
    rows = []
    for z in ACUTE_SWEEP_Z:
        hit, stable = hits[z], stables[z]
        py = sum(r.years for r in stable)
        label = f"{z:g}" + (" (plain 10 %)" if z == 0 else "")
        label += " (default)" if z == DEFAULT_THRESHOLDS.acute_drop_noise_z else ""
        row = [
            label,
            _fmt_pct(sum(r.detected_all for r in hit) / len(hit)),
            _fmt_pct(sum(r.during_all for r in hit) / len(hit)),
            f"{sum(r.false_all for r in stable) / py:.2f}",
        ]
        for lo, hi, _name in FEV1_BANDS:
            h = [r for r in hit if lo <= r.baseline_l < hi]
            st = [r for r in stable if lo <= r.baseline_l < hi]
            row.append(f"{_fmt_pct(sum(r.detected_all for r in h) / len(h))} ({len(h)})" if h else "")
            years = sum(r.years for r in st)
            row.append(f"{sum(r.false_all for r in st) / years:.2f} ({len(st)})" if st else "")
        rows.append(row)
    elapsed = time.perf_counter() - t0
    return (
        "## Acute drop: operating points of the personal noise floor (noise 150 mL, 5/7 days, "
        f"rho 0.3, n={n} with a 15 % drop and n={n} stable; patients per band in brackets)\n\n"
        + table(header, rows)
        + f"\n\nRun time {elapsed:.0f} s with {workers} worker(s).\n"
    )


# ------------------------------------------------------------ CI honesty


def _precision_job(args: tuple[float, float, int, int]) -> list[str]:
    noise, rho, n, seed = args
    truth = -90.0
    cfg = CohortConfig(
        n_patients=n,
        days=365,
        seed=seed,
        noise_sd_ml=noise,
        ar1_rho=rho,
        true_slope_ml_per_year=truth,
        treatment_start_p=0.0,
    )
    est, se, cover, naive_cover, ols_est = [], [], 0, 0, []
    for arrays, _ in simulate_fev1_cohort(cfg):
        s = _series(arrays.day, arrays.fev1_l, arrays.grade, arrays.device, DEFAULT_THRESHOLDS)
        e = robust_slope(s.day, s.fev1_l, s.device)
        if e is None:
            continue
        est.append(e.slope_ml_per_year)
        se.append(e.se_ml_per_year)
        cover += e.ci_low <= truth <= e.ci_high
        t = s.day.astype(np.float64)
        b = ols_slope(t, s.fev1_l)
        assert b is not None
        tc = t - t.mean()
        resid = s.fev1_l - s.fev1_l.mean() - b * tc
        naive_se = float(np.sqrt(resid @ resid / (t.size - 2) / (tc @ tc)))
        ols_est.append(b * ML_PER_YEAR_PER_L_PER_DAY)
        naive_cover += abs(b * ML_PER_YEAR_PER_L_PER_DAY - truth) <= (
            1.96 * naive_se * ML_PER_YEAR_PER_L_PER_DAY
        )
    m = len(est)
    return [
        f"{noise:.0f}",
        f"{rho:g}",
        str(m),
        f"{np.mean(est):.0f}",
        f"{np.std(est):.0f}",
        f"{np.mean(se):.0f}",
        _fmt_pct(cover / m),
        f"{np.std(ols_est):.0f}",
        _fmt_pct(naive_cover / m),
    ]


def run_precision(n: int, workers: int) -> str:
    jobs = [
        (150.0, 0.0, n, 7100),
        (150.0, 0.3, n, 7101),
        (150.0, 0.6, n, 7102),
        (100.0, 0.3, n, 7103),
        (200.0, 0.3, n, 7104),
    ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(_precision_job, jobs))
    header = [
        "noise SD mL",
        "AR(1) rho",
        "n",
        "mean robust slope",
        "SD of robust slope",
        "mean reported SE",
        "robust 95 % CI coverage",
        "SD of OLS slope",
        "naive OLS 95 % CI coverage",
    ]
    return (
        "## Slope precision and CI honesty after 12 months (true slope -90 mL/yr, "
        "5/7 days)\n\n" + table(header, rows) + "\n"
    )


# ------------------------------------------------------------ operating points

SWEEP: tuple[tuple[str, dict[str, float | int]], ...] = (
    ("95 % bound < 0", {"rapid_decline_confidence": 0.95}),
    ("99 % bound < 0 (default)", {}),
    ("99.5 % bound < 0", {"rapid_decline_confidence": 0.995}),
    (
        "90 % bound < -30",
        {"rapid_decline_confidence": 0.90, "rapid_decline_ci_high_below_ml_per_year": -30.0},
    ),
    (
        "95 % bound < -30",
        {"rapid_decline_confidence": 0.95, "rapid_decline_ci_high_below_ml_per_year": -30.0},
    ),
    (
        "95 % bound < 0, confirmed 14 d earlier",
        {"rapid_decline_confidence": 0.95, "rapid_decline_confirm_days": 14},
    ),
    (
        "97.5 % bound < 0, confirmed 14 d earlier",
        {"rapid_decline_confidence": 0.975, "rapid_decline_confirm_days": 14},
    ),
)


OLS_SWEEP = ("OLS slope, no interval (comparator)", "OLS, textbook 99 % bound < 0")


def _sweep_job(args: tuple[str, dict[str, float | int], float, int]) -> tuple[str, float, list[int | None]]:
    label, override, slope, n = args
    th = DEFAULT_THRESHOLDS.merged(override)
    scn = Scenario("S", slope, 150.0, 5.0, 0.3, n, 7 if slope < -100 else 8)
    if label not in OLS_SWEEP:
        return label, slope, [r.product_day for r in run_decline(scn, th)]
    z99 = 2.576
    cfg = CohortConfig(
        n_patients=n,
        days=365,
        seed=scn.seed,
        days_per_week=5.0,
        noise_sd_ml=150.0,
        ar1_rho=0.3,
        true_slope_ml_per_year=slope,
        treatment_start_p=0.0,
    )
    days: list[int | None] = []
    for arrays, _ in simulate_fev1_cohort(cfg):
        s = _series(arrays.day, arrays.fev1_l, arrays.grade, arrays.device, th)
        if label == OLS_SWEEP[0]:
            f = fev1_first_flags(
                s,
                0,
                364,
                th,
                acute=False,
                slope_fn=_ols_estimate,
                decide=lambda e: e is not None and e.slope_ml_per_year <= th.rapid_decline_ml_per_year,
            )
        else:
            f = fev1_first_flags(
                s,
                0,
                364,
                th,
                acute=False,
                slope_fn=_ols_naive_estimate,
                decide=lambda e: (
                    e is not None
                    and e.slope_ml_per_year <= th.rapid_decline_ml_per_year
                    and e.slope_ml_per_year + z99 * e.se_ml_per_year < 0
                ),
            )
        days.append(f.rapid_decline_day)
    return label, slope, days


def run_sweep(n: int, workers: int) -> str:
    sweep = (*SWEEP, *((label, {}) for label in OLS_SWEEP))
    jobs = [(label, o, s, n) for label, o in sweep for s in (-144.0, -30.0)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        res = list(pool.map(_sweep_job, jobs))
    by = {(label, slope): days for label, slope, days in res}
    rows = []
    for label, _ in sweep:
        hit, fa = by[(label, -144.0)], by[(label, -30.0)]
        rows.append(
            [
                label,
                _fmt_pct(sum(d is not None for d in hit) / len(hit)),
                _median_months(hit, len(hit)),
                _fmt_pct(sum(d is not None for d in fa) / len(fa)),
            ]
        )
    return (
        "## Operating points of the rapid-decline rule (noise 150 mL, 5/7 days, rho 0.3, "
        f"n={n} per cell, 12 months)\n\n"
        + table(
            [
                "decision rule (point estimate <= -90 mL/yr and ...)",
                "-144 mL/yr flagged",
                "median mo",
                "-30 mL/yr flagged",
            ],
            rows,
        )
        + "\n"
    )


# ------------------------------------------------------------ external cohort


@dataclass(frozen=True)
class ExternalResult:
    patient_id: str
    true_slope: float | None
    product_day: int | None
    ols_day: int | None
    clinic_day: int | None
    drop_start: int | None
    drop_detected: bool
    false_drops: int
    years: float


def _parse_day(text: str) -> int:
    text = text.strip()
    if len(text) == 10:
        return date.fromisoformat(text).toordinal()
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date().toordinal()


def run_external(cohort: Path, truth_path: Path | None, thresholds: Thresholds) -> str:
    rows: dict[str, list[tuple[int, float, str, str]]] = defaultdict(list)
    with cohort.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            rows[rec["patient_id"]].append(
                (
                    _parse_day(rec["measured_at"]),
                    float(rec["fev1_l"]),
                    (rec.get("grade") or "").strip().upper(),
                    (rec.get("setting") or "home").strip().lower(),
                )
            )
    truth: dict[str, dict[str, str]] = {}
    if truth_path is not None:
        with truth_path.open(newline="") as fh:
            truth = {r["patient_id"]: r for r in csv.DictReader(fh)}
    results = []
    for pid, recs in sorted(rows.items()):
        home = [r for r in recs if r[3] == "home"]
        clinic = sorted((r for r in recs if r[3] == "clinic"), key=lambda r: r[0])
        if not home:
            continue
        day = np.array([r[0] for r in home], np.int64)
        first = int(day.min())
        day = day - first
        fev1 = np.array([r[1] for r in home])
        grade = np.array([r[2] for r in home])
        s = _series(day, fev1, grade, np.zeros(day.size, np.int64), thresholds)
        last = int(day.max())
        f = fev1_first_flags(s, 0, last, thresholds, acute=True)
        ols = fev1_first_flags(
            s,
            0,
            last,
            thresholds,
            acute=False,
            slope_fn=_ols_estimate,
            decide=lambda e: e is not None and e.slope_ml_per_year <= thresholds.rapid_decline_ml_per_year,
        )
        cday = np.array([r[0] - first for r in clinic], np.int64)
        cval = np.array([r[1] for r in clinic])
        cflag = clinic_first_flag(cday, cval, last, thresholds) if cday.size else None
        t = truth.get(pid, {})
        slope = float(t["true_slope_ml_per_year"]) if t.get("true_slope_ml_per_year") else None
        drop0 = _parse_day(t["drop_start"]) - first if t.get("drop_start") else None
        drop1 = _parse_day(t["drop_end"]) - first if t.get("drop_end") else None
        drop_hit = None
        false_drops = 0
        for night, onset in zip(f.acute_drop_days, f.acute_drop_onsets, strict=True):
            if drop0 is not None and drop1 is not None and drop0 - 3 <= onset <= drop1 + 2:
                drop_hit = drop_hit or (drop0 <= night <= drop0 + 2)
            else:
                false_drops += 1
        results.append(
            ExternalResult(
                pid,
                slope,
                f.rapid_decline_day,
                ols.rapid_decline_day,
                cflag,
                drop0,
                bool(drop_hit),
                false_drops,
                (last + 1) / 365.25,
            )
        )

    def in_bin(name: str, x: float | None) -> bool:
        if x is None:
            return name == "unknown"
        return {
            "<= -144": x <= -144.0,
            "-144 to -90": -144.0 < x <= -90.0,
            "-90 to -30": -90.0 < x < -30.0,
            ">= -30": x >= -30.0,
        }.get(name, False)

    out_rows = []
    for name in ("<= -144", "-144 to -90", "-90 to -30", ">= -30", "unknown"):
        sel = [r for r in results if in_bin(name, r.true_slope)]
        if not sel:
            continue
        n = len(sel)
        row = [name, str(n)]
        for days in ([r.product_day for r in sel], [r.ols_day for r in sel], [r.clinic_day for r in sel]):
            row += [_fmt_pct(sum(d is not None for d in days) / n), _median_months(days, n)]
        out_rows.append(row)
    header = [
        "true slope bin",
        "n",
        "product flagged",
        "product median mo",
        "OLS flagged",
        "OLS median mo",
        "clinic flagged",
        "clinic median mo",
    ]
    with_drop = [r for r in results if r.drop_start is not None]
    years = sum(r.years for r in results)
    text = f"## External cohort {cohort.name}: {len(results)} patients\n\n"
    text += table(header, out_rows) + "\n\n"
    if with_drop:
        text += (
            f"Acute drops detected within 3 days: "
            f"{_fmt_pct(sum(r.drop_detected for r in with_drop) / len(with_drop))} of "
            f"{len(with_drop)}.\n"
        )
    text += (
        f"Acute-drop alerts outside true drops: {sum(r.false_drops for r in results) / years:.2f} "
        f"per patient-year.\n"
    )
    return text


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small grid for CI (< 60 s)")
    ap.add_argument("-n", type=int, default=None, help="patients per main scenario")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--cohort", type=Path, help="external readings CSV")
    ap.add_argument("--truth", type=Path, help="external truth CSV")
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file")
    ap.add_argument(
        "--sweep", action="store_true", help="compare operating points of the rapid-decline rule instead"
    )
    ap.add_argument(
        "--precision", action="store_true", help="slope precision and confidence-interval coverage instead"
    )
    ap.add_argument(
        "--acute", action="store_true", help="only the acute-drop grid (product rule vs plain 10 %% rule)"
    )
    ap.add_argument(
        "--acute-sweep", action="store_true", help="operating points of the acute-drop noise floor instead"
    )
    ap.add_argument(
        "--effort",
        action="store_true",
        help="effort-drift rows: true 0 and -144 mL/yr with and without effort drift, check off and on",
    )
    args = ap.parse_args(argv)
    if args.cohort is not None:
        text = run_external(args.cohort, args.truth, DEFAULT_THRESHOLDS)
    elif args.acute_sweep:
        text = run_acute_sweep(args.n or 400, args.workers)
    elif args.sweep:
        text = run_sweep(args.n or 200, args.workers)
    elif args.precision:
        text = run_precision(args.n or 300, args.workers)
    elif args.effort:
        text = run_effort(args.n or 200, args.workers)
    else:
        n = args.n or (20 if args.quick else 200)
        text = run_synthetic(args.quick, n, args.workers, acute_only=args.acute)
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
