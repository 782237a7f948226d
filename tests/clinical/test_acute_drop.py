"""Acute FEV1 drop: the Bjortuft 10 % rule with a personal noise floor."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.clinical import rules
from backend.clinical.series import DailySeries
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds

from .helpers import series

T = DEFAULT_THRESHOLDS
PLAIN = replace(T, acute_drop_noise_z=0.0)


def _noisy_history(level: float, sd: float, n: int = 60, seed: int = 3) -> list[float]:
    rng = np.random.default_rng(seed)
    return [round(float(v), 3) for v in rng.normal(level, sd, n)]


def _previous_rule(
    s: DailySeries, as_of_day: int, t: Thresholds
) -> tuple[int, int, float, int, float, float, int, float] | None:
    """The acute-drop rule as it was before the noise floor (Bjortuft 1993 only)."""
    first = as_of_day - t.acute_lookback_days - t.acute_baseline_days
    s = s.between(first, as_of_day)
    if len(s) < t.acute_baseline_min_readings + 2:
        return None
    last_day = int(s.day[-1])
    if as_of_day - last_day > t.acute_persistence_days:
        return None
    same = s.device == s.device[-1]
    day = s.day[same]
    val = s.fev1_l[same]
    n = day.size
    if n < t.acute_baseline_min_readings + 2:
        return None
    csum = np.concatenate(([0.0], np.cumsum(val)))
    lo = np.searchsorted(day, day - t.acute_baseline_days, side="left")
    hi = np.arange(n)
    n_base = hi - lo
    base = np.divide(csum[hi] - csum[lo], n_base, out=np.zeros(n), where=n_base > 0)
    suffix_max = np.maximum.accumulate(val[::-1])[::-1]
    n_win = n - np.arange(n)
    win_mean = (csum[n] - csum[np.arange(n)]) / n_win
    limit = (1.0 - t.acute_drop_fraction) * base
    ok = (
        (day >= as_of_day - t.acute_lookback_days)
        & (n_base >= t.acute_baseline_min_readings)
        & (n_win >= 2)
        & (last_day - day + 1 >= t.acute_persistence_days)
        & ((suffix_max if t.acute_drop_statistic == "all" else win_mean) <= limit)
    )
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    k = int(idx[0])
    return (
        int(day[k]),
        last_day,
        float(base[k]),
        int(n_base[k]),
        float(win_mean[k]),
        float(suffix_max[k]),
        int(n_win[k]),
        float(1.0 - win_mean[k] / base[k]),
    )


def test_noisy_low_fev1_stable_patient_no_longer_fires() -> None:
    # FEV1 ~1.2 L, day-to-day SD ~150 mL; the last two days read 12.5 % below
    # the previous week, well within this patient's usual variation
    values = _noisy_history(1.20, 0.15) + [1.20] * 7 + [1.05, 1.05]
    s = series(values)
    last = int(s.day[-1])
    assert rules.find_acute_drop(s, last, PLAIN) is not None  # the plain rule fires
    sd, pairs = rules.personal_noise_sd(s, last, T)
    assert sd is not None and 0.10 < sd < 0.20
    assert pairs == len(values) - 1
    assert rules.find_acute_drop(s, last, T) is None


def test_clear_drop_still_fires_with_noise_floor() -> None:
    values = _noisy_history(1.20, 0.15) + [1.20] * 7 + [0.75, 0.74]  # 38 % low
    s = series(values)
    drop = rules.find_acute_drop(s, int(s.day[-1]), T)
    assert drop is not None
    assert drop.onset_day == int(s.day[-2])
    assert drop.noise_sd_l is not None and drop.limit_l is not None
    assert drop.limit_l == pytest.approx(1.20 - T.acute_drop_noise_z * drop.noise_sd_l)
    c = rules.acute_fev1_drop(drop, T)
    assert c is not None
    assert c.numbers["noise_sd_ml"] == pytest.approx(1000 * drop.noise_sd_l, abs=1)
    assert c.numbers["limit_fev1_l"] == pytest.approx(drop.limit_l, abs=1e-3)
    assert "day-to-day variation" in c.explanation


def test_low_noise_patient_keeps_the_published_10_percent() -> None:
    # SD ~30 mL: 2.5 x noise is less than 10 %, so the 10 % limit applies
    values = _noisy_history(2.50, 0.03) + [2.50] * 7 + [2.22, 2.23]  # 11 % low
    s = series(values)
    drop = rules.find_acute_drop(s, int(s.day[-1]), T)
    assert drop is not None
    assert drop.limit_l == pytest.approx(0.9 * 2.50)
    near = series([*values[:-2], 2.27, 2.27])  # 9 % low: never more sensitive than 10 %
    assert rules.find_acute_drop(near, int(near.day[-1]), T) is None


def test_too_little_history_falls_back_to_the_plain_rule() -> None:
    values = [1.00, 1.40, 1.00, 1.40, 1.20, 1.20, 1.20, 1.05, 1.05]  # 8 pairs < 10
    s = series(values)
    sd, pairs = rules.personal_noise_sd(s, int(s.day[-1]), T)
    assert sd is None and pairs == 8
    drop = rules.find_acute_drop(s, int(s.day[-1]), T)
    assert drop is not None and drop.noise_sd_l is None
    c = rules.acute_fev1_drop(drop, T)
    assert c is not None and c.numbers["noise_sd_ml"] is None
    assert "day-to-day variation" not in c.explanation


def test_noise_estimate_ignores_device_changes_and_long_gaps() -> None:
    values = _noisy_history(1.50, 0.10, n=40)
    same = series(values)
    sd, pairs = rules.personal_noise_sd(same, int(same.day[-1]), T)
    dev = series(values, device=[0] * 20 + [1] * 20)
    sd_dev, pairs_dev = rules.personal_noise_sd(dev, int(dev.day[-1]), T)
    assert pairs_dev == pairs - 1 and sd is not None and sd_dev is not None
    gap = DailySeries(
        np.concatenate((same.day[:20], same.day[20:] + 30)),
        same.fev1_l,
        same.device,
        same.n_sessions,
        same.first_home_day,
    )
    _, pairs_gap = rules.personal_noise_sd(gap, int(gap.day[-1]), T)
    assert pairs_gap == pairs - 1


def test_noise_z_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="acute_drop_noise_z"):
        T.merged({"acute_drop_noise_z": -1.0})
    assert T.merged({"acute_drop_noise_z": 0}).acute_drop_noise_z == 0.0


days_and_values = st.lists(
    st.tuples(st.integers(1, 3), st.integers(50, 300), st.integers(0, 1)),
    min_size=5,
    max_size=60,
)


def _build(items: list[tuple[int, int, int]]) -> DailySeries:
    day = 740000 + np.cumsum([g for g, _, _ in items]).astype(np.int64)
    val = np.array([v / 100 for _, v, _ in items], dtype=np.float64)
    dev = np.array([d for _, _, d in items], dtype=np.int64)
    return DailySeries(day, val, dev, np.ones(day.size, np.int64), int(day[0]))


@settings(max_examples=300, deadline=None)
@given(days_and_values, st.sampled_from(["all", "mean"]), st.integers(0, 3))
def test_z_zero_is_exactly_the_published_rule(
    items: list[tuple[int, int, int]], statistic: str, late: int
) -> None:
    s = _build(items)
    t = replace(PLAIN, acute_drop_statistic=statistic)
    as_of = int(s.day[-1]) + late
    got = rules.find_acute_drop(s, as_of, t)
    ref = _previous_rule(s, as_of, t)
    if ref is None:
        assert got is None
        return
    assert got is not None
    assert (
        got.onset_day,
        got.last_day,
        got.baseline_l,
        got.n_baseline,
        got.window_mean_l,
        got.window_max_l,
        got.n_window,
        got.drop_fraction,
    ) == ref
    assert got.noise_sd_l is None


@settings(max_examples=300, deadline=None)
@given(days_and_values, st.sampled_from(["all", "mean"]), st.floats(0.5, 4.0), st.integers(2, 20))
def test_noise_floor_is_never_more_sensitive_than_the_published_rule(
    items: list[tuple[int, int, int]], statistic: str, z: float, min_pairs: int
) -> None:
    s = _build(items)
    plain = replace(PLAIN, acute_drop_statistic=statistic, acute_noise_min_pairs=min_pairs)
    floored = replace(plain, acute_drop_noise_z=z)
    as_of = int(s.day[-1])
    with_floor = rules.find_acute_drop(s, as_of, floored)
    if with_floor is not None:
        without = rules.find_acute_drop(s, as_of, plain)
        assert without is not None
        assert without.onset_day <= with_floor.onset_day
