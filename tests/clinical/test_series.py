from __future__ import annotations

from datetime import timedelta
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
