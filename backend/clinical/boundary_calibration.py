"""Calibration of the rapid-decline boundary for nightly looks (VALIDATION.md).

The rule's boundary (`rapid_decline_confidence`, `rapid_decline_early_exponent`,
`rapid_decline_late_exponent`, the pivot `rapid_decline_early_until_days` and
the margin `rapid_decline_ci_high_below_ml_per_year`) only changes how a night's
slope estimate is judged, not the estimate. So the estimates of every night are
computed once per simulated patient (`record`), with the production estimator,
and any candidate boundary is then applied to all of them at once
(`first_flag_days`), with the production's arithmetic: Student's t on
floor(effective n) - 2 degrees of freedom, the recent-drop check (its estimate
replaces the first when it clears the verdict), and the effort-drift hold.
`first_flag_days` with the product's thresholds gives exactly the first flag
night of `replay.fev1_first_flags` (checked by `tests/clinical/test_boundary_calibration.py`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from backend.clinical.detection_report import patient_series
from backend.clinical.simulation import CohortConfig, simulate_fev1_cohort
from backend.clinical.thresholds import Thresholds
from backend.clinical.trend import (
    effort_drift,
    recent_drop_estimate,
    robust_slope,
    withhold_rapid_decline,
)

# columns of a recording: one row per patient-night with a new reading day
PID, DAY, SPAN, N, SLOPE, SE, NEFF, ALT_SLOPE, ALT_SE, ALT_NEFF, WITHHELD = range(11)


@dataclass(frozen=True)
class Recording:
    """Every nightly estimate of one simulated cohort."""

    n_patients: int
    rows: np.ndarray  # float64, columns as above


def record(
    cfg: CohortConfig,
    thresholds: Thresholds,
    last_day: int,
) -> Recording:
    """Nightly estimates (first look to `last_day`) of every patient of `cfg`.

    Each patient's series is the validation's (`patient_series`). The recent-drop estimate
    is recorded on every night (NaN when no recent drop is found), so a
    candidate boundary decides whether it clears the verdict; the effort-drift
    hold is recorded on nights whose slope is at or below the -90 mL/yr cut.
    Nights without a new reading repeat the previous verdict, so only reading
    nights are recorded; the follow-up must fit the trend window (the window's
    start then never moves).
    """
    if last_day >= thresholds.trend_window_days:
        raise ValueError("the follow-up must be shorter than trend_window_days")
    shift = (thresholds.level_shift_min_ml, thresholds.level_shift_z, thresholds.level_shift_min_days)
    use_shift = thresholds.level_shift_min_ml > 0
    use_recent = use_shift and thresholds.level_shift_recent_days > 0
    rows: list[tuple[float, ...]] = []
    for pid, (arrays, _truth) in enumerate(simulate_fev1_cohort(cfg)):
        s = patient_series(arrays, thresholds)
        for hi in range(1, len(s.day) + 1):
            d = int(s.day[hi - 1])
            if d > last_day:
                break
            day, y, dev = s.day[:hi], s.fev1_l[:hi], s.device[:hi]
            if hi < thresholds.trend_min_readings or day[-1] - day[0] < thresholds.trend_min_span_days:
                continue
            est = robust_slope(
                day,
                y,
                dev,
                confidence=thresholds.trend_confidence,
                outlier_z=thresholds.outlier_robust_z,
                level_shift=shift if use_shift else None,
            )
            if est is None:
                continue
            alt = recent_drop_estimate(day, y, dev, thresholds, shift) if use_recent else None
            withheld = 0.0
            low = min(est.slope_ml_per_year, np.inf if alt is None else alt.slope_ml_per_year)
            if s.effort is not None and low <= thresholds.rapid_decline_ml_per_year:
                withheld = float(withhold_rapid_decline(effort_drift(day, s.effort[:hi], dev, thresholds)))
            nan = float("nan")
            rows.append(
                (
                    pid,
                    d,
                    est.span_days,
                    est.n_readings,
                    est.slope_ml_per_year,
                    est.se_ml_per_year,
                    est.effective_n,
                    nan if alt is None else alt.slope_ml_per_year,
                    nan if alt is None else alt.se_ml_per_year,
                    nan if alt is None else alt.effective_n,
                    withheld,
                )
            )
    return Recording(cfg.n_patients, np.asarray(rows, dtype=np.float64).reshape(-1, 11))


def _rapid(
    slope: np.ndarray, se: np.ndarray, neff: np.ndarray, span: np.ndarray, t: Thresholds
) -> np.ndarray:
    """`trend.verdict(...) == 'rapid_decline'`, vectorised over nights."""
    df = np.maximum(1.0, np.floor(neff) - 2.0)
    dfs, at = np.unique(df, return_inverse=True)  # a few hundred distinct degrees of freedom
    q = stats.t.ppf(0.5 + round(t.rapid_decline_confidence, 6) / 2.0, dfs)[at]  # as trend._t_quantile
    pivot = float(t.rapid_decline_early_until_days)
    sp = np.maximum(span, 1.0)
    mult = np.where(
        sp < pivot,
        (pivot / sp) ** t.rapid_decline_early_exponent,
        (sp / pivot) ** t.rapid_decline_late_exponent,
    )
    bound = slope + q * se * mult
    finite = np.isfinite(se)
    out: np.ndarray = (
        finite & (slope <= t.rapid_decline_ml_per_year) & (bound < t.rapid_decline_ci_high_below_ml_per_year)
    )
    return out


def first_flag_days(rec: Recording, t: Thresholds) -> np.ndarray:
    """First night each patient is flagged under `t` (inf: never)."""
    r = rec.rows
    ok = (r[:, N] >= t.trend_min_readings) & (r[:, SPAN] >= t.trend_min_span_days)
    flag = ok & _rapid(r[:, SLOPE], r[:, SE], r[:, NEFF], r[:, SPAN], t)
    has_alt = ~np.isnan(r[:, ALT_SLOPE])
    alt_rapid = _rapid(
        np.nan_to_num(r[:, ALT_SLOPE]),
        np.nan_to_num(r[:, ALT_SE], nan=np.inf),
        np.nan_to_num(r[:, ALT_NEFF]),
        r[:, SPAN],
        t,
    )
    flag &= ~(has_alt & ~alt_rapid)  # the recent drop clears the verdict
    flag &= r[:, WITHHELD] == 0
    first = np.full(rec.n_patients, np.inf)
    np.minimum.at(first, r[flag, PID].astype(np.int64), r[flag, DAY])
    return first


NINE_MONTHS = 273  # the last night of month 9


def share_by(first: np.ndarray, day: int) -> float:
    return float(np.mean(first <= day))


@dataclass(frozen=True)
class Candidate:
    confidence: float
    early_exponent: float
    late_exponent: float
    pivot_days: int

    def thresholds(self, base: Thresholds) -> Thresholds:
        return base.merged(
            {
                "rapid_decline_confidence": self.confidence,
                "rapid_decline_early_exponent": self.early_exponent,
                "rapid_decline_late_exponent": self.late_exponent,
                "rapid_decline_early_until_days": self.pivot_days,
            }
        )

    @classmethod
    def of(cls, t: Thresholds) -> Candidate:
        return cls(
            t.rapid_decline_confidence,
            t.rapid_decline_early_exponent,
            t.rapid_decline_late_exponent,
            t.rapid_decline_early_until_days,
        )


@dataclass(frozen=True)
class Operating:
    candidate: Candidate
    decline_12: float  # share of the decline cohort flagged by 12 months
    decline_18: float
    decline_24: float
    decline_median_months: float  # among those flagged by 12 months
    null_12: float  # share of the null (margin) cohort flagged by 12 months
    null_ever: float  # ... over the whole follow-up
    others_ever: tuple[float, ...]  # the other stable cohorts, ever flagged
    fast_9: float = float("nan")  # share of the fast-decline cohort flagged by 9 months


def evaluate(
    candidates: Iterable[Candidate],
    base: Thresholds,
    decline: Recording,
    null: Recording,
    others: Sequence[Recording] = (),
    fast: Recording | None = None,
) -> list[Operating]:
    """Operating characteristics of each candidate; `fast` (e.g. -200 mL/yr) measures early detection."""
    out = []
    for c in candidates:
        t = c.thresholds(base)
        f = first_flag_days(decline, t)
        g = first_flag_days(null, t)
        early = f[f <= 364]
        out.append(
            Operating(
                c,
                share_by(f, 364),
                share_by(f, 547),
                share_by(f, 729),
                float(np.median(early) / 30.44) if early.size else float("nan"),
                share_by(g, 364),
                share_by(g, 729),
                tuple(share_by(first_flag_days(o, t), 729) for o in others),
                float("nan") if fast is None else share_by(first_flag_days(fast, t), NINE_MONTHS),
            )
        )
    return out


def grid(
    confidences: Sequence[float], early: Sequence[float], late: Sequence[float], pivots: Sequence[int]
) -> list[Candidate]:
    return [Candidate(c, e, lt, p) for c, e, lt, p in itertools.product(confidences, early, late, pivots)]


def best(
    ops: Sequence[Operating], *, max_false: float, min_decline_18: float, min_fast_9: float = 0.0
) -> list[Operating]:
    """Operating points within the false-flag budget (null and others), best 12-month share first.

    `min_fast_9` keeps early detection of fast declines: without it the search
    prefers boundaries so wide before the pivot that no one is flagged before
    about 10 months, which buys 12-month sensitivity at -144 mL/yr with the
    9-month detection of -200 mL/yr patients.
    """
    ok = [
        o
        for o in ops
        if o.null_ever <= max_false + 1e-9
        and all(x <= max_false + 1e-9 for x in o.others_ever)
        and o.decline_18 >= min_decline_18 - 1e-9
        and not o.fast_9 < min_fast_9 - 1e-9  # nan (no fast cohort) passes
    ]
    return sorted(ok, key=lambda o: (-o.decline_12, o.null_ever))


def last_nights(rec: Recording, day: int) -> np.ndarray:
    """The row of each patient's last recorded night up to `day` (patients without one: none)."""
    r = rec.rows[rec.rows[:, DAY] <= day]
    pid = r[:, PID].astype(np.int64)  # rows are in night order per patient
    out: np.ndarray = r[np.flatnonzero(np.r_[pid[1:] != pid[:-1], True])] if r.size else r
    return out


def one_look_share(rec: Recording, day: int, t: Thresholds, one_sided_alpha: float = 0.05) -> float:
    """Share flagged by a single look on `day` with the product's estimator (no repeated looks).

    The night's slope must be at or below the -90 mL/yr cut and its one-sided
    (1 - alpha) upper bound below the margin: the one-look limit of this
    estimator on data with its artefacts, beside `detection_report.one_look_limit`
    (least squares on the clean design).
    """
    r = last_nights(rec, day)
    z = float(stats.norm.ppf(1.0 - one_sided_alpha))
    hit = (r[:, SLOPE] <= t.rapid_decline_ml_per_year) & (
        r[:, SLOPE] + z * r[:, SE] < t.rapid_decline_ci_high_below_ml_per_year
    )
    return float(hit.sum()) / rec.n_patients
