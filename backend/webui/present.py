"""How the web pages write what the engine stores: an alert's numbers as
labelled values with their units, yes / no, side-effect names in plain words,
and times in the patient's own time zone. Presentation only: the stored numbers
and the API's JSON keep their keys, codes and ISO times."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from backend.alerts.emails import RULE_LABELS, format_number
from backend.clinical.catalog import side_effect_label

# key -> (label, unit); the order is the order on the page (keys not listed follow, sorted)
NUMBER_LABELS: dict[str, tuple[str, str]] = {
    # side effects
    "term": ("Side effect", ""),
    "reasons": ("Why same-day review", ""),
    "grade": ("Grade", ""),
    "grade_source": ("Grade from", ""),
    "severity": ("Severity reported", ""),
    "onset_at": ("Onset", ""),
    "sudden": ("Sudden", ""),
    "temperature_c": ("Temperature", "°C"),
    "antibiotics_started": ("Antibiotics started", ""),
    "emergency_advice": ("Told to seek emergency care", ""),
    # LAM events, interacting drugs
    "kind": ("Kind", ""),
    "occurred_at": ("Occurred", ""),
    "drug_name": ("Drug", ""),
    "catalog_name": ("Catalog name", ""),
    "interaction": ("Interaction", ""),
    "change": ("Change", ""),
    "effective_at": ("Effective", ""),
    "expected_level": ("Expected sirolimus level", ""),
    "trough_due_day": ("Trough due on day", ""),
    # FEV1 trend
    "slope_ml_per_year": ("FEV1 slope", "mL/year"),
    "step_ml": ("Step in FEV1 level", "mL"),
    "step_from": ("New level from", ""),
    "ci_low_ml_per_year": ("Interval, low end", "mL/year"),
    "ci_high_ml_per_year": ("Interval, high end", "mL/year"),
    "confidence": ("Interval level", "%"),
    "slope_pct_pred_per_year": ("FEV1 slope", "% predicted/year"),
    "threshold_ml_per_year": ("Threshold", "mL/year"),
    "n_readings": ("Reading days", ""),
    "span_days": ("Span", "days"),
    "lag1_autocorrelation": ("Day-to-day correlation (lag 1)", ""),
    "effective_n": ("Effective number of readings", ""),
    "segment": ("Segment", ""),
    # acute drop
    "drop_pct": ("Drop", "%"),
    "threshold_pct": ("Threshold", "%"),
    "baseline_fev1_l": ("Baseline FEV1", "L"),
    "baseline_readings": ("Baseline reading days", ""),
    "window_mean_fev1_l": ("Mean FEV1 since onset", "L"),
    "window_max_fev1_l": ("Highest FEV1 since onset", "L"),
    "window_readings": ("Reading days since onset", ""),
    "limit_fev1_l": ("Limit", "L"),
    "onset": ("Onset", ""),
    "latest": ("Latest", ""),
    "noise_sd_ml": ("Usual day-to-day variation (SD)", "mL"),
    "noise_pairs": ("Pairs of readings behind it", ""),
    "noise_z": ("Variation multiple (z)", ""),
    "underlying_rule": ("Underlying alert", ""),
    "symptom_reports": ("Symptom reports", ""),
    "first_symptom_at": ("First symptom", ""),
    "max_temperature_c": ("Highest temperature", "°C"),
    # start criterion
    "fev1_l": ("FEV1", "L"),
    "predicted_l": ("Predicted FEV1", "L"),
    "percent_predicted": ("FEV1", "% predicted"),
    "z_score": ("z-score", ""),
    "threshold_pct_predicted": ("Threshold", "% predicted"),
    "source": ("Source", ""),
    # troughs
    "value_ng_ml": ("Trough level", "ng/mL"),
    "target_low_ng_ml": ("Target, low", "ng/mL"),
    "target_high_ng_ml": ("Target, high", "ng/mL"),
    "direction": ("Direction", ""),
    "far_above_limit_ng_ml": ("Far above target from", "ng/mL"),
    "drawn_at": ("Drawn", ""),
    "hours_since_last_dose": ("Hours since the last dose", "h"),
    "last_dose_unknown": ("Last dose time unknown", ""),
    "days_since_regimen_change": ("Since the last regimen change", "days"),
    "before_steady_state": ("Before steady state", ""),
    "missed_doses_prior_7_days": ("Missed doses in the 7 days before", ""),
    "adherence_lookback_days": ("Adherence look-back", "days"),
    "current_daily_dose_mg": ("Current daily dose", "mg/day"),
    "hint_target_ng_ml": ("Level aimed at", "ng/mL"),
    "proportional_dose_mg": ("Proportional dose (for information)", "mg/day"),
    "proportional_dose_capped": ("Proportional dose capped", ""),
    "fev1_verdict": ("FEV1 trend", ""),
    # trough schedule
    "reason": ("Reason", ""),
    "anchor_date": ("From", ""),
    "due_date": ("Due", ""),
    "window_start": ("Window start", ""),
    "window_end": ("Window end", ""),
    "missed_after": ("Missed after", ""),
    "status": ("Status", ""),
    # readings, doses
    "last_reading_date": ("Last reading", ""),
    "days_since_last_reading": ("Since the last reading", "days"),
    "expected_sessions_per_week": ("Expected sessions a week", ""),
    "allowed_gap_days": ("Gap allowed", "days"),
    "missed_in_window": ("Missed doses in the window", ""),
    "window_days": ("Window", "days"),
    "threshold": ("Threshold", ""),
    "episode_start": ("Episode since", ""),
    "latest_missed_at": ("Latest missed dose", ""),
    # on treatment (`context_` + these)
    "latest_trough_ng_ml": ("Latest trough", "ng/mL"),
    "latest_trough_at": ("Latest trough drawn", ""),
    "trough_target_low": ("Trough target, low", "ng/mL"),
    "trough_target_high": ("Trough target, high", "ng/mL"),
    "missed_doses": ("Missed doses", ""),
}
_ORDER = {key: i for i, key in enumerate(NUMBER_LABELS)}

# Units read from the end of a key the table does not know (longest first).
_SUFFIX_UNITS = (
    ("_ml_per_year", "mL/year"),
    ("_pct_predicted", "% predicted"),
    ("_ng_ml", "ng/mL"),
    ("_pct", "%"),
    ("_ml", "mL"),
    ("_mg", "mg"),
    ("_days", "days"),
    ("_hours", "h"),
    ("_l", "L"),
    ("_c", "°C"),
)

VALUE_LABELS: dict[str, dict[str, str]] = {
    "grade_source": {
        "ctcae": "CTCAE grade given by a clinician",
        "pro_ctcae": "the patient's PRO-CTCAE severity",
    },
    "change": {"start": "started", "stop": "stopped"},
    "kind": {  # trough out of range: what the result asks
        "far_above_target": "far above the target",
        "not_true_trough": "not a true trough",
        "high_before_steady_state": "high before steady state",
        "adherence": "an adherence question (missed doses)",
        "low_fev1_stable": "low, with FEV1 stable",
        "dose_question": "a dose question",
    },
}

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def local_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """'4 Sep 2026, 19:00 BST': the moment in `zone` (a naive one is UTC)."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    here = moment.astimezone(zone)
    return f"{here.day} {here:%b %Y, %H:%M} {here.tzname() or zone.key}"


