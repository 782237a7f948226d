"""Trends for many patients at once: the nightly pass's hot path.

`batch_trends` fits the same estimator as `trend.robust_slope` (Huber slope with
one intercept per device, AR(1)-adjusted interval) for every patient in one set
of flat arrays, with no per-patient or per-point Python loop: each IRLS step is
five `np.bincount` calls over all readings plus sums per patient-device cell.
Measured on a shared 2-core machine: 10,000 patients x a year of readings on 5
of 7 days (2.6 M points) in 2.9 s, against 1.5 s for a least-squares
`GROUP BY patient` in SQLite over the same rows.

Input rows are one value per patient and day (already aggregated and windowed,
e.g. by SQL; a repeated patient-day raises ValueError); row order does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from backend.clinical.thresholds import Thresholds
from backend.clinical.trend import (
    HUBER_EFFICIENCY,
    HUBER_K,
    MAX_RHO,
    ML_PER_YEAR_PER_L_PER_DAY,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

VERDICTS = ("insufficient_data", "rapid_decline", "declining", "improving", "stable")


@dataclass(frozen=True, slots=True)
class BatchTrends:
    """One entry per patient code 0..n_patients-1 (NaN where no estimate)."""

    slope_ml_per_year: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    se_ml_per_year: FloatArray
    n_readings: IntArray
    span_days: FloatArray
    lag1_autocorrelation: FloatArray
    effective_n: FloatArray
    n_outliers: IntArray
    verdict: npt.NDArray[np.str_]


def _group_median(group: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Median of `values` per group code, with one quicksort of a combined key
    (group + value scaled into [0, 0.5)); lexsort is many times slower."""
    out = np.full(n_groups, np.nan)
    if values.size == 0:
        return out
    lo_v, hi_v = float(values.min()), float(values.max())
    width = hi_v - lo_v
    scaled = (values - lo_v) / width * 0.5 if width > 0 else np.zeros(values.size)
    order = np.argsort(group + scaled)
    g = group[order]
    v = values[order]
    counts = np.bincount(g, minlength=n_groups)
    start = np.concatenate(([0], np.cumsum(counts)[:-1]))
    has = counts > 0
    lo = start[has] + (counts[has] - 1) // 2
    hi = start[has] + counts[has] // 2
    out[has] = 0.5 * (v[lo] + v[hi])
    return out


def _cell_mean(cell: IntArray, w: FloatArray, x: FloatArray, n_cells: int) -> FloatArray:
    sw = np.bincount(cell, weights=w, minlength=n_cells)
    sx = np.bincount(cell, weights=w * x, minlength=n_cells)
    out: FloatArray = np.divide(sx, sw, out=np.zeros(n_cells), where=sw > 0)
    return out


