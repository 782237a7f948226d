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

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from backend.clinical.model import PosixMoments, ReadingTable, SpirometryReading
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


@dataclass(frozen=True, slots=True)
class ReadingColumns:
    """A patient's sessions as arrays, in session order (`reading_columns`)."""

    table: ReadingTable
    t: FloatArray  # POSIX seconds of `measured_at`
    fev1_l: FloatArray
    pef_l_s: FloatArray  # NaN where a session has none
    home: npt.NDArray[np.bool_]


def reading_columns(readings: Iterable[SpirometryReading]) -> ReadingColumns:
    """The columns the series code reads, from any sequence of readings."""
    table = ReadingTable.of(readings)
    n = len(table)
    moments = table.measured_at
    return ReadingColumns(
        table,
        np.asarray(moments.seconds, np.float64).reshape(n)
        if isinstance(moments, PosixMoments)
        else np.fromiter(map(datetime.timestamp, moments), np.float64, n),
        np.asarray(table.fev1_l, np.float64).reshape(n),
        np.asarray(table.pef_l_s, np.float64).reshape(n),  # None -> NaN
        np.fromiter(map("home".__eq__, table.setting), np.bool_, n),
    )


_DAY_S = 86400
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_SAMPLE_S = 6 * 3600  # transitions are never closer than this


@functools.lru_cache(maxsize=4096)
def _zone_year(timezone: str, year: int) -> tuple[FloatArray, FloatArray]:
    """UTC offsets of `timezone` in a calendar year (UTC) as (change moments in
    POSIX seconds, offset in seconds from each moment): the offset sampled every
    6 hours, each change then found to the second by bisection."""
    zone = ZoneInfo(timezone)
    lo = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) - _DAY_S
    hi = int(datetime(year + 1, 1, 1, tzinfo=UTC).timestamp()) + _DAY_S

    def offset(t: int) -> int:
        off = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
        return 0 if off is None else int(off.total_seconds())

    moments = [float(lo)]
    offsets = [float(offset(lo))]
    prev_t, prev_off = lo, offset(lo)
    for t in range(lo + _SAMPLE_S, hi + _SAMPLE_S, _SAMPLE_S):
        off = offset(t)
        if off != prev_off:
            a, b = prev_t, t  # offset(a) == prev_off != offset(b)
            while b - a > 1:
                m = (a + b) // 2
                if offset(m) == prev_off:
                    a = m
                else:
                    b = m
            moments.append(float(b))
            offsets.append(float(off))
        prev_t, prev_off = t, off
    return np.asarray(moments), np.asarray(offsets)


def local_days(t: FloatArray, timezone: str) -> IntArray:
    """`local_day` of many moments (POSIX seconds), vectorised: the same days."""
    if t.size == 0:
        return np.empty(0, np.int64)
    years = range(
        datetime.fromtimestamp(float(t.min()), UTC).year, datetime.fromtimestamp(float(t.max()), UTC).year + 1
    )
    parts = [_zone_year(timezone, y) for y in years]
    moments = np.concatenate([m for m, _ in parts])
    offsets = np.concatenate([o for _, o in parts])
    # the years' tables overlap by a day at each end: keep them in time order
    order = np.argsort(moments, kind="stable")
    moments, offsets = moments[order], offsets[order]
    off = offsets[np.searchsorted(moments, t, side="right") - 1]
    days: IntArray = np.floor_divide(t + off, _DAY_S).astype(np.int64) + _EPOCH_ORDINAL
    return days


def home_series(
    readings: Iterable[SpirometryReading] | ReadingColumns,
    timezone: str,
    thresholds: Thresholds,
    as_of: datetime | None = None,
) -> DailySeries:
    """Trusted home FEV1, one value per local day, learning period removed."""
    cols = readings if isinstance(readings, ReadingColumns) else reading_columns(readings)
    table = cols.table
    home = cols.home if as_of is None else cols.home & (cols.t <= as_of.timestamp())
    idx = np.flatnonzero(home)
    day_all = local_days(cols.t[idx], timezone)
    first_home = int(day_all.min()) if idx.size else None
    trusted = {g: is_trusted(g, thresholds) for g in set(table.grade)}
    ok = np.fromiter(map(trusted.__getitem__, table.grade), np.bool_, len(table))[idx]
    v = cols.fev1_l[idx]
    ok &= (thresholds.fev1_plausible_min_l <= v) & (v <= thresholds.fev1_plausible_max_l)
    idx, day = idx[ok], day_all[ok]
    if not idx.size:
        return DailySeries(
            EMPTY_SERIES.day,
            EMPTY_SERIES.fev1_l,
            EMPTY_SERIES.device,
            EMPTY_SERIES.n_sessions,
            first_home,
        )
    devices = [table.device_id[i] for i in idx.tolist()]
    dev = _device_codes(devices)
    t, v = cols.t[idx], cols.fev1_l[idx]
    # exact duplicates (same time, value and device) counted once: the first
    order = np.lexsort((dev, v, t))
    same = (
        (t[order][1:] == t[order][:-1])
        & (v[order][1:] == v[order][:-1])
        & (dev[order][1:] == dev[order][:-1])
    )
    if same.any():
        keep = np.ones(idx.size, np.bool_)
        keep[order[1:][same]] = False
        idx, day, v = idx[keep], day[keep], v[keep]
        dev = _device_codes([d for d, k in zip(devices, keep.tolist(), strict=True) if k])
    return series_from_arrays(
        day,
        v,
        dev,
        thresholds,
        first_home_day=first_home,
        pef_l_s=cols.pef_l_s[idx],
    )


def last_home_at(readings: Iterable[SpirometryReading] | ReadingColumns, as_of: datetime) -> datetime | None:
    """The time of the last home session (any grade) measured at or before `as_of`."""
    cols = readings if isinstance(readings, ReadingColumns) else reading_columns(readings)
    mask = cols.home & (cols.t <= as_of.timestamp())
    if not mask.any():
        return None
    i = int(np.flatnonzero(mask)[int(np.argmax(cols.t[mask]))])
    return cols.table.measured_at[i]


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
    readings: Iterable[SpirometryReading] | ReadingColumns,
    thresholds: Thresholds,
    as_of: datetime | None = None,
) -> SpirometryReading | None:
    """The most recent trusted clinic session (reported apart from home values);
    of several at the same time, the first."""
    cols = readings if isinstance(readings, ReadingColumns) else reading_columns(readings)
    table = cols.table
    mask = np.fromiter(map("clinic".__eq__, table.setting), np.bool_, len(table))
    if as_of is not None:
        mask &= cols.t <= as_of.timestamp()
    idx = np.flatnonzero(mask)
    idx = idx[[is_trusted(table.grade[i], thresholds) for i in idx.tolist()]] if idx.size else idx
    if not idx.size:
        return None
    return table[int(idx[int(np.argmax(cols.t[idx]))])]
