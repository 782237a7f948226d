"""Vectorised nightly helpers agree with the per-patient engine."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from backend.clinical.evaluate import compute_trend
from backend.clinical.nightly import ZoneOffsets, chunk_series, trend_screen
from backend.clinical.series import home_series, is_trusted
from backend.clinical.simulation import CohortConfig, SimulatedPatient, simulate_patient
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from backend.clinical.trend import robust_slope

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham", "UTC")
AS_OF = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("zone", ZONES)
def test_local_days_match_astimezone_across_dst_changes(zone: str) -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    moments = [start + timedelta(minutes=7 * k) for k in range(0, 400 * 24 * 60 // 7, 3)]
    t_us = np.array([(m - EPOCH) // timedelta(microseconds=1) for m in moments], np.int64)
    got = ZoneOffsets().local_days(t_us, zone)
    want = [m.astimezone(ZoneInfo(zone)).date().toordinal() for m in moments]
    assert got.tolist() == want


def _cohort(n: int = 30, seed: int = 11) -> list[SimulatedPatient]:
    cfg = CohortConfig(n_patients=n, seed=seed)
    children = np.random.SeedSequence(seed).spawn(n)
    return [simulate_patient(np.random.default_rng(children[i]), cfg, i) for i in range(n)]


def _flat(sims: list[SimulatedPatient], thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Any:
    rows = []
    zones = []
    for code, sim in enumerate(sims):
        zone = ZONES[code % len(ZONES)]
        zones.append(zone)
        readings = [r for r in sim.history.readings if r.measured_at <= AS_OF]
        for k, r in enumerate(readings):
            rows.append(
                (
                    code,
                    (r.measured_at - EPOCH) // timedelta(microseconds=1),
                    r.fev1_l,
                    r.setting == "home",
                    is_trusted(r.grade, thresholds),
                    hash(r.device_id) % 1000 if r.device_id else 0,
                )
            )
            if k % 41 == 0:  # a duplicate upload
                rows.append(rows[-1])
    cols = list(zip(*rows, strict=True))
    return (
        np.array(cols[0], np.int64),
        np.array(cols[1], np.int64),
        np.array(cols[2], np.float64),
        np.array(cols[3], bool),
        np.array(cols[4], bool),
        np.array(cols[5], np.int64),
        zones,
    )


def test_chunk_series_equals_home_series_for_every_patient() -> None:
    sims = _cohort()
    t = DEFAULT_THRESHOLDS
    p, t_us, fev1, home, trusted, device, zones = _flat(sims)
    n = len(sims)
    best = np.zeros(n, bool)
    best[::4] = True  # some patients with the best-of-day aggregate
    cs = chunk_series(
        p[home],
        t_us[home],
        fev1[home],
        home[home],
        trusted[home],
        device[home],
        zones=zones,
        plausible_min=np.full(n, t.fev1_plausible_min_l),
        plausible_max=np.full(n, t.fev1_plausible_max_l),
        learning_days=np.full(n, t.learning_days, np.int64),
        best_of_day=best,
    )
    for code, sim in enumerate(sims):
        th = replace(t, daily_aggregate="best") if best[code] else t
        readings = list(sim.history.readings)
        readings += readings[::41]
        readings.sort(key=lambda r: r.measured_at)
        want = home_series(readings, zones[code], th, as_of=AS_OF)
        got = cs.of(code)
        assert got.first_home_day == want.first_home_day
        assert got.day.tolist() == want.day.tolist()
        assert got.fev1_l.tolist() == want.fev1_l.tolist()
        assert got.n_sessions.tolist() == want.n_sessions.tolist()
        # device codes: the same partition of days
        assert len(set(zip(got.device.tolist(), want.device.tolist(), strict=True))) == len(
            set(want.device.tolist())
        )


def test_batch_trend_agrees_with_the_per_patient_estimator() -> None:
    sims = _cohort(40, seed=5)
    t = DEFAULT_THRESHOLDS
    p, t_us, fev1, home, trusted, device, zones = _flat(sims)
    n = len(sims)
    cs = chunk_series(
        p[home],
        t_us[home],
        fev1[home],
        home[home],
        trusted[home],
        device[home],
        zones=zones,
        plausible_min=np.full(n, t.fev1_plausible_min_l),
        plausible_max=np.full(n, t.fev1_plausible_max_l),
        learning_days=np.full(n, t.learning_days, np.int64),
        best_of_day=np.zeros(n, bool),
    )
    last = np.array([AS_OF.astimezone(ZoneInfo(z)).date().toordinal() for z in zones])
    first = last - t.trend_window_days + 1
    bt, _ = trend_screen(cs, first, last, t, include=np.ones(n, bool))
    compared = 0
    for code in range(n):
        part = cs.of(code).between(int(first[code]), int(last[code]))
        est = (
            robust_slope(
                part.day,
                part.fev1_l,
                part.device,
                confidence=t.trend_confidence,
                outlier_z=t.outlier_robust_z,
            )
            if len(part) >= 2
            else None
        )
        if est is None or not np.isfinite(est.se_ml_per_year):
            continue
        compared += 1
        assert bt.n_readings[code] == est.n_readings
        assert bt.span_days[code] == est.span_days
        assert abs(bt.slope_ml_per_year[code] - est.slope_ml_per_year) < 0.05
        assert abs(bt.se_ml_per_year[code] - est.se_ml_per_year) < 0.05
        assert abs(bt.ci_high[code] - est.ci_high) < 0.1
    assert compared >= 30


def test_screen_never_clears_a_rapid_decline() -> None:
    # a tighter decline threshold makes many patients borderline
    t = replace(
        DEFAULT_THRESHOLDS, rapid_decline_ml_per_year=-40.0, rapid_decline_ci_high_below_ml_per_year=10.0
    )
    sims = _cohort(60, seed=3)
    p, t_us, fev1, home, trusted, device, zones = _flat(sims, t)
    n = len(sims)
    cs = chunk_series(
        p[home],
        t_us[home],
        fev1[home],
        home[home],
        trusted[home],
        device[home],
        zones=zones,
        plausible_min=np.full(n, t.fev1_plausible_min_l),
        plausible_max=np.full(n, t.fev1_plausible_max_l),
        learning_days=np.full(n, t.learning_days, np.int64),
        best_of_day=np.zeros(n, bool),
    )
    last = np.array([AS_OF.astimezone(ZoneInfo(z)).date().toordinal() for z in zones])
    first = last - t.trend_window_days + 1
    _, maybe = trend_screen(cs, first, last, t, include=np.ones(n, bool))
    rapid = 0
    for code, sim in enumerate(sims):
        trend, _ = compute_trend(sim.history.facts, cs.of(code), [], AS_OF, t, with_segments=False)
        if trend.verdict == "rapid_decline":
            rapid += 1
            assert maybe[code]
    assert rapid >= 3
    assert not maybe.all()  # the screen does clear patients


def test_patients_outside_the_screen_are_never_cleared() -> None:
    sims = _cohort(8)
    p, t_us, fev1, home, trusted, device, zones = _flat(sims)
    t = DEFAULT_THRESHOLDS
    n = len(sims)
    cs = chunk_series(
        p[home],
        t_us[home],
        fev1[home],
        home[home],
        trusted[home],
        device[home],
        zones=zones,
        plausible_min=np.full(n, t.fev1_plausible_min_l),
        plausible_max=np.full(n, t.fev1_plausible_max_l),
        learning_days=np.full(n, t.learning_days, np.int64),
        best_of_day=np.zeros(n, bool),
    )
    last = np.full(n, date(2025, 12, 31).toordinal())
    include = np.arange(n) % 2 == 0
    _, maybe = trend_screen(cs, last - 365, last, t, include=include)
    assert maybe[~include].all()
