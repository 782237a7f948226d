"""Vectorised helpers for the nightly pass over a chunk of patients.

The per-patient engine (`series.home_series`, `evaluate.compute_trend`) works
on Python objects one patient at a time. Here the same steps run on flat numpy
arrays holding the rows of many patients at once (a patient code per row):

- `local_days`: local calendar day of UTC instants in an IANA zone, exactly as
  `datetime.astimezone(zone).date()` gives it (DST-aware);
- `chunk_series`: the trusted home daily series of every patient (the same
  filtering, duplicate removal, learning period, device coding and daily
  aggregation as `home_series`);
- `trend_screen`: the robust trend of every patient with
  `batch.batch_trends`, and which patients' rapid-decline verdict could
  possibly hold. The screen is conservative: a patient it clears has, with a
  wide margin, no rapid decline; the others get the exact per-patient trend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from backend.clinical.batch import BatchTrends, batch_trends
from backend.clinical.series import DailySeries
from backend.clinical.thresholds import Thresholds

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
US_PER_DAY = 86_400_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GRID_US = 3_600_000_000  # zone offsets sampled hourly; rows near a change are done exactly

# Screen margin (mL/year) on the slope and on the decision bound: far wider than
# the difference between the batch and the per-patient estimator (they agree to
# well under 0.1 mL/year; tests/unit/clinical/test_nightly.py).
SCREEN_MARGIN_ML_PER_YEAR = 5.0


class ZoneOffsets:
    """UTC offsets of zones, sampled on an hourly grid and kept between chunks."""

    def __init__(self) -> None:
        self._grids: dict[str, tuple[int, IntArray]] = {}

    def _grid(self, zone: str, lo_us: int, hi_us: int) -> tuple[int, IntArray]:
        have = self._grids.get(zone)
        if have is not None:
            start, offs = have
            if start <= lo_us and start + (offs.size - 1) * GRID_US >= hi_us:
                return have
            lo_us = min(lo_us, start)
            hi_us = max(hi_us, start + (offs.size - 1) * GRID_US)
        start = (lo_us // US_PER_DAY - 1) * US_PER_DAY
        n = (hi_us - start) // GRID_US + 2
        tz = ZoneInfo(zone)

        def offset_at(us: int) -> int:
            off = (EPOCH + timedelta(microseconds=us)).astimezone(tz).utcoffset()
            return 0 if off is None else round(off.total_seconds() * 1e6)

        # daily samples; hourly only inside the days whose offset changes
        per_day = US_PER_DAY // GRID_US
        n_days = (n - 1) // per_day + 2
        daily = np.array([offset_at(start + d * US_PER_DAY) for d in range(n_days)], np.int64)
        offs = np.repeat(daily[:-1], per_day)
        for d in np.flatnonzero(daily[1:] != daily[:-1]).tolist():
            for h in range(per_day):
                offs[d * per_day + h] = offset_at(start + d * US_PER_DAY + h * GRID_US)
        offs = np.append(offs, daily[-1])[:n]
        self._grids[zone] = (start, offs)
        return start, offs

    def local_days(self, t_us: IntArray, zone: str) -> IntArray:
        """Proleptic ordinal of the local calendar day of each UTC instant (µs)."""
        if t_us.size == 0:
            return np.empty(0, np.int64)
        start, offs = self._grid(zone, int(t_us.min()), int(t_us.max()))
        cell = (t_us - start) // GRID_US
        off = offs[cell]
        days = (t_us + off) // US_PER_DAY + EPOCH_ORDINAL
        changing = np.flatnonzero(offs[cell + 1] != off)
        if changing.size:
            tz = ZoneInfo(zone)
            for i in changing:
                moment = EPOCH + timedelta(microseconds=int(t_us[i]))
                days[i] = moment.astimezone(tz).date().toordinal()
        return days.astype(np.int64)


@dataclass(frozen=True, slots=True)
class ChunkSeries:
    """Daily series of patients 0..n-1 in flat arrays, sorted by (patient, day)."""

    patient: IntArray
    day: IntArray
    fev1_l: FloatArray
    device: IntArray
    n_sessions: IntArray
    start: IntArray  # first row of each patient (n + 1 entries)
    first_home_day: IntArray  # -1: no home session

    def of(self, code: int) -> DailySeries:
        a, b = int(self.start[code]), int(self.start[code + 1])
        first = int(self.first_home_day[code])
        return DailySeries(
            self.day[a:b],
            self.fev1_l[a:b],
            self.device[a:b],
            self.n_sessions[a:b],
            None if first < 0 else first,
        )


def chunk_series(
    patient: IntArray,
    t_us: IntArray,
    fev1_l: FloatArray,
    home: BoolArray,
    trusted: BoolArray,
    device: IntArray,
    *,
    zones: Sequence[str],
    plausible_min: FloatArray,
    plausible_max: FloatArray,
    learning_days: IntArray,
    best_of_day: BoolArray,
    offsets: ZoneOffsets | None = None,
) -> ChunkSeries:
    """`home_series` for every patient code 0..len(zones)-1 at once.

    Rows are sessions in the order `home_series` would see them (by patient,
    then time), already limited to the patient's window and as-of time.
    `device` is any per-row code of the device id (equal ids, equal codes);
    `trusted` is `is_trusted(grade)`. Per-patient arrays are indexed by code.
    """
    n = len(zones)
    offsets = offsets or ZoneOffsets()
    day = np.zeros(patient.size, np.int64)
    zone_of = np.asarray(zones, dtype=object)
    for zone in set(zones):
        rows = np.flatnonzero(zone_of[patient] == zone) if patient.size else patient
        if rows.size:
            day[rows] = offsets.local_days(t_us[rows], zone)

    first_home = np.full(n, np.iinfo(np.int64).max, np.int64)
    if patient.size:
        np.minimum.at(first_home, patient[home], day[home])
    first_home = np.where(first_home == np.iinfo(np.int64).max, -1, first_home)

    keep = home & trusted & (plausible_min[patient] <= fev1_l) & (fev1_l <= plausible_max[patient])
    idx = np.flatnonzero(keep)
    # exact duplicates (same instant, value and device) count once
    if idx.size:
        order = np.lexsort((device[idx], fev1_l[idx], t_us[idx], patient[idx]))
        s = idx[order]
        dup = np.zeros(s.size, bool)
        dup[1:] = (
            (patient[s[1:]] == patient[s[:-1]])
            & (t_us[s[1:]] == t_us[s[:-1]])
            & (fev1_l[s[1:]] == fev1_l[s[:-1]])
            & (device[s[1:]] == device[s[:-1]])
        )
        idx = np.sort(s[~dup])
    p, d, v, dv = patient[idx], day[idx], fev1_l[idx], device[idx]
    # device codes by first appearance within the patient (as home_series numbers them)
    if idx.size:
        width = int(dv.max()) + 1
        key = p * width + dv
        uniq, first_at, inverse = np.unique(key, return_index=True, return_inverse=True)
        by_first = np.lexsort((first_at, uniq // width))
        rank = np.empty(uniq.size, np.int64)
        grp = (uniq // width)[by_first]
        grp_start = np.searchsorted(grp, grp, side="left")
        rank[by_first] = np.arange(uniq.size) - grp_start
        dv = rank[inverse.reshape(-1)]
    # learning period from the first home session of any grade
    learn = d >= first_home[p] + learning_days[p]
    p, d, v, dv = p[learn], d[learn], v[learn], dv[learn]
    if p.size:
        order = np.lexsort((v, d, p))
        p, d, v, dv = p[order], d[order], v[order], dv[order]
        new = np.ones(p.size, bool)
        new[1:] = (p[1:] != p[:-1]) | (d[1:] != d[:-1])
        gstart = np.flatnonzero(new)
        counts = np.diff(np.append(gstart, p.size))
        lo = gstart + (counts - 1) // 2
        hi = gstart + counts // 2
        top = gstart + counts - 1
        gp = p[gstart]
        best = best_of_day[gp]
        val = np.where(best, v[top], 0.5 * (v[lo] + v[hi]))
        dev = np.where(best, dv[top], dv[lo])
        out_p, out_d = gp, d[gstart]
        out_n = counts.astype(np.int64)
    else:
        out_p = out_d = dev = out_n = np.empty(0, np.int64)
        val = np.empty(0, np.float64)
    start = np.searchsorted(out_p, np.arange(n + 1), side="left").astype(np.int64)
    return ChunkSeries(
        out_p.astype(np.int64),
        out_d.astype(np.int64),
        val.astype(np.float64),
        dev.astype(np.int64),
        out_n,
        start,
        first_home,
    )


def trend_screen(
    series: ChunkSeries,
    first_day: IntArray,
    last_day: IntArray,
    thresholds: Thresholds,
    *,
    include: BoolArray,
    margin: float = SCREEN_MARGIN_ML_PER_YEAR,
) -> tuple[BatchTrends, BoolArray]:
    """Batch trend over each patient's window [first_day, last_day] and the
    patients whose rapid-decline verdict could hold (all not in `include`).

    A patient is cleared only when her window has too few reading days or too
    short a span (computed on the same days as the exact estimator), or when
    the batch slope is above the rapid-decline threshold by `margin`, or the
    batch decision bound is at or above its limit by `margin`. Anything
    undefined (no estimate) is not cleared.
    """
    n = series.start.size - 1
    p = series.patient
    inwin = include[p] & (series.day >= first_day[p]) & (series.day <= last_day[p])
    bt = batch_trends(
        p[inwin],
        series.day[inwin].astype(np.float64),
        series.fev1_l[inwin],
        thresholds,
        device=series.device[inwin],
        n_patients=n,
    )
    # the same days the exact estimator sees: count and span are exact
    few = (bt.n_readings < max(2, thresholds.trend_min_readings)) | (
        bt.span_days < thresholds.trend_min_span_days
    )
    from scipy import stats

    q_dec = stats.t.ppf(
        0.5 + thresholds.rapid_decline_confidence / 2.0,
        np.maximum(1, np.floor(np.nan_to_num(bt.effective_n)) - 2),
    )
    upper = bt.slope_ml_per_year + q_dec * bt.se_ml_per_year
    with np.errstate(invalid="ignore"):
        clear_slope = bt.slope_ml_per_year > thresholds.rapid_decline_ml_per_year + margin
        clear_bound = upper >= thresholds.rapid_decline_ci_high_below_ml_per_year + margin
    cleared = few | clear_slope | clear_bound
    return bt, ~(include & cleared)
