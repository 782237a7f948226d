"""The batch hot path must give the per-patient estimator's answers."""

from __future__ import annotations

import numpy as np
import pytest

from backend.clinical.batch import batch_trends
from backend.clinical.thresholds import DEFAULT_THRESHOLDS
from backend.clinical.trend import robust_slope, verdict

T = DEFAULT_THRESHOLDS


def _cohort(n_patients: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ps, ts, ys, ds = [], [], [], []
    for k in range(n_patients):
        n = int(rng.integers(5, 300))
        t = np.sort(rng.choice(365, n, replace=False)).astype(float)
        y = 2.4 + rng.normal(-100, 80) / 365250 * t + rng.normal(0, 0.15, n)
        y[rng.random(n) < 0.03] -= 0.8
        dev = (t > rng.integers(0, 400)).astype(np.int64)
        ps.append(np.full(n, k))
        ts.append(t)
        ys.append(y)
        ds.append(dev)
    return (np.concatenate(ps), np.concatenate(ts), np.concatenate(ys), np.concatenate(ds))


def test_batch_matches_per_patient_estimator() -> None:
    p, t, y, d = _cohort(40, 1)
    perm = np.random.default_rng(2).permutation(p.size)
    res = batch_trends(p[perm], t[perm], y[perm], T, device=d[perm])
    for k in range(40):
        m = p == k
        e = robust_slope(t[m], y[m], d[m])
        assert e is not None
        assert res.slope_ml_per_year[k] == pytest.approx(e.slope_ml_per_year, abs=1e-3)
        assert res.n_readings[k] == e.n_readings
        assert res.n_outliers[k] == e.n_outliers
        if np.isfinite(e.ci_high):
            assert res.ci_high[k] == pytest.approx(e.ci_high, abs=1e-2)
            assert res.lag1_autocorrelation[k] == pytest.approx(e.lag1_autocorrelation, abs=1e-6)
        assert res.verdict[k] == verdict(e, T)


def test_batch_rejects_repeated_patient_days() -> None:
    with pytest.raises(ValueError, match="one row per patient and day"):
        batch_trends([0, 0], [1.0, 1.0], [2.0, 2.1], T)
