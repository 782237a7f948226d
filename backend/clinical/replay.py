"""Replay the nightly evaluation over a period (validation, cohorts, demos).

`first_flags` evaluates a patient every `step_days` from `start` to `end` as the
nightly pass would (each night sees only data up to that night) and returns the
first local date each rule fired. `fev1_first_flags` is the fast path used by the
validation script: it replays only the two FEV1 rules on a prepared daily
series and re-estimates the trend only on nights when the window's data changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from backend.clinical.evaluate import evaluate_prepared
from backend.clinical.model import PatientHistory, SlopeEstimate
from backend.clinical.rules import find_acute_drop
from backend.clinical.series import DailySeries, home_series
from backend.clinical.thresholds import Thresholds
from backend.clinical.trend import decline_estimate, effort_drift, verdict, withhold_rapid_decline


def end_of_local_day(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(timezone))


def first_flags(
    history: PatientHistory,
    start: date,
    end: date,
    thresholds: Thresholds,
    step_days: int = 1,
) -> dict[str, date]:
    """First local date on which each rule produced a candidate (nightly replay)."""
    tz = history.facts.timezone
    series = home_series(history.readings, tz, thresholds, as_of=end_of_local_day(end, tz))
    found: dict[str, date] = {}
    day = start
    while day <= end:
        ev = evaluate_prepared(
            history, series, as_of=end_of_local_day(day, tz), thresholds=thresholds, with_segments=False
        )
        for c in ev.candidates:
            found.setdefault(c.rule, day)
        day += timedelta(days=step_days)
    return found


@dataclass(frozen=True, slots=True)
class Fev1Flags:
    rapid_decline_day: int | None
    acute_drop_days: tuple[int, ...]  # onset-keyed episodes: first night each was flagged
    acute_drop_onsets: tuple[int, ...]
    final_estimate: SlopeEstimate | None
    # first night the rule's verdict was withheld for effort drift (the
    # data-quality review alert `fev1_effort_drift`), when it was
    effort_review_day: int | None = None


SlopeFn = Callable[[DailySeries], SlopeEstimate | None]


def fev1_first_flags(
    series: DailySeries,
    start_day: int,
    end_day: int,
    thresholds: Thresholds,
    *,
    segment_start_day: int | None = None,
    slope_fn: SlopeFn | None = None,
    decide: Callable[[SlopeEstimate | None], bool] | None = None,
    acute: bool = True,
    decline: bool = True,
) -> Fev1Flags:
    """Nightly replay of rapid decline and acute drop on a prepared series.

    Each night d uses the trailing window [d - window + 1, d] (not before
    `segment_start_day`). `slope_fn`/`decide` replace the detector (used for the
    least-squares comparator); by default the product's estimator and verdict.
    Acute-drop episodes are counted once per onset day (the episode key).
    With the default detector a rapid-decline verdict withheld for effort
    drift (`trend.withhold_rapid_decline`, as in `/trend`) is not a flag; the
    first such night is reported as `effort_review_day`.
    """
    window = thresholds.trend_window_days
    seg0 = -(10**9) if segment_start_day is None else segment_start_day

    def default_fn(s: DailySeries) -> SlopeEstimate | None:
        return decline_estimate(s.day, s.fev1_l, s.device, thresholds)

    fn = slope_fn or default_fn

    def default_decide(e: SlopeEstimate | None) -> bool:
        return verdict(e, thresholds) == "rapid_decline"

    dec = decide or default_decide
    check_effort = decide is None and slope_fn is None and series.effort is not None
    effort_day: int | None = None

    rapid: int | None = None
    last_key: tuple[int, int] | None = None
    last_flag = False
    est: SlopeEstimate | None = None
    confirm = thresholds.rapid_decline_confirm_days
    history: dict[int, bool] = {}
    drop_days: list[int] = []
    onsets: list[int] = []
    for d in range(start_day, end_day + 1):
        if decline and rapid is None:
            lo = int(np.searchsorted(series.day, max(d - window + 1, seg0), side="left"))
            hi = int(np.searchsorted(series.day, d, side="right"))
            key = (lo, hi)
            if key != last_key:
                last_key = key
                n = hi - lo
                if n >= thresholds.trend_min_readings and (
                    series.day[hi - 1] - series.day[lo] >= thresholds.trend_min_span_days
                ):
                    part = DailySeries(
                        series.day[lo:hi],
                        series.fev1_l[lo:hi],
                        series.device[lo:hi],
                        series.n_sessions[lo:hi],
                        series.first_home_day,
                        None if series.effort is None else series.effort[lo:hi],
                    )
                    est = fn(part)
                    last_flag = dec(est)
                    if (
                        last_flag
                        and check_effort
                        and withhold_rapid_decline(
                            effort_drift(part.day, part.effort, part.device, thresholds)
                        )
                    ):
                        last_flag = False
                        if effort_day is None:
                            effort_day = d
                else:
                    last_flag = False
            history[d] = last_flag
            if last_flag and (confirm == 0 or history.get(d - confirm, False)):
                rapid = d
        if acute:
            drop = find_acute_drop(series, d, thresholds)
            if drop is not None and drop.onset_day not in onsets:
                onsets.append(drop.onset_day)
                drop_days.append(d)
    return Fev1Flags(rapid, tuple(drop_days), tuple(onsets), est, effort_day)
