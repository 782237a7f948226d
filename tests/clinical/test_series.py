from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from backend.clinical.model import SpirometryReading
from backend.clinical.series import aggregate_daily, home_series, latest_clinic, local_day
from backend.clinical.thresholds import DEFAULT_THRESHOLDS

from .helpers import daily_readings, local

T0 = DEFAULT_THRESHOLDS.merged({"learning_days": 0})


def test_median_per_local_day_and_best_option() -> None:
    day = np.array([1, 1, 1, 2, 3, 3], np.int64)
    v = np.array([2.0, 2.6, 2.1, 2.2, 2.4, 2.0])
    d, agg, _, n = aggregate_daily(day, v, np.zeros(6, np.int64), "median")
    assert d.tolist() == [1, 2, 3]
    assert agg.tolist() == [2.1, 2.2, 2.2]
    assert n.tolist() == [3, 1, 2]
    _, best, _, _ = aggregate_daily(day, v, np.zeros(6, np.int64), "best")
    assert best.tolist() == [2.6, 2.2, 2.4]


def test_grades_home_clinic_and_plausibility() -> None:
    start = local(2025, 1, 1)
    rs = daily_readings([2.5] * 5, start)
    rs += [
        SpirometryReading("d", start + timedelta(days=5), 2.5, None, "D", "home", "dev1"),
        SpirometryReading("c", start + timedelta(days=6), 2.5, None, "B", "home", "dev1"),
        SpirometryReading("k", start + timedelta(days=7), 3.5, None, "A", "clinic", None),
        SpirometryReading("x", start + timedelta(days=8), 9.5, None, None, "home", "dev1"),
    ]
    s = home_series(rs, "Europe/London", T0)
    # 5 ungraded + grade B; grade D, clinic and the implausible value are left out
    assert len(s) == 6
    assert 3.5 not in s.fev1_l.tolist()
    no_ungraded = home_series(rs, "Europe/London", T0.merged({"use_ungraded": False}))
    assert len(no_ungraded) == 1
    clinic = latest_clinic(rs, T0)
    assert clinic is not None and clinic.id == "k"


def test_learning_period_counts_from_first_home_session_of_any_grade() -> None:
    start = local(2025, 1, 1)
    rs = daily_readings([2.0] * 30, start)
    rs.append(SpirometryReading("early", start - timedelta(days=3), 1.0, None, "F", "home", None))
    s = home_series(rs, "Europe/London", DEFAULT_THRESHOLDS)
    first = local_day(start - timedelta(days=3), ZoneInfo("Europe/London"))
    assert int(s.day[0]) == first + DEFAULT_THRESHOLDS.learning_days
    assert s.first_home_day == first


def test_exact_duplicates_counted_once_and_as_of_respected() -> None:
    start = local(2025, 1, 1)
    rs = daily_readings([2.0, 2.0, 2.0], start)
    dup = SpirometryReading("dup", rs[0].measured_at, 2.0, None, None, "home", "dev1")
    other = SpirometryReading("o", rs[0].measured_at + timedelta(hours=2), 2.6, None, None, "home", "dev1")
    s = home_series([*rs, dup, other], "Europe/London", T0)
    assert s.n_sessions.tolist() == [2, 1, 1]
    s2 = home_series(rs, "Europe/London", T0, as_of=rs[1].measured_at)
    assert len(s2) == 2


def test_local_calendar_day_in_patient_zone() -> None:
    # 23:30 in New York on 8 March is already 9 March in UTC
    r = SpirometryReading("a", local(2025, 3, 8, 23, 30, tz="America/New_York"), 2.0)
    s_ny = home_series([r], "America/New_York", T0)
    s_utc = home_series([r], "UTC", T0)
    assert int(s_utc.day[0]) - int(s_ny.day[0]) == 1


# --- the series from columns (`reading_columns`, `local_days`) -------------------


def _reference_home_series(readings, timezone, thresholds, as_of=None):  # type: ignore[no-untyped-def]
    """The series built one reading object at a time (the definition the
    column code must reproduce)."""
    from backend.clinical.series import _device_codes, is_trusted, series_from_arrays

    zone = ZoneInfo(timezone)
    seen: set[object] = set()
    days, values, pefs, devices = [], [], [], []
    first_home = None
    lo, hi = thresholds.fev1_plausible_min_l, thresholds.fev1_plausible_max_l
    for r in readings:
        if r.setting != "home" or (as_of is not None and r.measured_at > as_of):
            continue
        d = local_day(r.measured_at, zone)
        if first_home is None or d < first_home:
            first_home = d
        if not is_trusted(r.grade, thresholds) or not lo <= r.fev1_l <= hi:
            continue
        key = (r.measured_at, r.fev1_l, r.device_id)
        if key in seen:
            continue
        seen.add(key)
        days.append(d)
        values.append(r.fev1_l)
        pefs.append(np.nan if r.pef_l_s is None else r.pef_l_s)
        devices.append(r.device_id)
    if not days:
        return None, first_home
    return series_from_arrays(
        np.asarray(days, np.int64),
        np.asarray(values, np.float64),
        _device_codes(devices),
        thresholds,
        first_home_day=first_home,
        pef_l_s=np.asarray(pefs, np.float64),
    ), first_home


