"""Per-patient FEV1 series from raw spirometry sessions.

Choices (all changeable in `Thresholds`):
- Only trusted sessions count: ATS/ERS 2019 grades A-C, plus ungraded sessions
  (most home devices send no blows, so no grade can be computed). Other sessions
  stay stored and shown but are not used for trends or alerts.
- Home and clinic values are kept apart: trends and home alerts use home values
  only; the latest clinic value is reported separately.
- Several sessions on one local calendar day are reduced to their **median**.
  The best-of-day would rise with the number of sessions a patient happens to do
  (the maximum of more noisy values is larger), so a change in habits would look
  like a change in lung function; the median does not have that bias and is
  robust to one poor session. `daily_aggregate="best"` is available.
- The first `learning_days` of home readings are ignored (learning effect,
  domain.md §3).
- Physiologically implausible values are dropped; exact duplicate sessions
  (same time, same value, same device) are counted once.
- The device of each day is kept so slopes can be estimated within devices
  (a device change can shift the level but should not create a slope).

Everything after extracting arrays from the reading objects is vectorised numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from backend.clinical.model import SpirometryReading
from backend.clinical.thresholds import Thresholds

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class DailySeries:
    """One value per local calendar day, sorted by day (proleptic ordinal)."""

    day: IntArray
    fev1_l: FloatArray
    device: IntArray
    n_sessions: IntArray
    first_home_day: int | None  # first home session of any grade, before the learning cut
    # effort index: median over the day's sessions of ln(PEF / FEV1), NaN on
    # days without PEF; None when no session of the series carried PEF
    effort: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.day.size)

    def upto(self, last_day: int) -> DailySeries:
        """The part of the series on or before `last_day` (no copy)."""
        end = int(np.searchsorted(self.day, last_day, side="right"))
        return DailySeries(
            self.day[:end],
            self.fev1_l[:end],
            self.device[:end],
            self.n_sessions[:end],
            self.first_home_day,
            None if self.effort is None else self.effort[:end],
        )

    def between(self, first_day: int, last_day: int) -> DailySeries:
        start = int(np.searchsorted(self.day, first_day, side="left"))
        end = int(np.searchsorted(self.day, last_day, side="right"))
        return DailySeries(
            self.day[start:end],
            self.fev1_l[start:end],
            self.device[start:end],
            self.n_sessions[start:end],
            self.first_home_day,
            None if self.effort is None else self.effort[start:end],
        )


EMPTY_SERIES = DailySeries(
    np.empty(0, np.int64),
    np.empty(0, np.float64),
    np.empty(0, np.int64),
    np.empty(0, np.int64),
    None,
)


def local_day(moment: datetime, zone: ZoneInfo) -> int:
    """Proleptic ordinal of the calendar day of an aware datetime in `zone`."""
    return moment.astimezone(zone).date().toordinal()


def day_to_date(day: int) -> date:
    return date.fromordinal(int(day))


def is_trusted(grade: str | None, thresholds: Thresholds) -> bool:
    if grade is None:
        return thresholds.use_ungraded
    return grade in thresholds.trusted_grades


def aggregate_daily(
    day: IntArray, fev1_l: FloatArray, device: IntArray, how: str = "median"
) -> tuple[IntArray, FloatArray, IntArray, IntArray]:
    """Reduce sessions to one value per day (median or best), vectorised."""
    if day.size == 0:
        return day, fev1_l, device, np.empty(0, np.int64)
    order = np.lexsort((fev1_l, day))
    d = day[order]
    v = fev1_l[order]
    dev = device[order]
    days, start, counts = np.unique(d, return_index=True, return_counts=True)
    lo = start + (counts - 1) // 2
    hi = start + counts // 2
    if how == "best":
        top = start + counts - 1
        return days, v[top], dev[top], counts.astype(np.int64)
    return days, 0.5 * (v[lo] + v[hi]), dev[lo], counts.astype(np.int64)


def home_series(
    readings: Iterable[SpirometryReading],
    timezone: str,
    thresholds: Thresholds,
    as_of: datetime | None = None,
) -> DailySeries:
    """Trusted home FEV1, one value per local day, learning period removed."""
    zone = ZoneInfo(timezone)
    seen: set[tuple[datetime, float, str | None]] = set()
    days: list[int] = []
    values: list[float] = []
    pefs: list[float] = []
    devices: list[str | None] = []
    first_home: int | None = None
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
        return DailySeries(
            EMPTY_SERIES.day,
            EMPTY_SERIES.fev1_l,
            EMPTY_SERIES.device,
            EMPTY_SERIES.n_sessions,
            first_home,
        )
    codes = _device_codes(devices)
    return series_from_arrays(
        np.asarray(days, np.int64),
        np.asarray(values, np.float64),
        codes,
        thresholds,
        first_home_day=first_home,
        pef_l_s=np.asarray(pefs, np.float64),
    )


def series_from_arrays(
    day: IntArray,
    fev1_l: FloatArray,
    device: IntArray | None,
    thresholds: Thresholds,
    *,
    first_home_day: int | None = None,
    pef_l_s: FloatArray | None = None,
) -> DailySeries:
    """Fast path for callers that already hold arrays (nightly batch, validation).

    `day` are local-day ordinals of trusted home sessions; the learning period
    is counted from `first_home_day` (default: the first day given). `pef_l_s`
    (NaN where a session has none) gives the daily effort index.
    """
    if device is None:
        device = np.zeros(day.size, np.int64)
    if day.size == 0:
        return DailySeries(day, fev1_l, device, np.empty(0, np.int64), first_home_day)
    first = int(day.min()) if first_home_day is None else first_home_day
    keep = day >= first + thresholds.learning_days
    d, v, dev, n = aggregate_daily(day[keep], fev1_l[keep], device[keep], thresholds.daily_aggregate)
    effort = None if pef_l_s is None else daily_effort_index(d, day[keep], fev1_l[keep], pef_l_s[keep])
    return DailySeries(d, v, dev, n, first, effort)


def daily_effort_index(
    days: IntArray, day: IntArray, fev1_l: FloatArray, pef_l_s: FloatArray
) -> FloatArray | None:
    """Median of ln(PEF / FEV1) over each day's sessions with a PEF; NaN on days without.

    The ratio is taken within a session (the same blow's effort); its median
    per day, like FEV1's, is robust to one poor session. None if no session has PEF.
    """
    ok = np.isfinite(pef_l_s) & (pef_l_s > 0) & (fev1_l > 0)
    if not ok.any():
        return None
    r = np.log(pef_l_s[ok] / fev1_l[ok])
    dd = day[ok]
    order = np.lexsort((r, dd))
    dd, r = dd[order], r[order]
    u, start, counts = np.unique(dd, return_index=True, return_counts=True)
    med = 0.5 * (r[start + (counts - 1) // 2] + r[start + counts // 2])
    out = np.full(days.size, np.nan)
    pos = np.searchsorted(days, u)
    inside = (pos < days.size) & (days[np.minimum(pos, days.size - 1)] == u)
    out[pos[inside]] = med[inside]
    return out


def _device_codes(devices: Sequence[str | None]) -> IntArray:
    mapping: dict[str | None, int] = {}
    return np.fromiter((mapping.setdefault(x, len(mapping)) for x in devices), np.int64, len(devices))


def latest_clinic(
    readings: Iterable[SpirometryReading], thresholds: Thresholds, as_of: datetime | None = None
) -> SpirometryReading | None:
    """The most recent trusted clinic session (reported apart from home values)."""
    best: SpirometryReading | None = None
    for r in readings:
        if r.setting != "clinic" or (as_of is not None and r.measured_at > as_of):
            continue
        if not is_trusted(r.grade, thresholds):
            continue
        if best is None or r.measured_at > best.measured_at:
            best = r
    return best