def local_date(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def _label(key: str) -> tuple[str, str]:
    if key in NUMBER_LABELS:
        return NUMBER_LABELS[key]
    if key.startswith("context_"):
        label, unit = _label(key.removeprefix("context_"))
        return f"{label} (on treatment)", unit
    for suffix, unit in _SUFFIX_UNITS:
        if key.endswith(suffix) and len(key) > len(suffix):
            return _words(key.removesuffix(suffix)).capitalize(), unit
    return _words(key).capitalize(), ""


def _words(text: str) -> str:
    return text.replace("_", " ")


def _text(key: str, value: str, zone: ZoneInfo) -> str:
    base = key.removeprefix("context_")
    if base == "term":
        return side_effect_label(value)
    if base == "underlying_rule":
        return RULE_LABELS.get(value, _words(value))
    if base in VALUE_LABELS and value in VALUE_LABELS[base]:
        return VALUE_LABELS[base][value]
    if _ISO_TIME.fullmatch(value[:16]):
        try:
            return local_time(datetime.fromisoformat(value), zone)
        except ValueError:
            pass
    if _ISO_DATE.fullmatch(value):
        try:
            return local_date(date.fromisoformat(value))
        except ValueError:
            pass
    return _words(value)


def _value(key: str, value: Any, unit: str, zone: ZoneInfo) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if unit == "%" and key == "confidence":
            value = 100 * value
        number = f"{value:.2f}" if unit == "L" else format_number(value)
        if not unit:
            return number
        return f"{number} {unit}" if unit != "days" or number != "1" else "1 day"
    if isinstance(value, str):
        return _text(key, value, zone)
    return _words(str(value))


def alert_numbers(numbers: dict[str, Any], timezone: str) -> list[tuple[str, str]]:
    """(label, value with its unit) for each of an alert's numbers, in reading order."""
    zone = ZoneInfo(timezone)
    keys = sorted(numbers, key=lambda k: (_ORDER.get(k.removeprefix("context_"), len(_ORDER)), k))
    out = []
    for key in keys:
        label, unit = _label(key)
        out.append((label, _value(key, numbers[key], unit, zone)))
    return out


def alert_subject(numbers: dict[str, Any], timezone: str) -> str:
    """What an event alert is about, so that two alike in a list can be told apart:
    'Cough, onset 10 Jan 2026, 19:00 GMT'. Empty for other rules."""
    zone = ZoneInfo(timezone)
    for what, when in (("term", "onset_at"), ("kind", "occurred_at"), ("drug_name", "effective_at")):
        if what in numbers and isinstance(numbers.get(when), str):
            name = _text(what, str(numbers[what]), zone) if numbers[what] is not None else "unnamed drug"
            return f"{name[:1].upper()}{name[1:]}, {_text(when, numbers[when], zone)}"
    return ""