def _messy_readings(seed: int, tz: str) -> list[SpirometryReading]:
    """Sessions around the clock (several a day, across DST changes) with
    duplicates, two devices, grades of every kind, clinic sessions, PEF or none."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 1, tzinfo=ZoneInfo(tz))
    out: list[SpirometryReading] = []
    for k in range(700):
        at = start + timedelta(hours=float(rng.uniform(0, 24 * 500)))
        at = at.replace(microsecond=int(rng.integers(0, 1_000_000)))
        grade = [None, "A", "B", "C", "D", "E", "F", ""][int(rng.integers(0, 8))]
        device = [None, "dev1", "dev2"][int(rng.integers(0, 3))]
        setting = "clinic" if rng.random() < 0.05 else "home"
        value = round(float(rng.normal(2.5, 0.3)), 2) if rng.random() > 0.01 else 9.9
        pef = None if rng.random() < 0.3 else round(float(rng.normal(6.0, 0.5)), 2)
        r = SpirometryReading(f"r{k}", at, value, None, grade, setting, device, pef)
        out.append(r)
        if rng.random() < 0.05:  # an exact duplicate (another id)
            out.append(SpirometryReading(f"r{k}b", at, value, None, grade, setting, device, pef))
        if rng.random() < 0.05:  # the same time, another value
            out.append(SpirometryReading(f"r{k}c", at, value + 0.1, None, grade, setting, device, pef))
    out.sort(key=lambda r: r.measured_at)
    return out


def test_series_from_columns_is_the_series_of_the_reading_objects() -> None:
    from backend.clinical.model import ReadingTable

    th = DEFAULT_THRESHOLDS.merged({"learning_days": 10})
    for seed, tz in enumerate(("Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")):
        readings = _messy_readings(seed, tz)
        for as_of in (None, readings[len(readings) // 2].measured_at, readings[0].measured_at):
            want, first = _reference_home_series(readings, tz, th, as_of)
            for given in (readings, ReadingTable.of(readings)):
                got = home_series(given, tz, th, as_of=as_of)
                assert got.first_home_day == first
                if want is None:
                    assert len(got) == 0
                    continue
                assert got.day.tolist() == want.day.tolist()
                assert got.fev1_l.tolist() == want.fev1_l.tolist()
                assert got.device.tolist() == want.device.tolist()
                assert got.n_sessions.tolist() == want.n_sessions.tolist()
                assert (got.effort is None) == (want.effort is None)
                if want.effort is not None:
                    assert np.array_equal(got.effort, want.effort, equal_nan=True)
            # the latest clinic session: the same object's fields
            clinic = [
                r for r in readings if r.setting == "clinic" and (as_of is None or r.measured_at <= as_of)
            ]
            trusted = [r for r in clinic if r.grade is None or r.grade in th.trusted_grades]
            best = None
            for r in trusted:
                if best is None or r.measured_at > best.measured_at:
                    best = r
            assert latest_clinic(ReadingTable.of(readings), th, as_of=as_of) == best


def test_local_days_are_the_calendar_days_at_every_offset_change() -> None:
    from backend.clinical.series import local_days

    zones = (
        "Europe/London",
        "America/Santiago",
        "Australia/Lord_Howe",
        "Africa/Casablanca",
        "Asia/Tehran",
        "UTC",
    )
    for tz in zones:
        zone = ZoneInfo(tz)
        t = int(datetime(2022, 12, 25, tzinfo=UTC).timestamp())
        end = int(datetime(2027, 1, 5, tzinfo=UTC).timestamp())
        moments: list[float] = []
        prev = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
        while t < end:  # every change of offset, found hour by hour, then to the second
            t += 3600
            off = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
            if off != prev:
                a, b = t - 3600, t
                while b - a > 1:
                    m = (a + b) // 2
                    if datetime.fromtimestamp(m, UTC).astimezone(zone).utcoffset() == prev:
                        a = m
                    else:
                        b = m
                moments += [b - 1.000001, b - 1, b - 0.5, b, b + 0.000001, b + 1]
                prev = off
            moments.append(t + 0.25)
        ts = np.asarray(moments)
        want = [local_day(datetime.fromtimestamp(x, UTC), zone) for x in moments]
        assert local_days(ts, tz).tolist() == want, tz
