"""Nightly evaluation of one patient: trend, trough schedule, alert candidates.

`evaluate_patient` uses only data measured at or before `as_of` and is
deterministic: the same history, time and thresholds give the same result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from statistics import NormalDist
from zoneinfo import ZoneInfo

from backend.clinical import rules
from backend.clinical.gli import FEV1, ReferenceInputError, age_on, fev1_reference, prefetch
from backend.clinical.model import (
    AlertCandidate,
    EffortDrift,
    Evaluation,
    NumberLike,
    PatientFacts,
    PatientHistory,
    RegimenEvent,
    SlopeEstimate,
    SpirometryReading,
    TrendResult,
    TrendSegment,
)
from backend.clinical.series import (
    DailySeries,
    ReadingColumns,
    day_to_date,
    home_series,
    last_home_at,
    latest_clinic,
    reading_columns,
)
from backend.clinical.thresholds import Thresholds
from backend.clinical.trend import decline_estimate, effort_drift, verdict, withhold_rapid_decline
from backend.clinical.troughs import current_item, on_treatment, trough_flags, trough_schedule

TREATMENT_BOUNDARY_KINDS = frozenset({"start", "resume", "stop", "interruption"})


@dataclass(frozen=True, slots=True)
class Segment:
    label: str
    key: str  # used in rapid-decline episode keys
    first_day: int
    last_day: int | None  # inclusive; None = open


def treatment_segments(
    regimens: Sequence[RegimenEvent], timezone: str, thresholds: Thresholds
) -> list[Segment]:
    """Split time at treatment starts/stops (and dose changes if configured).

    Slopes before and on treatment are estimated separately: sirolimus changes
    the slope (MILES: -12 vs +1 mL/month), so a window spanning a start would
    mix two courses.
    """
    zone = ZoneInfo(timezone)
    events = sorted(regimens, key=lambda e: e.effective_at)
    segments: list[Segment] = []
    current = Segment("before_treatment", "untreated", -(10**9), None)
    on = False
    for ev in events:
        boundary = ev.kind in TREATMENT_BOUNDARY_KINDS or (
            thresholds.split_at_dose_changes and ev.kind == "dose_change" and on
        )
        if not boundary:
            continue
        day = ev.effective_at.astimezone(zone).date()
        if ev.kind in ("start", "resume"):
            if on and ev.kind == "resume":
                continue
            on = True
            label, key = "on_treatment", f"on_treatment:{day.isoformat()}"
        elif ev.kind == "dose_change":
            label, key = f"dose_{day.isoformat()}", f"on_treatment:{day.isoformat()}"
        else:
            if not on:
                continue
            on = False
            label, key = "off_treatment", f"off_treatment:{day.isoformat()}"
        segments.append(Segment(current.label, current.key, current.first_day, day.toordinal() - 1))
        current = Segment(label, key, day.toordinal(), None)
    segments.append(current)
    return segments


def _percent_slope(
    facts: PatientFacts, slope_ml: float, level_l: float, first: date, last: date
) -> float | None:
    """Slope of FEV1 % predicted per year: d(100 F/P)/dt = 100 (F'/P - F P'/P^2)."""
    a0, a1 = age_on(facts.date_of_birth, first), age_on(facts.date_of_birth, last)
    try:
        r0 = fev1_reference(
            sex_at_birth=facts.sex_at_birth, age_years=a0, height_cm=facts.height_cm, fev1_l=max(level_l, 0.1)
        )
        r1 = fev1_reference(
            sex_at_birth=facts.sex_at_birth, age_years=a1, height_cm=facts.height_cm, fev1_l=max(level_l, 0.1)
        )
    except ReferenceInputError:
        return None
    if r0 is None or r1 is None:
        return None
    p = (r0.predicted_l + r1.predicted_l) / 2.0
    years = max((last - first).days / 365.25, 1e-9)
    dp = (r1.predicted_l - r0.predicted_l) / years if last > first else 0.0
    return 100.0 * ((slope_ml / 1000.0) / p - level_l * dp / (p * p))


def segment_trend(
    series: DailySeries, seg: Segment, as_of_day: int, thresholds: Thresholds
) -> tuple[TrendSegment, SlopeEstimate | None]:
    last = as_of_day if seg.last_day is None else min(seg.last_day, as_of_day)
    first = max(seg.first_day, last - 2 * thresholds.trend_window_days + 1)
    part = series.between(first, last)
    est = decline_estimate(part.day, part.fev1_l, part.device, thresholds) if len(part) >= 2 else None
    v = verdict(est, thresholds)
    if (
        v == "rapid_decline"
        and est is not None
        and withhold_rapid_decline(effort_drift(part.day, part.effort, part.device, thresholds))
    ):
        v = "declining" if est.ci_high < 0 else "stable"
    start = day_to_date(int(part.day[0])) if len(part) else day_to_date(max(first, 1))
    end = day_to_date(int(part.day[-1])) if len(part) else day_to_date(max(last, 1))
    return TrendSegment(
        label=seg.label,
        start=start,
        end=end,
        slope_ml_per_year=None if est is None else round(est.slope_ml_per_year, 1),
        ci_low=None if est is None else _bound(est.ci_low),
        ci_high=None if est is None else _bound(est.ci_high),
        n_readings=len(part),
        span_days=0.0 if est is None else est.span_days,
        verdict=v,
    ), est


def _bound(x: float | None, digits: int = 1) -> float | None:
    """An interval bound as reported: rounded, or None when the estimate has no
    interval (too few readings left after the device intercepts: an infinite bound)."""
    return None if x is None or not math.isfinite(x) else round(x, digits)


def expected_untreated_slope(facts: PatientFacts, thresholds: Thresholds) -> float:
    """Natural (untreated) FEV1 slope expected for her menopausal status, mL/yr."""
    if facts.menopausal_status == "premenopausal":
        return thresholds.natural_decline_premenopausal_ml_per_year
    if facts.menopausal_status == "postmenopausal":
        return thresholds.natural_decline_postmenopausal_ml_per_year
    return thresholds.natural_decline_unknown_ml_per_year


def compute_trend(
    facts: PatientFacts,
    series: DailySeries,
    regimens: Sequence[RegimenEvent],
    as_of: datetime,
    thresholds: Thresholds,
    clinic: SpirometryReading | None = None,
    *,
    with_segments: bool = True,
) -> tuple[TrendResult, Segment]:
    """Trend of the current treatment segment (at most `trend_window_days`), plus segments.

    The estimate is `trend.decline_estimate` and the verdict `trend.verdict`:
    the same rule the alerts (`rules.rapid_fev1_decline`) and the cohort replay use.
    """
    zone = ZoneInfo(facts.timezone)
    as_of_day = as_of.astimezone(zone).date().toordinal()
    segs = treatment_segments([r for r in regimens if r.effective_at <= as_of], facts.timezone, thresholds)
    current = segs[-1]
    first = max(as_of_day - thresholds.trend_window_days + 1, current.first_day)
    part = series.between(first, as_of_day)
    est = decline_estimate(part.day, part.fev1_l, part.device, thresholds) if len(part) >= 2 else None
    v = verdict(est, thresholds)
    confirm = thresholds.rapid_decline_confirm_days
    if v == "rapid_decline" and est is not None and confirm > 0:
        # the verdict must also hold on the window ending `confirm` days earlier
        end = as_of_day - confirm
        earlier = series.between(max(end - thresholds.trend_window_days + 1, current.first_day), end)
        est2 = (
            decline_estimate(earlier.day, earlier.fev1_l, earlier.device, thresholds)
            if len(earlier) >= 2
            else None
        )
        if verdict(est2, thresholds) != "rapid_decline":
            v = "declining" if est.ci_high < 0 else "stable"
    drift = effort_drift(part.day, part.effort, part.device, thresholds) if len(part) >= 2 else None
    withheld = v == "rapid_decline" and est is not None and withhold_rapid_decline(drift)
    if withheld and est is not None:
        v = "declining" if est.ci_high < 0 else "stable"
    pct = pct_lo = pct_hi = None
    level_pct = None
    if est is not None and len(part) >= 2:
        first_date, last_date = day_to_date(int(part.day[0])), day_to_date(int(part.day[-1]))
        # the two reference points below in one array evaluation (the same values)
        ages = (age_on(facts.date_of_birth, first_date), age_on(facts.date_of_birth, last_date))
        prefetch(facts.sex_at_birth, [(a, facts.height_cm) for a in ages], parameters=(FEV1,))
        pct = _percent_slope(facts, est.slope_ml_per_year, est.intercept_l, first_date, last_date)
        # the transform is linear and increasing in the slope: the interval maps over
        pct_lo = _percent_slope(facts, est.ci_low, est.intercept_l, first_date, last_date)
        pct_hi = _percent_slope(facts, est.ci_high, est.intercept_l, first_date, last_date)
        try:
            ref = fev1_reference(
                sex_at_birth=facts.sex_at_birth,
                age_years=age_on(facts.date_of_birth, last_date),
                height_cm=facts.height_cm,
                fev1_l=max(est.intercept_l, 0.1),
            )
        except ReferenceInputError:
            ref = None
        level_pct = None if ref is None else ref.percent_predicted
    learning_end = (
        None
        if series.first_home_day is None
        else day_to_date(series.first_home_day + thresholds.learning_days)
    )
    segments: list[TrendSegment] = []
    effect = effect_lo = effect_hi = None
    if with_segments:
        ests: dict[str, SlopeEstimate | None] = {}
        for seg in segs:
            ts, e = segment_trend(series, seg, as_of_day, thresholds)
            if ts.n_readings:
                segments.append(ts)
                ests[seg.label] = e
        before, on = ests.get("before_treatment"), ests.get("on_treatment")
        usable = {ts.label for ts in segments if ts.verdict != "insufficient_data"}
        if before is not None and on is not None and {"before_treatment", "on_treatment"} <= usable:
            z = NormalDist().inv_cdf(0.5 + thresholds.trend_confidence / 2)
            se = (before.se_ml_per_year**2 + on.se_ml_per_year**2) ** 0.5
            effect = round(on.slope_ml_per_year - before.slope_ml_per_year, 1)
            effect_lo, effect_hi = _bound(effect - z * se), _bound(effect + z * se)
    result = TrendResult(
        slope_ml_per_year=None if est is None else round(est.slope_ml_per_year, 1),
        ci_low=None if est is None else _bound(est.ci_low),
        ci_high=None if est is None else _bound(est.ci_high),
        slope_pct_pred_per_year=None if pct is None else round(pct, 2),
        n_readings=len(part),
        span_days=0.0 if est is None else est.span_days,
        verdict=v,
        window_start=day_to_date(int(part.day[0])) if len(part) else None,
        window_end=day_to_date(int(part.day[-1])) if len(part) else None,
        confidence=thresholds.trend_confidence,
        lag1_autocorrelation=None if est is None else round(est.lag1_autocorrelation, 3),
        effective_n=None if est is None else round(est.effective_n, 1),
        n_outliers=0 if est is None else est.n_outliers,
        segments=tuple(segments),
        treatment_effect_ml_per_year=effect,
        treatment_effect_ci_low=effect_lo,
        treatment_effect_ci_high=effect_hi,
        latest_clinic_fev1_l=None if clinic is None else clinic.fev1_l,
        latest_clinic_at=None if clinic is None else clinic.measured_at,
        learning_days=thresholds.learning_days,
        learning_period_end=learning_end,
        current_level_l=None if est is None else round(est.intercept_l, 3),
        current_pct_predicted=level_pct,
        slope_pct_pred_ci_low=_bound(pct_lo, 2),
        slope_pct_pred_ci_high=_bound(pct_hi, 2),
        level_shifts=() if est is None else tuple((day_to_date(d), ml) for d, ml in est.level_shifts),
        menopausal_status=facts.menopausal_status,
        expected_untreated_slope_ml_per_year=expected_untreated_slope(facts, thresholds),
        effort_drift_pct_per_year=None if drift is None else round(drift.slope_pct_per_year, 2),
        effort_drift_ci_low=None if drift is None else round(drift.ci_low, 2),
        effort_drift_ci_high=None if drift is None else round(drift.ci_high, 2),
        effort_drift_n_days=0 if drift is None else drift.n_days,
        effort_drift_detected=drift is not None and drift.detected,
        rapid_decline_withheld=withheld,
        effort_note=effort_note(drift, withheld, est, thresholds),
    )
    return result, current


def effort_note(
    drift: EffortDrift | None, withheld: bool, est: SlopeEstimate | None, thresholds: Thresholds
) -> str | None:
    """What the trend says about effort, and what was done about a rapid decline."""
    if drift is None or not drift.detected:
        return None
    level = round(100 * thresholds.effort_drift_confidence)
    text = (
        f"Effort may be worsening: PEF is falling relative to FEV1 by {-drift.slope_pct_per_year:.1f} % "
        f"a year ({level} % CI {-drift.ci_high:.1f} to {-drift.ci_low:.1f} %, {drift.n_days} reading "
        "days with PEF). PEF depends on effort far more than FEV1 (ATS/ERS 2019), so a submaximal "
        "blow lowers PEF first; check technique."
    )
    if withheld and est is not None:
        text += (
            f" The FEV1 slope ({est.slope_ml_per_year:.0f} mL/year) met the rapid-decline rule but is "
            "not reported as a confident decline: a data-quality review alert was raised instead. "
            "Confirm with supervised (clinic) spirometry or coached home sessions."
        )
    return text


def _treatment_context(
    history: PatientHistory, as_of: datetime, thresholds: Thresholds
) -> dict[str, NumberLike]:
    """Trough and adherence beside an on-treatment decline."""
    facts = history.facts
    troughs = [t for t in history.troughs if t.drawn_at <= as_of]
    latest = max(troughs, key=lambda t: (t.drawn_at, t.id), default=None)
    since = as_of - timedelta(days=thresholds.missed_doses_window_days)
    missed = sum(1 for d in history.doses if d.status == "missed" and since < d.taken_at <= as_of)
    return {
        "latest_trough_ng_ml": None if latest is None else latest.value_ng_ml,
        "latest_trough_at": None if latest is None else latest.drawn_at.date().isoformat(),
        "trough_target_low": facts.trough_target_low
        if facts.trough_target_low is not None
        else thresholds.trough_target_low,
        "trough_target_high": facts.trough_target_high
        if facts.trough_target_high is not None
        else thresholds.trough_target_high,
        "missed_doses": missed,
    }


def _fev1_alerts(
    history: PatientHistory,
    series: DailySeries,
    trend: TrendResult,
    segment: Segment,
    as_of: datetime,
    thresholds: Thresholds,
) -> list[AlertCandidate]:
    zone = ZoneInfo(history.facts.timezone)
    as_of_day = as_of.astimezone(zone).date().toordinal()
    out: list[AlertCandidate] = []
    window = timedelta(days=thresholds.symptom_window_days)
    side = [s for s in history.side_effects if s.onset_at <= as_of]
    decline = rules.rapid_fev1_decline(
        trend,
        thresholds,
        segment_key=segment.key,
        treatment_context=_treatment_context(history, as_of, thresholds),
    )
    if decline is not None:
        swapped = rules.fev1_drop_with_symptoms(decline, side, as_of - window, as_of, thresholds)
        out.append(swapped or decline)
    effort = rules.fev1_effort_drift(trend, thresholds, segment_key=segment.key)
    if effort is not None:
        out.append(effort)
    step = rules.fev1_level_drop(trend, segment_key=segment.key)
    if step is not None:
        out.append(step)
    drop = rules.find_acute_drop(series, as_of_day, thresholds)
    drop_alert = rules.acute_fev1_drop(drop, thresholds)
    if drop_alert is not None and drop is not None:
        onset = datetime.combine(day_to_date(drop.onset_day), datetime.min.time(), tzinfo=zone)
        swapped = rules.fev1_drop_with_symptoms(drop_alert, side, onset - window, as_of, thresholds)
        out.append(swapped or drop_alert)
    return out


def evaluate_patient(
    history: PatientHistory, *, as_of: datetime, thresholds: Thresholds, with_segments: bool = True
) -> Evaluation:
    """All rules for one patient at `as_of` (aware datetime).

    `with_segments=False` leaves the per-treatment-segment trends and the
    treatment effect out of `Evaluation.trend` (no rule reads them: the same
    candidates, for a caller that keeps only those, as the nightly pass)."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    facts = history.facts
    columns = reading_columns(history.readings)
    series = home_series(columns, facts.timezone, thresholds, as_of=as_of)
    return evaluate_prepared(
        history, series, as_of=as_of, thresholds=thresholds, with_segments=with_segments, columns=columns
    )


