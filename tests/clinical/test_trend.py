"""Estimator properties, CI honesty under autocorrelation, verdicts, speed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.clinical.model import SlopeEstimate
from backend.clinical.thresholds import DEFAULT_THRESHOLDS
from backend.clinical.trend import ols_slope, robust_slope, theil_sen, verdict

ML = 365250.0

noise_lists = st.lists(st.floats(-0.3, 0.3, allow_nan=False), min_size=8, max_size=60)


def _series(noise: list[float], slope_ml: float = -100.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(len(noise), dtype=float) * 3.0
    y = 2.5 + slope_ml / ML * t + np.asarray(noise)
    return t, y


@pytest.mark.parametrize("method", ["huber", "theil_sen"])
@settings(max_examples=60, deadline=None)
@given(noise=noise_lists, seed=st.integers(0, 10_000))
def test_order_of_input_is_irrelevant(method: str, noise: list[float], seed: int) -> None:
    t, y = _series(noise)
    perm = np.random.default_rng(seed).permutation(t.size)
    a = robust_slope(t, y, method=method)
    b = robust_slope(t[perm], y[perm], method=method)
    assert a is not None and b is not None
    assert b.slope_ml_per_year == pytest.approx(a.slope_ml_per_year, abs=1e-6)
    assert b.ci_high == pytest.approx(a.ci_high, abs=1e-6)


@pytest.mark.parametrize("method", ["huber", "theil_sen"])
@settings(max_examples=60, deadline=None)
@given(noise=noise_lists, picks=st.lists(st.integers(0, 7), min_size=1, max_size=8))
def test_exact_duplicates_are_ignored(method: str, noise: list[float], picks: list[int]) -> None:
    t, y = _series(noise)
    t2 = np.concatenate((t, t[picks]))
    y2 = np.concatenate((y, y[picks]))
    a = robust_slope(t, y, method=method)
    b = robust_slope(t2, y2, method=method)
    assert a is not None and b is not None
    assert b.slope_ml_per_year == pytest.approx(a.slope_ml_per_year, abs=1e-6)
    assert b.n_readings == a.n_readings


@pytest.mark.parametrize("method", ["huber", "theil_sen"])
@settings(max_examples=60, deadline=None)
@given(noise=noise_lists, dy=st.floats(-2, 2), dt=st.integers(-5000, 5000))
def test_shifted_series_gives_the_same_slope(method: str, noise: list[float], dy: float, dt: int) -> None:
    t, y = _series(noise)
    a = robust_slope(t, y, method=method)
    b = robust_slope(t + dt, y + dy, method=method)
    assert a is not None and b is not None
    assert b.slope_ml_per_year == pytest.approx(a.slope_ml_per_year, abs=1e-4)


@pytest.mark.parametrize("method", ["huber", "theil_sen"])
@settings(max_examples=60, deadline=None)
@given(
    s1=st.floats(-400, 200),
    s2=st.floats(-400, 200),
    n=st.integers(3, 80),
    gap=st.integers(1, 10),
)
def test_steeper_decline_never_looks_flatter_on_noiseless_data(
    method: str, s1: float, s2: float, n: int, gap: int
) -> None:
    t = np.arange(n, dtype=float) * gap
    e1 = robust_slope(t, 2.5 + s1 / ML * t, method=method)
    e2 = robust_slope(t, 2.5 + s2 / ML * t, method=method)
    assert e1 is not None and e2 is not None
    assert e1.slope_ml_per_year == pytest.approx(s1, abs=1e-6)
    if s1 < s2:
        assert e1.slope_ml_per_year <= e2.slope_ml_per_year + 1e-9


@settings(max_examples=40, deadline=None)
@given(noise=noise_lists, extra=st.floats(-300, 300))
def test_huber_is_regression_equivariant(noise: list[float], extra: float) -> None:
    t, y = _series(noise)
    a = robust_slope(t, y)
    b = robust_slope(t, y + extra / ML * t)
    assert a is not None and b is not None
    assert b.slope_ml_per_year == pytest.approx(a.slope_ml_per_year + extra, abs=1e-3)


def test_outliers_do_not_move_the_robust_slope_but_do_move_ols() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(300, dtype=float)
    y = 2.5 - 100 / ML * t + rng.normal(0, 0.1, t.size)
    y[250:265] -= 1.2  # fifteen failed sessions late in the series
    est = robust_slope(t, y)
    assert est is not None
    assert est.slope_ml_per_year == pytest.approx(-100, abs=40)
    assert est.n_outliers >= 15
    ols = ols_slope(t, y)
    assert ols is not None and ols * ML < -250


def test_device_change_shifts_level_without_creating_a_slope() -> None:
    t = np.arange(200, dtype=float)
    y = np.full(200, 2.5)
    y[100:] -= 0.4  # new device reads 400 mL lower
    g = (t >= 100).astype(np.int64)
    est = robust_slope(t, y, g)
    assert est is not None and est.slope_ml_per_year == pytest.approx(0.0, abs=1e-6)
    assert theil_sen(t, y, g) == pytest.approx(0.0, abs=1e-12)
    naive = robust_slope(t, y)
    assert naive is not None and naive.slope_ml_per_year < -500


def _ar1(rng: np.random.Generator, n: int, rho: float, sd: float) -> np.ndarray:
    e = np.empty(n)
    e[0] = rng.normal(0, sd)
    z = rng.normal(0, sd * np.sqrt(1 - rho * rho), n)
    for i in range(1, n):
        e[i] = rho * e[i - 1] + z[i]
    return e


def test_ci_stays_honest_with_autocorrelated_noise() -> None:
    """95 % intervals must cover the true slope ~95 % of the time with AR(1)
    noise (rho 0.6); the naive independent-noise interval would cover far less."""
    rng = np.random.default_rng(11)
    t = np.arange(365, dtype=float)
    cover = naive_cover = 0
    runs = 300
    for _ in range(runs):
        y = 2.4 - 90 / ML * t + _ar1(rng, t.size, 0.6, 0.15)
        e = robust_slope(t, y)
        assert e is not None
        cover += e.ci_low <= -90 <= e.ci_high
        naive_half = (
            (e.ci_high - e.ci_low) / 2 * np.sqrt((1 - e.lag1_autocorrelation) / (1 + e.lag1_autocorrelation))
        )
        naive_cover += abs(e.slope_ml_per_year + 90) <= naive_half
    assert cover / runs >= 0.88
    assert naive_cover / runs <= 0.85
    assert naive_cover < cover


def _est(slope: float, hi: float, n: int = 200, span: float = 300.0) -> SlopeEstimate:
    se = (hi - slope) / 1.97
    return SlopeEstimate(slope, slope - (hi - slope), hi, se, 2.0, n, span, 0.0, float(n), 150.0, 0)


def test_verdicts() -> None:
    t = DEFAULT_THRESHOLDS
    assert verdict(None, t) == "insufficient_data"
    assert verdict(_est(-200, -150, n=10), t) == "insufficient_data"
    assert verdict(_est(-200, -150, span=100), t) == "insufficient_data"
    assert verdict(_est(-200, -120), t) == "rapid_decline"
    # point estimate beyond -90 but the decline is not statistically clear at 99 %
    assert verdict(_est(-120, -10), t) == "declining"
    assert verdict(_est(-120, 40), t) == "stable"
    assert verdict(_est(-60, -10), t) == "declining"
    assert verdict(_est(60, 100), t) == "improving"
    loose = t.merged(
        {
            "rapid_decline_confidence": 0.95,
            "rapid_decline_ci_high_below_ml_per_year": 0.0,
            "rapid_decline_early_exponent": 0.0,
        }
    )
    assert verdict(_est(-120, -10), loose) == "rapid_decline"


def test_decline_must_beat_the_stable_margin() -> None:
    t = DEFAULT_THRESHOLDS.merged({"rapid_decline_early_exponent": 0.0, "rapid_decline_late_exponent": 0.0})
    # upper bound well below the -30 mL/yr margin
    assert verdict(_est(-150, -70, span=400), t) == "rapid_decline"
    # 98 % upper bound about -14: clearly declining, not clearly faster than stable
    assert verdict(_est(-150, -36, span=400), t) == "declining"
    assert verdict(_est(-150, -36, span=400), t.merged({"rapid_decline_ci_high_below_ml_per_year": 0.0})) == (
        "rapid_decline"
    )


def test_early_looks_need_stronger_evidence() -> None:
    t = DEFAULT_THRESHOLDS.merged(
        {"rapid_decline_early_exponent": 0.5, "rapid_decline_early_until_days": 365}
    )
    # the same estimate passes at a 12-month look but not at 6 months, where the
    # bound is widened by sqrt(365 / 182)
    assert verdict(_est(-200, -80, span=365), t) == "rapid_decline"
    assert verdict(_est(-200, -80, span=182), t) == "declining"
    flat = t.merged({"rapid_decline_early_exponent": 0.0})
    assert verdict(_est(-200, -80, span=182), flat) == "rapid_decline"


def test_the_decision_bound_is_plain_at_the_pivot_and_widens_on_both_sides() -> None:
    from backend.clinical.trend import decision_multiplier

    t = DEFAULT_THRESHOLDS.merged(
        {
            "rapid_decline_early_exponent": 1.0,
            "rapid_decline_late_exponent": 0.5,
            "rapid_decline_early_until_days": 365,
        }
    )
    assert decision_multiplier(_est(-200, -80, span=365), t) == pytest.approx(1.0)
    assert decision_multiplier(_est(-200, -80, span=182.5), t) == pytest.approx(2.0)
    assert decision_multiplier(_est(-200, -80, span=730), t) == pytest.approx(np.sqrt(2.0))
    # late looks spend little false-alarm probability: an estimate that passes at
    # 12 months needs a tighter interval at 24 months
    assert verdict(_est(-150, -70, span=365), t) == "rapid_decline"
    assert verdict(_est(-150, -70, span=730), t) == "declining"
    assert verdict(_est(-150, -70, span=730), t.merged({"rapid_decline_late_exponent": 0.0})) == (
        "rapid_decline"
    )


def test_too_few_points_give_no_estimate() -> None:
    assert robust_slope(np.array([1.0]), np.array([2.0])) is None
    assert robust_slope(np.array([1.0, 1.0]), np.array([2.0, 2.1])) is None


@pytest.mark.parametrize(
    "confidence",
    sorted(
        {
            0.8,
            0.9,
            0.95,
            0.99,
            DEFAULT_THRESHOLDS.trend_confidence,
            DEFAULT_THRESHOLDS.rapid_decline_confidence,
        }
    ),
)
def test_t_quantiles_from_the_table_are_those_of_single_calls(confidence: float) -> None:
    from scipy import stats

    from backend.clinical import trend

    trend._t_quantile.cache_clear()
    for df in [*range(1, trend._T_TABLE_DF), trend._T_TABLE_DF, 5000]:
        assert trend._t_quantile(df, confidence) == float(stats.t.ppf(0.5 + confidence / 2.0, df)), df


def test_a_segment_too_short_for_an_interval_reports_none_not_infinity() -> None:
    # three days on two devices: one degree of freedom goes to each device's
    # intercept, none is left for the residual variance, so the slope has no interval
    from backend.clinical.evaluate import Segment, segment_trend
    from backend.clinical.series import DailySeries

    day0 = 739_000
    series = DailySeries(
        day=np.array([day0, day0 + 1, day0 + 2]),
        fev1_l=np.array([2.0, 2.01, 1.8]),
        device=np.array([0, 0, 1]),
        n_sessions=np.array([1, 1, 1]),
        first_home_day=day0 - 30,
    )
    seg = Segment(label="on_treatment", key="on", first_day=day0, last_day=None)
    ts, est = segment_trend(series, seg, day0 + 2, DEFAULT_THRESHOLDS)
    assert est is not None and not np.isfinite(est.ci_high)
    assert ts.slope_ml_per_year is not None
    assert ts.ci_low is None and ts.ci_high is None
    assert ts.verdict == "insufficient_data"
