"""Builders for hand-made clinical cases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from backend.clinical.model import PatientFacts, SpirometryReading
from backend.clinical.series import DailySeries


def facts(**kw: object) -> PatientFacts:
    base: dict[str, object] = {
        "patient_id": "p1",
        "sex_at_birth": "female",
        "date_of_birth": date(1985, 6, 1),
        "height_cm": 165.0,
        "lam_type": "sporadic",
        "timezone": "Europe/London",
        "treatment_status": "untreated",
        "trough_target_low": None,
        "trough_target_high": None,
        "expected_sessions_per_week": 7,
    }
    base.update(kw)
    return PatientFacts(**base)  # type: ignore[arg-type]


def local(y: int, m: int, d: int, hh: int = 9, mm: int = 0, tz: str = "Europe/London") -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZoneInfo(tz))


def daily_readings(
    values: Sequence[float],
    start: datetime,
    *,
    setting: str = "home",
    grade: str | None = None,
    device: str | None = "dev1",
    prefix: str = "r",
) -> list[SpirometryReading]:
    return [
        SpirometryReading(f"{prefix}{i}", start + timedelta(days=i), float(v), None, grade, setting, device)
        for i, v in enumerate(values)
    ]


def series(
    values: Sequence[float], first_day: int = 740000, device: Sequence[int] | None = None
) -> DailySeries:
    n = len(values)
    return DailySeries(
        np.arange(first_day, first_day + n, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
        np.zeros(n, np.int64) if device is None else np.asarray(device, np.int64),
        np.ones(n, np.int64),
        first_day,
    )