def evaluate_prepared(
    history: PatientHistory,
    series: DailySeries,
    *,
    as_of: datetime,
    thresholds: Thresholds,
    with_segments: bool = True,
    trend: tuple[TrendResult, Segment] | None = None,
    columns: ReadingColumns | None = None,
) -> Evaluation:
    """As `evaluate_patient`, with the home series already built (replay, batch).

    `series` must hold no day after the local date of `as_of`. `trend`, when
    given, is used instead of `compute_trend` (the nightly batch computes
    trends for many patients at once); it must be what `compute_trend` would
    give for the alert rules (its verdict and, for a rapid decline, its numbers
    and current segment). `columns`, when given, are `history.readings` as
    `series.reading_columns` gives them (read once for the series and here).
    """
    facts = history.facts
    zone = ZoneInfo(facts.timezone)
    series = series.upto(as_of.astimezone(zone).date().toordinal())
    if columns is None:
        columns = reading_columns(history.readings)
    clinic = latest_clinic(columns, thresholds, as_of=as_of)
    regimens = [r for r in history.regimens if r.effective_at <= as_of]
    if trend is None:
        trend = compute_trend(facts, series, regimens, as_of, thresholds, clinic, with_segments=with_segments)
    trend_result, segment = trend
    candidates: list[AlertCandidate] = _fev1_alerts(history, series, trend_result, segment, as_of, thresholds)
    treated = on_treatment(regimens, as_of) or (not regimens and facts.treatment_status == "on_sirolimus")
    start = rules.treatment_start_criteria(
        facts,
        series,
        clinic,
        as_of,
        thresholds,
        treated=treated,
        trend=trend_result,
        segment_key=segment.key,
    )
    if start is not None:
        candidates.append(start)

    troughs = [x for x in history.troughs if x.drawn_at <= as_of]
    doses = [d for d in history.doses if d.taken_at <= as_of]
    schedule = trough_schedule(
        regimens,
        troughs,
        facts.timezone,
        as_of,
        thresholds,
        assume_on_treatment=facts.treatment_status == "on_sirolimus",
        monitoring_since=facts.monitoring_since,
    )
    due = rules.trough_schedule_alert(current_item(schedule))
    if due is not None:
        candidates.append(due)
    if troughs:
        latest = max(troughs, key=lambda x: (x.drawn_at, x.id))
        flags = trough_flags(latest, doses, regimens, thresholds)
        oor = rules.trough_out_of_range(
            latest, flags, doses, regimens, facts, thresholds, fev1_verdict=trend_result.verdict
        )
        if oor is not None:
            candidates.append(oor)

    since = as_of - timedelta(days=thresholds.side_effect_lookback_days)
    for report in sorted(history.side_effects, key=lambda r: (r.onset_at, r.id)):
        if since <= report.onset_at <= as_of:
            alert = rules.side_effect_alert(report, thresholds, history.side_effects)
            if alert is not None:
                candidates.append(alert)
    for event in sorted(history.events, key=lambda e: (e.occurred_at, e.id)):
        if since <= event.occurred_at <= as_of:
            ev_alert = rules.lam_event_alert(event, thresholds)
            if ev_alert is not None:
                candidates.append(ev_alert)

    last_home = last_home_at(columns, as_of)
    overdue = rules.readings_overdue(facts, last_home, as_of, thresholds)
    if overdue is not None:
        candidates.append(overdue)
    if treated:
        missed = rules.repeated_missed_doses(doses, as_of, facts.timezone, thresholds)
        if missed is not None:
            candidates.append(missed)
    return Evaluation(
        patient_id=facts.patient_id,
        as_of=as_of,
        trend=trend_result,
        trough_schedule=schedule,
        candidates=tuple(candidates),
    )