def batch_trends(
    patient: npt.ArrayLike,
    t_days: npt.ArrayLike,
    fev1_l: npt.ArrayLike,
    thresholds: Thresholds,
    *,
    device: npt.ArrayLike | None = None,
    n_patients: int | None = None,
    iterations: int = 30,
) -> BatchTrends:
    """Robust slope, interval and verdict for every patient code."""
    p = np.asarray(patient, np.int64)
    t = np.asarray(t_days, np.float64)
    y = np.asarray(fev1_l, np.float64)
    d = np.zeros(p.size, np.int64) if device is None else np.asarray(device, np.int64)
    n_p = int(p.max()) + 1 if n_patients is None else n_patients
    if p.size:
        t0 = float(t.min())
        order = np.argsort(p * (float(t.max()) - t0 + 1.0) + (t - t0))
        p, t, y, d = p[order], t[order], y[order], d[order]
        if bool(np.any((p[1:] == p[:-1]) & (t[1:] == t[:-1]))):
            raise ValueError("batch_trends needs one row per patient and day")
    cell_key = p * (int(d.max()) + 1 if d.size else 1) + d
    _, cell = np.unique(cell_key, return_inverse=True)
    cell = cell.astype(np.int64)
    n_c = int(cell.max()) + 1 if cell.size else 0
    cell_patient = np.zeros(n_c, np.int64)
    cell_patient[cell] = p

    ones = np.ones(p.size)
    tc = t - _cell_mean(cell, ones, t, n_c)[cell]
    yc = y - _cell_mean(cell, ones, y, n_c)[cell]
    sxx = np.bincount(p, weights=tc * tc, minlength=n_p)
    sxy = np.bincount(p, weights=tc * yc, minlength=n_p)
    valid = sxx > 0
    b = np.divide(sxy, sxx, out=np.zeros(n_p), where=valid)
    resid = yc - b[p] * tc
    scale = 1.4826 * _group_median(p, np.abs(resid), n_p)
    active = valid & (np.nan_to_num(scale) > 0)
    for it in range(iterations):
        # weights: 1 inside k*scale, k*scale/|r| outside; 1 for patients without a fit
        ks = np.where(active, HUBER_K * scale, np.inf)[p]
        w = np.minimum(1.0, ks / np.maximum(np.abs(resid), 1e-300))
        wt = w * tc
        wy = w * yc
        sw = np.bincount(cell, weights=w, minlength=n_c)
        st = np.bincount(cell, weights=wt, minlength=n_c)
        sy = np.bincount(cell, weights=wy, minlength=n_c)
        stt = np.bincount(cell, weights=wt * tc, minlength=n_c)
        sty = np.bincount(cell, weights=wt * yc, minlength=n_c)
        sxx_w = np.bincount(cell_patient, weights=stt - st * st / sw, minlength=n_p)
        sxy_w = np.bincount(cell_patient, weights=sty - st * sy / sw, minlength=n_p)
        b_new = np.divide(sxy_w, sxx_w, out=b.copy(), where=active & (sxx_w > 0))
        level = (sy - b_new[cell_patient] * st) / sw
        resid = yc - b_new[p] * tc - level[cell]
        if it == 0:
            new_scale = 1.4826 * _group_median(p, np.abs(resid), n_p)
            scale = np.where(active, np.maximum(new_scale, 1e-12), scale)
        done = np.abs(b_new - b) <= 1e-8 * np.maximum(1e-3, np.abs(b))
        b = b_new
        if it > 0 and bool(np.all(done | ~active)):
            break

    med = _group_median(p, resid, n_p)
    mad = _group_median(p, np.abs(resid - med[p]), n_p)
    robust_sd = 1.4826 * mad
    limit = thresholds.outlier_robust_z * robust_sd[p]
    inlier = np.where(robust_sd[p] > 0, np.abs(resid) <= limit, True)
    n_all = np.bincount(p, minlength=n_p)
    n_in = np.bincount(p, weights=inlier.astype(np.float64), minlength=n_p)
    pi, ti, ri, ci = p[inlier], t[inlier], resid[inlier], cell[inlier]
    ss = np.bincount(pi, weights=ri * ri, minlength=n_p)
    same = pi[1:] == pi[:-1]
    lag = np.bincount(pi[1:][same], weights=(ri[1:] * ri[:-1])[same], minlength=n_p)
    rho = np.divide(lag, ss, out=np.zeros(n_p), where=(ss > 0) & (n_in >= 3))
    rho = np.clip(rho, 0.0, MAX_RHO)
    n_eff = n_in * (1.0 - rho) / (1.0 + rho)
    cells_in = np.bincount(cell_patient[np.unique(ci)], minlength=n_p) if ci.size else np.zeros(n_p, np.int64)
    tci = ti - _cell_mean(ci, np.ones(ti.size), ti, n_c)[ci]
    sxx_in = np.bincount(pi, weights=tci * tci, minlength=n_p)
    df_resid = n_in - 1 - cells_in
    ok = valid & (sxx_in > 0) & (df_resid >= 1)
    s2 = np.divide(ss, df_resid, out=np.full(n_p, np.nan), where=ok)
    var_b = np.divide(s2, sxx_in, out=np.full(n_p, np.nan), where=ok)
    var_b = var_b * (1.0 + rho) / (1.0 - rho) / HUBER_EFFICIENCY
    se = np.sqrt(var_b) * ML_PER_YEAR_PER_L_PER_DAY
    df = np.maximum(1, np.floor(n_eff) - 1 - cells_in)
    q = stats.t.ppf(0.5 + thresholds.trend_confidence / 2.0, df)
    slope = np.where(valid, b * ML_PER_YEAR_PER_L_PER_DAY, np.nan)
    half = q * se
    first = np.concatenate(([0], np.cumsum(n_all)[:-1]))
    last = np.maximum(first + n_all - 1, 0)
    span = (
        np.where(
            n_all > 0, t[np.minimum(last, max(t.size - 1, 0))] - t[first.clip(0, max(t.size - 1, 0))], 0.0
        )
        if t.size
        else np.zeros(n_p)
    )

    q_dec = stats.t.ppf(0.5 + thresholds.rapid_decline_confidence / 2.0, np.maximum(1, np.floor(n_eff) - 2))
    upper_dec = slope + q_dec * se
    verdict = np.full(n_p, "stable", dtype="<U17")
    ci_low, ci_high = slope - half, slope + half
    verdict[ci_low > 0] = "improving"
    verdict[ci_high < 0] = "declining"
    rapid = (slope <= thresholds.rapid_decline_ml_per_year) & (
        upper_dec < thresholds.rapid_decline_ci_high_below_ml_per_year
    )
    verdict[rapid] = "rapid_decline"
    insufficient = ~ok | (n_all < thresholds.trend_min_readings) | (span < thresholds.trend_min_span_days)
    verdict[insufficient] = "insufficient_data"
    return BatchTrends(
        slope_ml_per_year=slope,
        ci_low=np.where(ok, ci_low, np.nan),
        ci_high=np.where(ok, ci_high, np.nan),
        se_ml_per_year=np.where(ok, se, np.nan),
        n_readings=n_all.astype(np.int64),
        span_days=span,
        lag1_autocorrelation=rho,
        effective_n=n_eff,
        n_outliers=(n_all - n_in).astype(np.int64),
        verdict=verdict,
    )
