"""Alert rules: pure functions from facts to alert candidates.

Each rule returns `AlertCandidate`s (or None) with the rule id, a severity
('urgent' same day, 'review' within days, 'digest' in the daily summary), an
episode key that stays the same for one ongoing episode across nightly runs
(the alert store de-duplicates on it), the numbers behind the decision, a
plain explanation for clinicians (never the patient's name) and, where useful,
a message for the patient. Every threshold comes from `Thresholds`, whose
fields cite their sources (`THRESHOLD_SOURCES`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from math import ceil, floor
from zoneinfo import ZoneInfo

import numpy as np

from backend.clinical import catalog
from backend.clinical.gli import ReferenceInputError, age_on, fev1_reference
from backend.clinical.model import (
    AlertCandidate,
    DoseLog,
    LamEvent,
    NumberLike,
    PatientFacts,
    RegimenEvent,
    SideEffectReport,
    SpirometryReading,
    TrendResult,
    TroughFlags,
    TroughResult,
    TroughScheduleItem,
)
from backend.clinical.series import DailySeries, day_to_date
from backend.clinical.thresholds import Thresholds

EMERGENCY_NOW = (
    "Seek emergency care now (call your local emergency number): sudden or severe "
    "breathlessness or chest pain can be a collapsed lung. Then let your care team know."
)
CARE_TEAM_TODAY = "Please contact your care team today."
CARE_TEAM_REVIEW = (
    "Your care team has been told and will review this in the next few days. If you become "
    "suddenly breathless or have chest pain, seek emergency care now."
)
CARE_TEAM_DIGEST = (
    "Thank you. Your care team will see this in their daily summary. If you become "
    "suddenly breathless or have chest pain, seek emergency care now."
)
_ADVICE = {"review": CARE_TEAM_REVIEW, "digest": CARE_TEAM_DIGEST}


def patient_advice(severity: str, *, emergency: bool = False) -> str:
    """What the patient is told to do, derived from the alert's severity alone so
    that the patient and the clinic never read different urgencies: 'urgent' is
    "today" (or "emergency now" when the report may be a pneumothorax), 'review'
    within days and 'digest' the daily summary, both with the emergency safety net
    (domain.md §5). Emergency advice is only given with an urgent alert."""
    if severity == "urgent":
        return EMERGENCY_NOW if emergency else CARE_TEAM_TODAY
    if emergency:
        raise ValueError("emergency advice needs an urgent alert")
    return _ADVICE[severity]


def patient_message(severity: str, context: str = "", *, emergency: bool = False) -> str:
    """A patient message: what happened (`context`, no urgency words) and the advice
    for `severity` (`patient_advice`)."""
    advice = patient_advice(severity, emergency=emergency)
    return f"{context} {advice}" if context else advice


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(float(x), nd)


def shown_below(x: float, nd: int = 1) -> str:
    """A value compared with a "<" threshold, for display: rounded down, so a value
    below the limit never reads as the limit (69.96 % is "69.9 %", not "70 %")."""
    scale = 10**nd
    # the small epsilon keeps a value stored as 69.8999999 from showing as 69.8
    return f"{floor(float(x) * scale + 1e-9) / scale:.{nd}f}"


# ----------------------------------------------------------- rapid decline


def rapid_fev1_decline(
    trend: TrendResult,
    thresholds: Thresholds,
    *,
    segment_key: str,
    treatment_context: dict[str, NumberLike] | None = None,
) -> AlertCandidate | None:
    """Home FEV1 slope <= -90 mL/yr with a statistically clear decline.

    Source: ATS/JRS 2016 (decline >= 90 mL/yr is a treatment criterion); Gupta
    et al., Chest 2019 (untreated decline 89 ± 53 mL/yr). The verdict needs the
    minimum span and reading count and the CI's upper bound below
    `rapid_decline_ci_high_below_ml_per_year` (see trend.verdict). The episode
    key names the treatment segment (untreated, or on treatment since a date),
    so it stays the same while the decline persists in that segment.
    """
    if trend.verdict != "rapid_decline" or trend.slope_ml_per_year is None:
        return None
    level = round(100 * trend.confidence)
    numbers: dict[str, NumberLike] = {
        "slope_ml_per_year": _r(trend.slope_ml_per_year),
        "ci_low_ml_per_year": _r(trend.ci_low),
        "ci_high_ml_per_year": _r(trend.ci_high),
        "confidence": trend.confidence,
        "slope_pct_pred_per_year": _r(trend.slope_pct_pred_per_year, 2),
        "n_readings": trend.n_readings,
        "span_days": _r(trend.span_days, 0),
        "lag1_autocorrelation": _r(trend.lag1_autocorrelation, 2),
        "effective_n": _r(trend.effective_n, 0),
        "threshold_ml_per_year": thresholds.rapid_decline_ml_per_year,
        "window_start": None if trend.window_start is None else trend.window_start.isoformat(),
        "segment": segment_key,
    }
    treated = segment_key.startswith("on_treatment")
    basis = "the untreated rate of the ATS/JRS 2016 criterion" if treated else "ATS/JRS 2016"
    explanation = (
        f"Home FEV1 is falling by {-trend.slope_ml_per_year:.0f} mL/year "
        f"({level} % CI {-(trend.ci_high or 0):.0f} to {-(trend.ci_low or 0):.0f} mL/year decline) "
        f"over {trend.span_days:.0f} days ({trend.n_readings} reading days from "
        f"{trend.window_start}; {segment_key.replace('_', ' ')}). Threshold: decline of "
        f"{-thresholds.rapid_decline_ml_per_year:.0f} mL/year or more ({basis}), with "
        f"the interval excluding a stable course. The interval allows for day-to-day "
        f"correlation of home readings (lag-1 r = {trend.lag1_autocorrelation or 0:.2f}, "
        f"effective n {trend.effective_n or 0:.0f})."
    )
    if treated:
        # on sirolimus the question is not whether to start but why it is not working
        ctx = treatment_context or {}
        numbers.update({f"context_{k}": v for k, v in ctx.items()})
        explanation = "Continued decline on treatment. " + explanation
        trough = ctx.get("latest_trough_ng_ml")
        if trough is not None:
            explanation += (
                f" Latest sirolimus trough {trough} ng/mL on {ctx.get('latest_trough_at')} "
                f"(target {ctx.get('trough_target_low')}-{ctx.get('trough_target_high')} ng/mL)."
            )
        else:
            explanation += " No sirolimus trough on record."
        explanation += (
            f" {ctx.get('missed_doses', 0)} missed dose(s) logged in the last "
            f"{thresholds.missed_doses_window_days} days. Check adherence and the trough level "
            "before calling it progression."
        )
    if trend.latest_clinic_fev1_l is not None and trend.latest_clinic_at is not None:
        explanation += (
            f" Latest clinic FEV1 {trend.latest_clinic_fev1_l:.2f} L on "
            f"{trend.latest_clinic_at.date().isoformat()} (reported separately)."
        )
    return AlertCandidate(
        rule="rapid_fev1_decline",
        severity="review",
        episode_key=f"rapid_fev1_decline:{segment_key}",
        numbers=numbers,
        explanation=explanation,
        patient_message=None,
    )


def fev1_effort_drift(
    trend: TrendResult, thresholds: Thresholds, *, segment_key: str
) -> AlertCandidate | None:
    """Data-quality review: FEV1 met the rapid-decline rule while effort seems to worsen.

    Raised instead of `rapid_fev1_decline` when the trend withheld the verdict
    (`trend.withhold_rapid_decline`): PEF fell relative to FEV1 over the same
    window (ATS/ERS 2019: PEF is the most effort-dependent index), so the fall
    may be technique, not lung function. Same episode scheme as the decline.
    """
    if not trend.rapid_decline_withheld or trend.slope_ml_per_year is None:
        return None
    numbers: dict[str, NumberLike] = {
        "slope_ml_per_year": _r(trend.slope_ml_per_year),
        "ci_low_ml_per_year": _r(trend.ci_low),
        "ci_high_ml_per_year": _r(trend.ci_high),
        "effort_drift_pct_per_year": _r(trend.effort_drift_pct_per_year, 2),
        "effort_drift_ci_low": _r(trend.effort_drift_ci_low, 2),
        "effort_drift_ci_high": _r(trend.effort_drift_ci_high, 2),
        "effort_drift_n_days": trend.effort_drift_n_days,
        "effort_drift_threshold_pct_per_year": -thresholds.effort_drift_min_pct_per_year,
        "n_readings": trend.n_readings,
        "span_days": _r(trend.span_days, 0),
        "window_start": None if trend.window_start is None else trend.window_start.isoformat(),
        "segment": segment_key,
    }
    explanation = (
        f"Home FEV1 is falling by {-trend.slope_ml_per_year:.0f} mL/year over {trend.span_days:.0f} days, "
        f"but PEF is falling faster than FEV1 (PEF/FEV1 {trend.effort_drift_pct_per_year or 0:+.1f} % a "
        f"year, {round(100 * thresholds.effort_drift_confidence)} % CI "
        f"{trend.effort_drift_ci_low or 0:+.1f} to {trend.effort_drift_ci_high or 0:+.1f}): effort may be "
        "worsening. Not reported as a rapid decline. Check technique (watch or coach a session) and "
        "confirm FEV1 with clinic spirometry before calling it progression."
    )
    return AlertCandidate(
        rule="fev1_effort_drift",
        severity="review",
        episode_key=f"fev1_effort_drift:{segment_key}",
        numbers=numbers,
        explanation=explanation,
        patient_message=None,
    )


def fev1_level_drop(trend: TrendResult, *, segment_key: str) -> AlertCandidate | None:
    """Data-quality review: home FEV1 stepped down and the trend treats it as a change of level.

    A level shift is segmented out of the slope (`trend.decline_estimate`), so a
    step down counts as neither decline nor rapid decline. That is right for a
    replacement device reading low without a new serial, but a step can also be
    a real loss (pneumothorax in ~70 % of women with LAM, chylous effusion,
    infection that has not recovered): the care team is asked to check which.
    The latest segmented drop of the current trend; one episode per treatment
    segment (the step's date can move by days between nights, so it is not in
    the key): once a clinician resolves it, a later step in the same segment
    raises nothing new here (a sudden one is the acute-drop rule's).
    """
    drops = [(d, ml) for d, ml in trend.level_shifts if ml < 0]
    if not drops or trend.slope_ml_per_year is None:
        return None
    day, ml = drops[-1]
    numbers: dict[str, NumberLike] = {
        "step_ml": _r(ml, 0),
        "step_from": day.isoformat(),
        "slope_ml_per_year": _r(trend.slope_ml_per_year),
        "ci_low_ml_per_year": _r(trend.ci_low),
        "ci_high_ml_per_year": _r(trend.ci_high),
        "n_readings": trend.n_readings,
        "span_days": _r(trend.span_days, 0),
        "window_start": None if trend.window_start is None else trend.window_start.isoformat(),
        "segment": segment_key,
    }
    explanation = (
        f"Home FEV1 has been about {-ml:.0f} mL lower since {day.isoformat()}. The trend counts this "
        f"step as a change of level, not in its slope ({trend.slope_ml_per_year:+.0f} mL/year over the "
        "window). It can be the device (replaced or re-calibrated without a new serial number) or a "
        "real loss (pneumothorax, chylous effusion, an infection that has not recovered): ask whether "
        "her device changed, and if not, confirm with clinic spirometry."
    )
    return AlertCandidate(
        rule="fev1_level_drop",
        severity="review",
        episode_key=f"fev1_level_drop:{segment_key}",
        numbers=numbers,
        explanation=explanation,
        patient_message=None,
    )


# -------------------------------------------------------------- acute drop


@dataclass(frozen=True, slots=True)
class AcuteDrop:
    onset_day: int
    last_day: int
    baseline_l: float
    n_baseline: int
    window_mean_l: float
    window_max_l: float
    n_window: int
    drop_fraction: float  # of the window mean below baseline
    noise_sd_l: float | None = None  # personal day-to-day noise, None = not estimated
    n_noise_pairs: int = 0
    limit_l: float | None = None  # value the readings had to be at or below


def personal_noise_sd(
    series: DailySeries, as_of_day: int, thresholds: Thresholds
) -> tuple[float | None, int]:
    """Robust within-person SD of daily home FEV1 and the number of pairs behind it.

    Uses the differences between consecutive reading days on the same device
    (at most `acute_baseline_days` apart) in the last `acute_noise_lookback_days`:
    SD = 1.4826 x MAD(differences) / sqrt(2). Differences remove the patient's
    level and slow trends; the median makes the estimate insensitive to a few
    submaximal sessions, device changes or an ongoing drop. Returns (None, pairs)
    when there are fewer than `acute_noise_min_pairs` pairs.
    """
    t = thresholds
    s = series.between(as_of_day - t.acute_noise_lookback_days + 1, as_of_day)
    if len(s) < 2:
        return None, 0
    gap = np.diff(s.day)
    keep = (s.device[1:] == s.device[:-1]) & (gap <= t.acute_baseline_days)
    diff = np.diff(s.fev1_l)[keep]
    n_pairs = int(diff.size)
    if n_pairs < max(t.acute_noise_min_pairs, 1):
        return None, n_pairs
    mad = float(np.median(np.abs(diff - np.median(diff))))
    return 1.4826 * mad / np.sqrt(2.0), n_pairs


def find_acute_drop(series: DailySeries, as_of_day: int, thresholds: Thresholds) -> AcuteDrop | None:
    """Bjortuft 1993: FEV1 >= 10 % below the mean of the previous 7 days,
    persisting >= 2 days, and (product rule) clear of the patient's own noise.

    For every candidate onset day in the last `acute_lookback_days`, the
    baseline is the mean of the daily values in the `acute_baseline_days`
    calendar days before it (at least `acute_baseline_min_readings`), and the
    drop persists if every daily value from the onset to the latest reading is
    at or below the limit (`acute_drop_statistic="all"`, the default; "mean"
    uses the mean of those values instead, more sensitive and less specific;
    see VALIDATION.md), over at least `acute_persistence_days` calendar days and
    two reading days. The earliest such onset is returned, so the episode (and
    its key) stays the same while the drop persists. Only readings on the device
    of the latest reading are compared (a device change is not a drop). The
    latest reading must be recent (within the persistence period of
    `as_of_day`). Vectorised over candidate onsets.

    Limit = min((1 - fraction) x baseline, baseline - z x noise SD), with
    z = `acute_drop_noise_z` and the noise SD from `personal_noise_sd`. Home FEV1
    noise is roughly absolute (SD 120-200 mL), so at a low FEV1 a 10 % drop lies
    within the noise and stable patients would be alerted several times a year;
    the noise term only ever makes the rule stricter, never more sensitive than
    the published 10 %. Without enough history for a noise estimate, or with
    z = 0, the plain Bjortuft rule applies.
    """
    t = thresholds
    first = as_of_day - t.acute_lookback_days - t.acute_baseline_days
    s = series.between(first, as_of_day)
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
    hi = np.arange(n)  # baseline = days strictly before the onset
    n_base = hi - lo
    base = np.divide(csum[hi] - csum[lo], n_base, out=np.zeros(n), where=n_base > 0)
    # suffix max and mean from each onset to the latest reading
    suffix_max = np.maximum.accumulate(val[::-1])[::-1]
    n_win = n - np.arange(n)
    win_mean = (csum[n] - csum[np.arange(n)]) / n_win
    limit = (1.0 - t.acute_drop_fraction) * base
    noise_sd: float | None = None
    n_pairs = 0
    if t.acute_drop_noise_z > 0:
        noise_sd, n_pairs = personal_noise_sd(series, as_of_day, t)
        if noise_sd is not None:
            limit = np.minimum(limit, base - t.acute_drop_noise_z * noise_sd)
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
    return AcuteDrop(
        onset_day=int(day[k]),
        last_day=last_day,
        baseline_l=float(base[k]),
        n_baseline=int(n_base[k]),
        window_mean_l=float(win_mean[k]),
        window_max_l=float(suffix_max[k]),
        n_window=int(n_win[k]),
        drop_fraction=float(1.0 - win_mean[k] / base[k]),
        noise_sd_l=noise_sd,
        n_noise_pairs=n_pairs,
        limit_l=float(limit[k]),
    )


def acute_fev1_drop(drop: AcuteDrop | None, thresholds: Thresholds) -> AlertCandidate | None:
    if drop is None:
        return None
    onset = day_to_date(drop.onset_day)
    numbers: dict[str, NumberLike] = {
        "baseline_fev1_l": _r(drop.baseline_l, 3),
        "baseline_readings": drop.n_baseline,
        "window_mean_fev1_l": _r(drop.window_mean_l, 3),
        "window_max_fev1_l": _r(drop.window_max_l, 3),
        "window_readings": drop.n_window,
        "drop_pct": _r(100 * drop.drop_fraction, 1),
        "threshold_pct": 100 * thresholds.acute_drop_fraction,
        "onset": onset.isoformat(),
        "latest": day_to_date(drop.last_day).isoformat(),
        "noise_sd_ml": None if drop.noise_sd_l is None else _r(1000 * drop.noise_sd_l, 0),
        "noise_pairs": drop.n_noise_pairs,
        "noise_z": thresholds.acute_drop_noise_z,
        "limit_fev1_l": _r(drop.limit_l, 3),
    }
    explanation = (
        f"Home FEV1 has been at least {100 * thresholds.acute_drop_fraction:.0f} % below "
        f"the personal baseline since {onset.isoformat()}: mean {drop.window_mean_l:.2f} L "
        f"over {drop.n_window} reading days vs baseline {drop.baseline_l:.2f} L (mean of "
        f"{drop.n_baseline} reading days in the {thresholds.acute_baseline_days} days before), "
        f"a {100 * drop.drop_fraction:.0f} % drop (rule of Bjortuft et al., ERJ 1993)."
    )
    if drop.noise_sd_l is not None and drop.limit_l is not None:
        explanation += (
            f" Limit {drop.limit_l:.2f} L: the stricter of "
            f"{100 * thresholds.acute_drop_fraction:.0f} % and "
            f"{thresholds.acute_drop_noise_z:g} x this patient's usual day-to-day variation "
            f"({1000 * drop.noise_sd_l:.0f} mL over {drop.n_noise_pairs} pairs of readings)."
        )
    return AlertCandidate(
        rule="acute_fev1_drop",
        severity="review",
        episode_key=f"acute_fev1_drop:{onset.isoformat()}",
        numbers=numbers,
        explanation=explanation,
        patient_message=patient_message("review", "Your recent breathing tests are lower than usual."),
    )


# --------------------------------------------------- drop with symptoms


def side_effect_grade(report: SideEffectReport) -> int:
    """CTCAE grade: the clinician's grade when given, else the PRO-CTCAE severity."""
    if report.ctcae_grade is not None:
        return report.ctcae_grade
    return catalog.PRO_CTCAE_SEVERITY.get(report.severity, 0)


def is_respiratory_symptom(report: SideEffectReport, thresholds: Thresholds) -> bool:
    """New cough, breathlessness, chest infection / pneumonitis, or fever."""
    term = catalog.SIDE_EFFECT_TERMS.get(report.term)
    fever = report.temperature_c is not None and report.temperature_c >= thresholds.fever_c
    return fever or (term is not None and term.respiratory and side_effect_grade(report) >= 1)


def fev1_drop_with_symptoms(
    fev1_alert: AlertCandidate,
    side_effects: Iterable[SideEffectReport],
    since: datetime,
    as_of: datetime,
    thresholds: Thresholds,
) -> AlertCandidate | None:
    """A decline or drop with new respiratory symptoms or fever is a
    "progression or pneumonitis / infection?" question (domain.md §5); it
    replaces the plain FEV1 alert. `since` is the start of the symptom window
    (drop onset or as_of, minus `symptom_window_days`).
    """
    symptoms = sorted(
        (r for r in side_effects if since <= r.onset_at <= as_of and is_respiratory_symptom(r, thresholds)),
        key=lambda r: r.onset_at,
    )
    if not symptoms:
        return None
    names: set[str] = set()
    for r in symptoms:
        term = catalog.SIDE_EFFECT_TERMS.get(r.term)
        if term is not None and term.respiratory and side_effect_grade(r) >= 1:
            names.add(term.ctcae_term.lower())
        if r.temperature_c is not None and r.temperature_c >= thresholds.fever_c:
            names.add(f"fever {r.temperature_c:.1f} °C")
    numbers = dict(fev1_alert.numbers)
    numbers["underlying_rule"] = fev1_alert.rule
    numbers["symptom_reports"] = len(symptoms)
    numbers["first_symptom_at"] = symptoms[0].onset_at.isoformat()
    max_temp = max((r.temperature_c for r in symptoms if r.temperature_c is not None), default=None)
    numbers["max_temperature_c"] = max_temp
    return AlertCandidate(
        rule="fev1_drop_with_symptoms",
        severity="review",
        episode_key=f"fev1_drop_with_symptoms:{fev1_alert.episode_key}",
        numbers=numbers,
        explanation=(
            f"FEV1 fall with new respiratory symptoms ({', '.join(sorted(names))}): progression, "
            f"or pneumonitis / infection? " + fev1_alert.explanation
        ),
        patient_message=patient_message(
            "review", "Your breathing tests are lower than usual and you reported new symptoms."
        ),
    )


# ------------------------------------------------ start criteria (untreated)

# The rule's id; alerts stored under the FEV1-only rule it replaced carry the old
# id until migrated, and the alert filter accepts it (model.RULE_ALIASES).
START_CRITERIA_RULE = "treatment_start_criteria"

# criteria_met codes, in the order they are listed
START_CRITERIA = (
    "fev1_below_pct_predicted",
    "rapid_decline_untreated",
    "dlco_below_pct_predicted",
    "symptomatic_chylous_effusion",
    "large_angiomyolipoma",
    "tsc_lam",
)


def _fev1_pct_criterion(
    facts: PatientFacts,
    series: DailySeries,
    clinic: SpirometryReading | None,
    as_of: datetime,
    thresholds: Thresholds,
) -> tuple[dict[str, NumberLike], str] | None:
    """FEV1 < `start_criterion_pct_predicted` (GLI Global): the median of home daily
    values over the last `start_criterion_home_days` (at least
    `start_criterion_min_readings`) when available, else the latest clinic value
    of the last year."""
    zone = ZoneInfo(facts.timezone)
    today = as_of.astimezone(zone).date()
    recent = series.between(today.toordinal() - thresholds.start_criterion_home_days + 1, today.toordinal())
    if len(recent) >= thresholds.start_criterion_min_readings:
        value = float(np.median(recent.fev1_l))
        source = (
            f"median of {len(recent)} home reading days in the last "
            f"{thresholds.start_criterion_home_days} days"
        )
        on = today
    elif clinic is not None and (as_of - clinic.measured_at) <= timedelta(days=365):
        value = clinic.fev1_l
        on = clinic.measured_at.astimezone(zone).date()
        source = f"clinic spirometry on {on.isoformat()}"
    else:
        return None
    try:
        ref = fev1_reference(
            sex_at_birth=facts.sex_at_birth,
            age_years=age_on(facts.date_of_birth, on),
            height_cm=facts.height_cm,
            fev1_l=value,
        )
    except ReferenceInputError:
        return None  # no % predicted for this profile (the readings say why)
    if ref is None or ref.percent_predicted >= thresholds.start_criterion_pct_predicted:
        return None
    numbers: dict[str, NumberLike] = {
        "fev1_l": round(value, 3),
        "predicted_l": ref.predicted_l,
        "percent_predicted": ref.percent_predicted,
        "z_score": ref.z_score,
        "threshold_pct_predicted": thresholds.start_criterion_pct_predicted,
        "source": source,
    }
    sentence = (
        f"FEV1 {value:.2f} L is {shown_below(ref.percent_predicted)} % predicted (GLI Global, "
        f"predicted {ref.predicted_l:.2f} L; {source}), under the "
        f"{thresholds.start_criterion_pct_predicted:g} % predicted criterion of ATS/JRS 2016."
    )
    return numbers, sentence


def treatment_start_criteria(
    facts: PatientFacts,
    series: DailySeries,
    clinic: SpirometryReading | None,
    as_of: datetime,
    thresholds: Thresholds,
    *,
    treated: bool,
    trend: TrendResult | None = None,
    segment_key: str = "untreated",
) -> AlertCandidate | None:
    """An untreated patient who meets a criterion for starting sirolimus.

    ATS/JRS 2016 (McCormack et al., AJRCCM 2016) recommends sirolimus for abnormal
    or declining lung function and suggests it for problematic chylous effusions;
    the 2012 International TSC Consensus and EXIST-2 treat angiomyolipomas of 3 cm
    or more. Criteria, each with its threshold in `Thresholds`:
    FEV1 < 70 % predicted; a rapid decline (the trend's verdict, >= 90 mL/yr) while
    untreated; DLCO < 60 % predicted measured within `start_criterion_dlco_max_age_days`
    (product default, not from a guideline); a symptomatic chylous effusion; an
    angiomyolipoma >= 3 cm; TSC-LAM. One alert lists every criterion met
    (`criteria_met`, comma-separated, in `START_CRITERIA` order); it is for the
    care team to weigh, not a prescription.
    """
    if treated or facts.treatment_status not in ("untreated", "stopped"):
        return None
    today = as_of.astimezone(ZoneInfo(facts.timezone)).date()
    met: list[str] = []
    numbers: dict[str, NumberLike] = {}
    sentences: list[str] = []

    fev1 = _fev1_pct_criterion(facts, series, clinic, as_of, thresholds)
    if fev1 is not None:
        met.append("fev1_below_pct_predicted")
        numbers.update(fev1[0])
        sentences.append(fev1[1])

    if (
        thresholds.start_criterion_rapid_decline
        and trend is not None
        and trend.verdict == "rapid_decline"
        and trend.slope_ml_per_year is not None
        and not segment_key.startswith("on_treatment")
    ):
        met.append("rapid_decline_untreated")
        numbers["slope_ml_per_year"] = _r(trend.slope_ml_per_year)
        numbers["slope_threshold_ml_per_year"] = thresholds.rapid_decline_ml_per_year
        sentences.append(
            f"Home FEV1 is falling by {-trend.slope_ml_per_year:.0f} mL/year while untreated "
            f"(decline of {-thresholds.rapid_decline_ml_per_year:.0f} mL/year or more, ATS/JRS 2016)."
        )

    dlco = facts.dlco_percent_predicted
    measured = facts.dlco_measured_on
    if dlco is not None and measured is not None:
        age_days = (today - measured).days
        if dlco < thresholds.start_criterion_dlco_pct_predicted and (
            0 <= age_days <= thresholds.start_criterion_dlco_max_age_days
        ):
            met.append("dlco_below_pct_predicted")
            numbers["dlco_percent_predicted"] = dlco
            numbers["dlco_ml_min_mmhg"] = facts.dlco_ml_min_mmhg
            numbers["dlco_measured_on"] = measured.isoformat()
            numbers["dlco_threshold_pct_predicted"] = thresholds.start_criterion_dlco_pct_predicted
            sentences.append(
                f"DLCO {shown_below(dlco)} % predicted on {measured.isoformat()}: below "
                f"{thresholds.start_criterion_dlco_pct_predicted:g} % predicted (product default, "
                "not from a guideline)."
            )

    if facts.chylous_effusion != "absent" and facts.chylous_effusion_symptomatic:
        met.append("symptomatic_chylous_effusion")
        numbers["chylous_effusion"] = facts.chylous_effusion
        numbers["chylous_effusion_date"] = (
            None if facts.chylous_effusion_date is None else facts.chylous_effusion_date.isoformat()
        )
        where = {"pleural": "pleural", "ascites": "ascites", "both": "pleural and ascites"}.get(
            facts.chylous_effusion, facts.chylous_effusion
        )
        sentences.append(f"Symptomatic chylous effusion ({where}): sirolimus is suggested (ATS/JRS 2016).")

    aml = facts.aml_largest_cm
    if aml is not None and aml >= thresholds.start_criterion_aml_cm:
        met.append("large_angiomyolipoma")
        numbers["aml_largest_cm"] = aml
        numbers["aml_imaging_date"] = (
            None if facts.aml_imaging_date is None else facts.aml_imaging_date.isoformat()
        )
        numbers["aml_threshold_cm"] = thresholds.start_criterion_aml_cm
        sentences.append(
            f"Renal angiomyolipoma {aml:g} cm: {thresholds.start_criterion_aml_cm:g} cm or more "
            "(2012 International TSC Consensus; EXIST-2)."
        )

    if thresholds.start_criterion_tsc_lam and facts.lam_type == "tsc":
        met.append("tsc_lam")
        numbers["lam_type"] = facts.lam_type
        sentences.append("TSC-LAM (LAM with tuberous sclerosis complex).")

    if not met:
        return None
    numbers = {"criteria_met": ",".join(met), "criteria_count": len(met), **numbers}
    explanation = (
        f"Not on sirolimus and {len(met)} treatment start criteri{'on' if len(met) == 1 else 'a'} "
        f"met: {', '.join(c.replace('_', ' ') for c in met)}. "
        + " ".join(sentences)
        + " For the care team to weigh; not a prescription."
    )
    return AlertCandidate(
        rule=START_CRITERIA_RULE,
        severity="review",
        episode_key=START_CRITERIA_RULE,
        numbers=numbers,
        explanation=explanation,
        patient_message=None,
    )


# ----------------------------------------------------------- trough schedule


def trough_schedule_alert(item: TroughScheduleItem | None) -> AlertCandidate | None:
    """'due' / 'overdue' -> trough_draw_due (digest); 'missed' -> trough_draw_missed
    (review). The key names the reason and the due date (Rapamune label §2)."""
    if item is None or item.status in ("upcoming", "done"):
        return None
    numbers: dict[str, NumberLike] = {
        "reason": item.reason,
        "anchor_date": item.anchor_date.isoformat(),
        "due_date": item.due_date.isoformat(),
        "window_start": item.window_start.isoformat(),
        "window_end": item.window_end.isoformat(),
        "missed_after": item.missed_after.isoformat(),
        "status": item.status,
    }
    what = {
        "start": "after starting sirolimus",
        "resume": "after resuming sirolimus",
        "dose_change": "after a dose change",
        "interacting_drug": "after an interacting drug was started or stopped",
        "maintenance": "maintenance (every 3 months once stable)",
    }.get(item.reason, item.reason)
    if item.status == "missed":
        return AlertCandidate(
            rule="trough_draw_missed",
            severity="review",
            episode_key=f"trough_draw_missed:{item.reason}:{item.due_date.isoformat()}",
            numbers=numbers,
            explanation=(
                f"No sirolimus trough recorded for the draw due {item.due_date.isoformat()} "
                f"({what}; window {item.window_start.isoformat()} to "
                f"{item.window_end.isoformat()}, missed after {item.missed_after.isoformat()})."
            ),
            patient_message=(
                "Your sirolimus blood test is overdue. Please contact your care team to arrange it."
            ),
        )
    return AlertCandidate(
        rule="trough_draw_due",
        severity="digest",
        episode_key=f"trough_draw_due:{item.reason}:{item.due_date.isoformat()}",
        numbers=numbers,
        explanation=(
            f"Sirolimus trough due {item.due_date.isoformat()} ({what}; window "
            f"{item.window_start.isoformat()} to {item.window_end.isoformat()})."
        ),
        patient_message=(
            f"Your sirolimus blood test is due around {item.due_date.isoformat()}. Have the "
            f"blood drawn just before your next dose (about 24 hours after the last one)."
        ),
    )


# ----------------------------------------------------------- trough level


def current_daily_dose(regimens: Iterable[RegimenEvent], at: datetime) -> float | None:
    dose = None
    last = None
    for r in regimens:
        if (
            r.kind in ("start", "dose_change", "resume")
            and r.daily_dose_mg is not None
            and r.effective_at <= at
            and (last is None or r.effective_at > last)
        ):
            last, dose = r.effective_at, r.daily_dose_mg
    return dose


def trough_out_of_range(
    trough: TroughResult,
    flags: TroughFlags,
    doses: Iterable[DoseLog],
    regimens: Iterable[RegimenEvent],
    facts: PatientFacts,
    thresholds: Thresholds,
    *,
    fev1_verdict: str | None = None,
) -> AlertCandidate | None:
    """A trough outside the patient's target (default 5-15 ng/mL, MILES), told apart
    (the first that applies gives `kind`):

    - far above target (>= `trough_far_above_factor` x the upper bound): alert
      whatever the timing;
    - not a true trough (20-28 h after the last dose): repeat at trough;
    - before steady state (< 7 days after a change, Rapamune label): a LOW value
      raises nothing on its own (the flag is shown with the result); a HIGH one
      can only rise further, so it alerts;
    - low with missed doses in the prior 7 days: an adherence question;
    - low while FEV1 is stable or improving on treatment: low levels can work
      (Ando 2013), so nothing is said about the dose;
    - otherwise a dose question. The proportional adjustment new = current x
      target / measured, aimed at the lower part of the target (lowest effective
      dose) and capped at `dose_hint_max_mg_per_day`, is shown as information,
      never as a prescription, and never sooner than `dose_hint_min_days` after a
      change or when the time of the last dose is unknown.

    Every sentence of the explanation is made from the same facts as `numbers`.
    """
    low = facts.trough_target_low if facts.trough_target_low is not None else thresholds.trough_target_low
    high = facts.trough_target_high if facts.trough_target_high is not None else thresholds.trough_target_high
    v = trough.value_ng_ml
    if low <= v <= high:
        return None
    direction = "low" if v < low else "high"
    far_limit = high * thresholds.trough_far_above_factor
    far_above = v >= far_limit
    if direction == "low" and flags.before_steady_state:
        return None
    since = trough.drawn_at - timedelta(days=thresholds.adherence_lookback_days)
    missed = sum(1 for d in doses if d.status == "missed" and since <= d.taken_at <= trough.drawn_at)
    dose = current_daily_dose(regimens, trough.drawn_at)
    fev1_stable = facts.treatment_status == "on_sirolimus" and fev1_verdict in ("stable", "improving")
    numbers: dict[str, NumberLike] = {
        "value_ng_ml": v,
        "target_low_ng_ml": low,
        "target_high_ng_ml": high,
        "direction": direction,
        "far_above_limit_ng_ml": round(far_limit, 2),
        "hours_since_last_dose": flags.hours_since_last_dose,
        "last_dose_unknown": flags.last_dose_unknown,
        "days_since_regimen_change": flags.days_since_regimen_change,
        "before_steady_state": flags.before_steady_state,
        "missed_doses_prior_7_days": missed,
        "adherence_lookback_days": thresholds.adherence_lookback_days,
        "current_daily_dose_mg": dose,
        "fev1_verdict": fev1_verdict,
        "drawn_at": trough.drawn_at.isoformat(),
    }
    if far_above:
        kind = "far_above_target"
    elif flags.not_true_trough:
        kind = "not_true_trough"
    elif flags.before_steady_state:
        kind = "high_before_steady_state"
    elif direction == "low" and missed > 0:
        kind = "adherence"
    elif direction == "low" and fev1_stable:
        kind = "low_fev1_stable"
    else:
        kind = "dose_question"
    numbers["kind"] = kind

    parts = [f"Sirolimus level {v:g} ng/mL is {direction} (target {low:g}-{high:g} ng/mL)."]
    if far_above:
        parts.append(
            f"It is at least {thresholds.trough_far_above_factor:g} x the upper target "
            f"({far_limit:g} ng/mL): far above target, whatever the timing of the draw."
        )
    parts.append(_trough_timing_sentence(flags, thresholds))
    parts.append(_trough_change_sentence(flags, thresholds))
    if missed:
        parts.append(
            f"{missed} missed dose(s) logged in the {thresholds.adherence_lookback_days} days "
            "before the draw."
        )
    else:
        parts.append(
            f"No missed doses logged in the {thresholds.adherence_lookback_days} days before the draw."
        )
    if kind == "far_above_target":
        parts.append("Review the dose and any interacting drug now; repeat the level.")
    elif kind == "not_true_trough":
        parts.append("Consider repeating the draw just before a dose before changing anything.")
    elif kind == "high_before_steady_state":
        parts.append(
            "Before steady state a level above target can only rise further (as after a dose "
            "increase or an inhibitor start): review it now."
        )
    elif kind == "adherence":
        parts.append("With missed doses logged this is an adherence question, not a dose question.")
    elif kind == "low_fev1_stable":
        parts.append(
            f"FEV1 is {fev1_verdict} on treatment; low levels can be effective (Ando 2013), so the "
            "level alone is no reason to change the dose."
        )
    else:
        parts.append("A dose question.")
        hint = _dose_hint(dose, v, low, high, flags, thresholds)
        if hint is not None:
            target, raw, shown = hint
            numbers["hint_target_ng_ml"] = round(target, 2)
            numbers["proportional_dose_mg"] = round(shown, 2)
            numbers["proportional_dose_capped"] = shown < raw
            assert dose is not None
            text = (
                f"For information only, not a prescription: proportional adjustment toward the "
                f"lower part of the target ({target:g} ng/mL, lowest effective dose) would be "
                f"{dose:g} mg x {target:g} / {v:g} = {raw:.2f} mg/day (Rapamune label)"
            )
            if shown < raw:
                cap = thresholds.dose_hint_max_mg_per_day
                text += f", above the {cap:g} mg/day maximum: shown as {shown:g} mg/day"
            parts.append(text + "; the prescriber decides.")
    return AlertCandidate(
        rule="trough_out_of_range",
        severity="digest" if kind == "low_fev1_stable" else "review",
        episode_key=f"trough_out_of_range:{trough.id}",
        numbers=numbers,
        explanation=" ".join(parts),
        patient_message=None,
    )


def _trough_timing_sentence(flags: TroughFlags, thresholds: Thresholds) -> str:
    span = f"{thresholds.true_trough_min_hours:g}-{thresholds.true_trough_max_hours:g} h"
    if flags.last_dose_unknown or flags.hours_since_last_dose is None:
        return (
            f"Time of the last dose unknown: whether this is a true trough ({span} after a dose) is unknown."
        )
    if flags.not_true_trough:
        return (
            f"Drawn {flags.hours_since_last_dose:g} h after the last dose (a true trough is {span}): "
            "not a true trough."
        )
    return f"Drawn {flags.hours_since_last_dose:g} h after the last dose: a true trough."


def _trough_change_sentence(flags: TroughFlags, thresholds: Thresholds) -> str:
    days = flags.days_since_regimen_change
    if days is None:
        return "No regimen change logged before the draw."
    if flags.before_steady_state:
        return (
            f"Drawn {days:g} days after the last regimen change (< {thresholds.steady_state_days} days): "
            "before steady state."
        )
    return f"Drawn {days:g} days after the last regimen change: at steady state."


def _dose_hint(
    dose: float | None, v: float, low: float, high: float, flags: TroughFlags, thresholds: Thresholds
) -> tuple[float, float, float] | None:
    """(target, proportional dose, dose shown after the cap), or None when no hint
    may be shown: no current dose, an unknown last-dose time, or too soon after a change."""
    if dose is None or v <= 0 or flags.last_dose_unknown or flags.not_true_trough:
        return None
    days = flags.days_since_regimen_change
    if days is not None and days < thresholds.dose_hint_min_days:
        return None
    target = low + thresholds.dose_hint_target_fraction * (high - low)
    raw = dose * target / v
    return target, raw, min(raw, thresholds.dose_hint_max_mg_per_day)


def interacting_drug_alert(event: RegimenEvent, thresholds: Thresholds) -> AlertCandidate | None:
    """Start or stop of a CYP3A4 / P-gp interacting drug (Rapamune label 7.2): a
    review alert naming the drug, whether it is an inhibitor or an inducer and
    the expected direction of the level, with the trough draw that is due. A
    name not in the catalog is said to be so, for a clinician to review."""
    if event.kind not in ("interacting_drug_start", "interacting_drug_stop"):
        return None
    started = event.kind == "interacting_drug_start"
    match = catalog.match_interacting_drug(event.drug_name)
    name = event.drug_name or "unnamed drug"
    numbers: dict[str, NumberLike] = {
        "drug_name": event.drug_name,
        "catalog_name": match[0] if match else None,
        "interaction": match[1] if match else "unknown",
        "change": "start" if started else "stop",
        "effective_at": event.effective_at.isoformat(),
        "trough_due_day": thresholds.interacting_drug_due_day,
    }
    verb = "Started" if started else "Stopped"
    if match is None:
        numbers["expected_level"] = "unknown"
        text = (
            f"{verb} {name}: not in the interaction catalog (Rapamune label 7.2). A clinician "
            f"should check whether it inhibits or induces CYP3A4 / P-gp."
        )
    else:
        canonical, kind = match
        rise = catalog.INTERACTION_EFFECT_ON_START[kind] == "rise"
        expected = "rise" if rise == started else "fall"
        numbers["expected_level"] = expected
        what = {"inhibitor": "a CYP3A4 / P-gp inhibitor", "inducer": "a CYP3A4 / P-gp inducer"}.get(
            kind, "a drug that raises sirolimus levels (label warning)"
        )
        text = (
            f"{verb} {name} ({canonical}), {what}: the sirolimus level is expected to {expected} "
            f"(Rapamune label 7.2)."
        )
    text += (
        f" A trough is due about day {thresholds.interacting_drug_due_day} after the change; "
        "review the dose and whether to check the level sooner."
    )
    return AlertCandidate(
        rule="interacting_drug_change",
        severity="review",
        episode_key=f"interacting_drug_change:{event.id}",
        numbers=numbers,
        explanation=text,
        patient_message=None,
    )


# ------------------------------------------------- side effects, LAM events


BREATHLESSNESS_TERMS = frozenset({"dyspnea"})
CHEST_PAIN_TERMS = frozenset({"chest_pain"})
INFECTION_TERMS = frozenset({"upper_respiratory_infection", "lung_infection", "cough"})


def _has_fever(report: SideEffectReport, thresholds: Thresholds) -> bool:
    return report.temperature_c is not None and report.temperature_c >= thresholds.fever_c


def side_effect_alert(
    report: SideEffectReport,
    thresholds: Thresholds,
    recent: Iterable[SideEffectReport] = (),
) -> AlertCandidate | None:
    """Same-day (urgent) if any grade >= 3, pneumonitis or dyspnea >= 2, fever >= 38.0 °C
    or antibiotics started (CTCAE v5 / PRO-CTCAE; domain.md §5). Grade 2 otherwise goes
    to the digest; milder reports raise nothing. A clinician's CTCAE grade takes
    precedence over the patient's PRO-CTCAE severity.

    Possible pneumothorax (about 70 % of women with LAM have one; domain.md §5):
    chest pain of any severity, breathlessness reported as sudden, and breathlessness
    at or above `emergency_dyspnea_grade` (severe) are urgent and the patient is told
    to seek emergency care now.

    Possible infection on an immunosuppressant: a lung infection at or above
    `respiratory_urgent_grade`, and a respiratory infection or cough at or above it
    together with fever or breathlessness (in this report or in `recent`, the
    patient's other reports within `symptom_window_days` before it), are urgent.
    """
    grade = side_effect_grade(report)
    term = catalog.SIDE_EFFECT_TERMS.get(report.term)
    name = term.ctcae_term if term else report.term
    t = thresholds
    reasons: list[str] = []
    emergency = False
    if grade >= t.urgent_grade:
        reasons.append(f"grade {grade}")
    if report.term in ("pneumonitis", "dyspnea") and grade >= t.respiratory_urgent_grade:
        reasons.append(f"{name.lower()} grade {grade}")
    if _has_fever(report, t):
        reasons.append(f"fever {report.temperature_c:.1f} °C")
    if report.antibiotics_started:
        reasons.append("antibiotics started")
    if report.term in CHEST_PAIN_TERMS and grade >= 1:
        reasons.append("chest pain: possible pneumothorax")
        emergency = True
    if report.term in BREATHLESSNESS_TERMS and (report.sudden or grade >= t.emergency_dyspnea_grade):
        reasons.append(f"{'sudden' if report.sudden else 'severe'} breathlessness: possible pneumothorax")
        emergency = True
    if report.term == "lung_infection" and grade >= t.respiratory_urgent_grade:
        reasons.append(f"lung infection grade {grade} on an immunosuppressant")
    window_start = report.onset_at - timedelta(days=t.symptom_window_days)
    others = [r for r in recent if r.id != report.id and window_start <= r.onset_at <= report.onset_at]
    if report.term in INFECTION_TERMS and grade >= t.respiratory_urgent_grade:
        fever = any(_has_fever(r, t) for r in others)
        breathless = any(r.term in BREATHLESSNESS_TERMS and side_effect_grade(r) >= 1 for r in others)
        if fever or breathless:
            reasons.append(
                f"{name.lower()} grade {grade} with recent {'fever' if fever else 'breathlessness'}: "
                "possible infection on an immunosuppressant"
            )
    elif (
        report.term in BREATHLESSNESS_TERMS
        and grade >= 1
        and any(
            r.term in INFECTION_TERMS and side_effect_grade(r) >= t.respiratory_urgent_grade for r in others
        )
    ):
        reasons.append("breathlessness with a recent respiratory infection or cough")
    numbers: dict[str, NumberLike] = {
        "term": report.term,
        "grade": grade,
        "grade_source": "ctcae" if report.ctcae_grade is not None else "pro_ctcae",
        "severity": report.severity,
        "sudden": report.sudden,
        "temperature_c": report.temperature_c,
        "antibiotics_started": report.antibiotics_started,
        "onset_at": report.onset_at.isoformat(),
    }
    if reasons:
        numbers["reasons"] = "; ".join(reasons)
        numbers["emergency_advice"] = emergency
        return AlertCandidate(
            rule="urgent_side_effect",
            severity="urgent",
            episode_key=f"urgent_side_effect:{report.id}",
            numbers=numbers,
            explanation=(
                f"{name} reported ({'; '.join(reasons)}): same-day review "
                f"(CTCAE v5 / PRO-CTCAE; on sirolimus consider pneumonitis and infection"
                f"{'; possible pneumothorax, patient told to seek emergency care' if emergency else ''})."
            ),
            patient_message=patient_message("urgent", emergency=emergency),
        )
    if grade >= t.digest_grade:
        return AlertCandidate(
            rule="urgent_side_effect",
            severity="digest",
            episode_key=f"urgent_side_effect:{report.id}",
            numbers=numbers,
            explanation=f"{name} reported, grade {grade} (moderate): for the daily digest.",
            patient_message=patient_message("digest"),
        )
    return None


URGENT_LAM_EVENTS = frozenset({"pneumothorax", "chylothorax", "chylous_ascites"})
EMERGENCY_LAM_EVENTS = frozenset({"pneumothorax"})


def lam_event_alert(event: LamEvent, thresholds: Thresholds) -> AlertCandidate | None:
    """Pneumothorax, chylothorax and chylous ascites are urgent (same day; a new
    chylous effusion is also a treatment criterion, ATS/JRS 2016); a pneumothorax
    gets emergency advice. Other LAM events go to review."""
    del thresholds  # no numeric threshold; kept for a uniform signature
    severity = "urgent" if event.kind in URGENT_LAM_EVENTS else "review"
    return AlertCandidate(
        rule="lam_event",
        severity=severity,
        episode_key=f"lam_event:{event.id}",
        numbers={"kind": event.kind, "occurred_at": event.occurred_at.isoformat()},
        explanation=(
            f"LAM event reported: {event.kind.replace('_', ' ')} on "
            f"{event.occurred_at.date().isoformat()}." + (" Same-day review." if severity == "urgent" else "")
        ),
        patient_message=patient_message(severity, emergency=event.kind in EMERGENCY_LAM_EVENTS),
    )


# --------------------------------------------------------------- adherence


def readings_overdue(
    facts: PatientFacts,
    last_home_reading_at: datetime | None,
    as_of: datetime,
    thresholds: Thresholds,
) -> AlertCandidate | None:
    """No home session for longer than the expected interval plus
    `readings_overdue_days` (calendar days in the patient's zone)."""
    if facts.expected_sessions_per_week <= 0 or last_home_reading_at is None:
        return None
    zone = ZoneInfo(facts.timezone)
    last = last_home_reading_at.astimezone(zone).date()
    today = as_of.astimezone(zone).date()
    interval = ceil(7 / facts.expected_sessions_per_week)
    allowed = interval + thresholds.readings_overdue_days
    gap = (today - last).days
    if gap <= allowed:
        return None
    return AlertCandidate(
        rule="readings_overdue",
        severity="digest",
        episode_key=f"readings_overdue:{last.isoformat()}",
        numbers={
            "last_reading_date": last.isoformat(),
            "days_since_last_reading": gap,
            "expected_sessions_per_week": facts.expected_sessions_per_week,
            "allowed_gap_days": allowed,
        },
        explanation=(
            f"No home spirometry for {gap} days (last on {last.isoformat()}; expected "
            f"{facts.expected_sessions_per_week} sessions a week)."
        ),
        patient_message=(
            f"We have not received a breathing test from you since {last.isoformat()}. "
            "Please do one when you can, or tell us if your device has a problem."
        ),
    )


def repeated_missed_doses(
    doses: Sequence[DoseLog], as_of: datetime, timezone: str, thresholds: Thresholds
) -> AlertCandidate | None:
    """>= `missed_doses_count` missed doses within the trailing
    `missed_doses_window_days`. The episode starts at the first missed dose of a
    chain in which consecutive missed doses are no more than the window apart,
    so the key stays the same while the missing continues."""
    missed = sorted(d.taken_at for d in doses if d.status == "missed" and d.taken_at <= as_of)
    if not missed:
        return None
    window = timedelta(days=thresholds.missed_doses_window_days)
    recent = [m for m in missed if m > as_of - window]
    if len(recent) < thresholds.missed_doses_count:
        return None
    start = len(missed) - 1
    while start > 0 and missed[start] - missed[start - 1] <= window:
        start -= 1
    zone = ZoneInfo(timezone)
    first: date = missed[start].astimezone(zone).date()
    return AlertCandidate(
        rule="repeated_missed_doses",
        severity="review",
        episode_key=f"repeated_missed_doses:{first.isoformat()}",
        numbers={
            "missed_in_window": len(recent),
            "window_days": thresholds.missed_doses_window_days,
            "threshold": thresholds.missed_doses_count,
            "episode_start": first.isoformat(),
            "latest_missed_at": missed[-1].isoformat(),
        },
        explanation=(
            f"{len(recent)} missed sirolimus doses logged in the last "
            f"{thresholds.missed_doses_window_days} days (episode since {first.isoformat()})."
        ),
        patient_message=(
            "You have logged several missed doses recently. If something makes taking "
            "sirolimus difficult, please talk to your care team."
        ),
    )
