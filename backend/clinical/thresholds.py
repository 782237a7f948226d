"""Every number the clinical rules use, with where it comes from.

`DEFAULT_THRESHOLDS` holds the product defaults. A care team can override any
field, and so can a patient's own settings: `DEFAULT_THRESHOLDS.merged(team, patient)`
applies the team overrides first and the patient overrides last. Unknown keys and
values of the wrong type raise ValueError, so the API can validate a PATCH with
the same call.

Sources are cited in `THRESHOLD_SOURCES` (field -> citation); the API documents
them beside each field. Values marked "product default" are choices, not
published thresholds, and values marked "unconfirmed" have no published source.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, get_type_hints


@dataclass(frozen=True)
class Thresholds:
    # --- lung-function series -------------------------------------------------
    trusted_grades: tuple[str, ...] = ("A", "B", "C")
    use_ungraded: bool = True
    learning_days: int = 14
    daily_aggregate: str = "median"
    fev1_plausible_min_l: float = 0.3
    fev1_plausible_max_l: float = 7.0

    # --- trend ----------------------------------------------------------------
    rapid_decline_ml_per_year: float = -90.0
    trend_window_days: int = 730
    trend_min_span_days: int = 180
    trend_min_readings: int = 30
    trend_confidence: float = 0.95
    rapid_decline_confidence: float = 0.98
    rapid_decline_ci_high_below_ml_per_year: float = -30.0
    rapid_decline_confirm_days: int = 0
    rapid_decline_early_exponent: float = 1.0
    rapid_decline_early_until_days: int = 320
    rapid_decline_late_exponent: float = 0.5
    level_shift_min_ml: float = 150.0
    level_shift_z: float = 4.0
    level_shift_min_days: int = 20
    level_shift_recent_days: int = 120
    level_shift_recent_z: float = 3.0
    level_shift_recent_min_days: int = 5
    level_shift_recent_min_ml: float = 100.0
    natural_decline_premenopausal_ml_per_year: float = -118.0
    natural_decline_postmenopausal_ml_per_year: float = -74.0
    natural_decline_unknown_ml_per_year: float = -89.0
    outlier_robust_z: float = 4.0
    effort_drift_min_pct_per_year: float = 4.0
    effort_drift_confidence: float = 0.95
    effort_drift_min_days: int = 30
    split_at_dose_changes: bool = False

    # --- acute drop (Bjortuft 1993) ------------------------------------------
    acute_drop_fraction: float = 0.10
    acute_persistence_days: int = 2
    acute_baseline_days: int = 7
    acute_baseline_min_readings: int = 3
    acute_lookback_days: int = 28
    acute_drop_statistic: str = "all"
    acute_drop_noise_z: float = 2.5
    acute_noise_lookback_days: int = 90
    acute_noise_min_pairs: int = 10
    symptom_window_days: int = 14

    # --- start criterion (ATS/JRS 2016) ---------------------------------------
    start_criterion_pct_predicted: float = 70.0
    start_criterion_home_days: int = 28
    start_criterion_min_readings: int = 3
    start_criterion_rapid_decline: bool = True
    start_criterion_dlco_pct_predicted: float = 60.0
    start_criterion_dlco_max_age_days: int = 365
    start_criterion_aml_cm: float = 3.0
    start_criterion_tsc_lam: bool = True

    # --- troughs (Rapamune label; MILES) -------------------------------------
    trough_target_low: float = 5.0
    trough_target_high: float = 15.0
    true_trough_min_hours: float = 20.0
    true_trough_max_hours: float = 28.0
    steady_state_days: int = 7
    adherence_lookback_days: int = 7
    start_due_day: int = 14
    start_window_start_day: int = 10
    start_window_end_day: int = 20
    dose_change_due_day: int = 14
    dose_change_window_start_day: int = 7
    dose_change_window_end_day: int = 21
    interacting_drug_due_day: int = 14
    interacting_drug_window_start_day: int = 7
    interacting_drug_window_end_day: int = 21
    maintenance_interval_days: int = 90
    maintenance_window_before_days: int = 14
    draw_grace_days: int = 7
    maintenance_grace_days: int = 14
    trough_far_above_factor: float = 1.5
    dose_hint_max_mg_per_day: float = 4.0
    dose_hint_target_fraction: float = 0.25
    dose_hint_min_days: int = 10

    # --- side effects and LAM events (CTCAE v5, PRO-CTCAE) ----------------------
    urgent_grade: int = 3
    respiratory_urgent_grade: int = 2
    emergency_dyspnea_grade: int = 3
    fever_c: float = 38.0
    digest_grade: int = 2
    side_effect_lookback_days: int = 7

    # --- adherence ------------------------------------------------------------
    readings_overdue_days: int = 7
    missed_doses_count: int = 3
    missed_doses_window_days: int = 14

    def merged(self, *overrides: Mapping[str, Any]) -> Thresholds:
        """Apply override mappings in order (team, then patient).

        Raises ValueError on unknown keys, wrong types or values that make no
        sense (negative day counts, fractions outside 0-1, inverted ranges).
        """
        hints = _field_types()
        known = hints.keys()
        changes: dict[str, Any] = {}
        for override in overrides:
            if override is None:
                continue
            if not isinstance(override, Mapping):
                raise ValueError("threshold overrides must be a mapping")
            for key, value in override.items():
                if key not in known:
                    raise ValueError(f"unknown threshold: {key!r}")
                changes[key] = _coerce(key, hints[key], value)
        result = replace(self, **changes)
        result.validate()
        return result

    def validate(self) -> None:
        """Raise ValueError if the combination of values is inconsistent."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be finite")
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{f.name} must not be negative")
            if isinstance(value, int | float) and not isinstance(value, bool):
                default = float(f.default) if isinstance(f.default, int | float) else 0.0
                ceiling = PLAUSIBLE_FACTOR * abs(default) if default else PLAUSIBLE_CEILING_IF_ZERO
                if abs(value) > ceiling:
                    raise ValueError(f"{f.name} must be at most {ceiling:g} (default {f.default})")
        if not 0.0 < self.acute_drop_fraction < 1.0:
            raise ValueError("acute_drop_fraction must be between 0 and 1")
        for name in ("trend_confidence", "rapid_decline_confidence", "effort_drift_confidence"):
            if not 0.5 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0.5, 1)")
        if self.acute_drop_noise_z < 0:
            raise ValueError("acute_drop_noise_z must not be negative")
        if self.acute_drop_statistic not in ("all", "mean"):
            raise ValueError("acute_drop_statistic must be 'all' or 'mean'")
        if self.daily_aggregate not in ("median", "best"):
            raise ValueError("daily_aggregate must be 'median' or 'best'")
        bad = set(self.trusted_grades) - set("ABCDEUF")
        if bad:
            raise ValueError(f"unknown grades in trusted_grades: {sorted(bad)}")
        pairs = (
            ("trough_target_low", "trough_target_high"),
            ("true_trough_min_hours", "true_trough_max_hours"),
            ("fev1_plausible_min_l", "fev1_plausible_max_l"),
            ("start_window_start_day", "start_due_day"),
            ("start_due_day", "start_window_end_day"),
            ("dose_change_window_start_day", "dose_change_due_day"),
            ("dose_change_due_day", "dose_change_window_end_day"),
            ("interacting_drug_window_start_day", "interacting_drug_due_day"),
            ("interacting_drug_due_day", "interacting_drug_window_end_day"),
        )
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} must not exceed {high}")
        if self.trough_far_above_factor < 1.0:
            raise ValueError("trough_far_above_factor must be at least 1")
        if self.dose_hint_max_mg_per_day <= 0:
            raise ValueError("dose_hint_max_mg_per_day must be positive")
        if not 0.0 <= self.dose_hint_target_fraction <= 1.0:
            raise ValueError("dose_hint_target_fraction must be between 0 and 1")
        if min(self.rapid_decline_early_exponent, self.rapid_decline_late_exponent) < 0:
            raise ValueError(
                "rapid_decline_early_exponent and rapid_decline_late_exponent must not be negative"
            )
        if self.level_shift_min_ml < 0 or self.level_shift_z < 0:
            raise ValueError("level_shift_* must not be negative")
        if self.level_shift_min_days < 5:
            raise ValueError("level_shift_min_days must be at least 5")
        if min(self.level_shift_recent_days, self.level_shift_recent_z, self.level_shift_recent_min_ml) < 0:
            raise ValueError("level_shift_recent_* must not be negative")
        if self.level_shift_recent_min_days < 3:
            raise ValueError("level_shift_recent_min_days must be at least 3")
        if self.rapid_decline_early_until_days < 1:
            raise ValueError("rapid_decline_early_until_days must be at least 1")
        if self.trend_min_readings < 3:
            raise ValueError("trend_min_readings must be at least 3")
        if self.acute_persistence_days < 1 or self.acute_baseline_days < 1:
            raise ValueError("acute drop day counts must be at least 1")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# No override may move a number further than this factor from its default
# (days, hours, litres, fractions alike): a window of 10**12 days or a
# 400-digit threshold is a typing error, and would overflow date arithmetic in
# every evaluation of the team. A default of zero allows values up to the
# ceiling below.
PLAUSIBLE_FACTOR = 20
PLAUSIBLE_CEILING_IF_ZERO = 100


def _coerce(key: str, hint: Any, value: Any) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} must be an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number")
        try:
            return float(value)
        except OverflowError as exc:
            raise ValueError(f"{key} is too large") from exc
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string")
        return value
    # tuple[str, ...]
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{key} must be a list of strings")
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} must be a list of strings")
    return tuple(value)


DEFAULT_THRESHOLDS = Thresholds()

_ATS_JRS = "ATS/JRS LAM guideline 2016 (doi 10.1164/rccm.201607-1384ST)"
_GUPTA = "Gupta et al., Chest 2019 (NHLBI registry: untreated decline 89 ± 53 mL/yr)"
_LABEL = "Rapamune prescribing information, section 2 (therapeutic drug monitoring)"
_BJORTUFT = "Bjortuft et al., ERJ 1993 (home spirometry after lung transplantation)"
_ATS_ERS = "Graham et al., ATS/ERS spirometry standard 2019 (session grades)"
_ATS_ERS_EFFORT = (
    "Graham et al., Standardization of Spirometry 2019 Update, ATS/ERS, AJRCCM 2019 "
    "(maximal effort from the start of the blow: PEF and back-extrapolated volume reflect "
    "effort; FVC needs an end-of-forced-expiration plateau)"
)
_CTCAE = "NCI CTCAE v5.0 and PRO-CTCAE (severe ~ grade 3, very severe ~ grade 4)"
_LABEL_DDI = "Rapamune prescribing information, section 7.2 (CYP3A4 / P-gp inhibitors and inducers)"
_LAM_LABEL = (
    "Japanese sirolimus tablet label for LAM (Rapalimus, Nobelpharma): 2 mg once daily, "
    "adjusted by trough, not above 4 mg/day"
)
_ANDO = "Ando et al. 2013 (low-dose sirolimus in LAM: troughs 0.8-4.3 ng/mL, FEV1 stable)"
_PRODUCT = "product default"

THRESHOLD_SOURCES: dict[str, str] = {
    "trusted_grades": f"{_ATS_ERS}: grades A-C are acceptable for interpretation",
    "use_ungraded": f"{_PRODUCT}: most home devices send no blows, so no grade",
    "learning_days": (
        f"{_PRODUCT}: learning effect in the first weeks of home spirometry (Noth et al., ERJ 2021, INMARK)"
    ),
    "daily_aggregate": (
        f"{_PRODUCT}: median per local day; the best of several sessions rises with "
        "the number of sessions and would bias trends"
    ),
    "fev1_plausible_min_l": f"{_PRODUCT}: physiologically implausible values are dropped",
    "fev1_plausible_max_l": f"{_PRODUCT}: physiologically implausible values are dropped",
    "rapid_decline_ml_per_year": f"{_ATS_JRS}: decline >= 90 mL/yr is a start criterion; {_GUPTA}",
    "trend_window_days": (
        f"{_PRODUCT}: the slope is fitted on the whole current treatment segment, up to "
        "24 months back: a trailing 12-month window re-tests a slope whose SE stays near "
        "50 mL/yr, so stable patients keep crossing the bar on nightly looks (VALIDATION.md)"
    ),
    "trend_min_span_days": (
        f"{_PRODUCT}: detection limit in domain.md §3 (a 90 mL/yr decline needs "
        "~0.7-0.9 yr of daily readings at SD 150 mL); first nightly look at 6 months"
    ),
    "trend_min_readings": f"{_PRODUCT}: minimum distinct reading days before any verdict",
    "trend_confidence": f"{_PRODUCT}: two-sided level of the slope confidence interval",
    "rapid_decline_confidence": (
        f"{_PRODUCT}: two-sided level (0.98 = one-sided 99 %, z 2.33) of the bound that "
        "must lie below `rapid_decline_ci_high_below_ml_per_year` at the pivot span; "
        "calibrated with the pivot and the early and late exponents by simulation of nightly "
        "looks over 24 months, for <= 5 % of -30 mL/yr patients ever flagged (VALIDATION.md, "
        "calibration and operating points)"
    ),
    "rapid_decline_ci_high_below_ml_per_year": (
        f"{_PRODUCT}: the decline must be statistically faster than this stable-patient "
        f"margin (-30 mL/yr, the slow end of stable LAM; {_GUPTA}); validated in VALIDATION.md"
    ),
    "rapid_decline_confirm_days": (
        f"{_PRODUCT}: the verdict must also have held on the window ending this many days "
        "earlier (guards against chance crossings on repeated nightly looks)"
    ),
    "rapid_decline_early_exponent": (
        f"{_PRODUCT}: group-sequential boundary: before `rapid_decline_early_until_days` "
        "the bound's multiplier grows by (until / span) ** exponent (with steady readings "
        "the information grows about as span ** 3, so 0 is Pocock's shape and 1.5 "
        "O'Brien-Fleming's, 1 a Wang-Tsiatis shape between them; Jennison & Turnbull 2000, "
        "ch. 2), so early looks with a wide interval spend little false-alarm probability; "
        "1.0 chosen by simulation of nightly looks (VALIDATION.md)"
    ),
    "rapid_decline_early_until_days": (
        f"{_PRODUCT}: the pivot: the span at which the plain bound applies; shorter looks "
        "are widened by the early exponent, longer ones by the late exponent. 320 days, "
        "calibrated by simulation of nightly looks (VALIDATION.md): the 12-month look has a "
        "span of about 350 days (the first 14 days are a learning period)"
    ),
    "rapid_decline_late_exponent": (
        f"{_PRODUCT}: alpha spending: after the pivot the bound's multiplier grows by "
        "(span / until) ** exponent, so a stable patient re-tested every night with a "
        "shrinking SE does not keep spending the false-alarm budget in year 2 (the "
        "spending-function idea of Lan & DeMets, Biometrika 1983; shape calibrated by "
        "simulation of nightly looks over 24 months, VALIDATION.md)"
    ),
    "level_shift_min_ml": (
        f"{_PRODUCT}: smallest step (mL) in home FEV1 treated as a level shift (device "
        "replaced without a new serial, re-calibration) and segmented out of the slope"
    ),
    "level_shift_z": (
        f"{_PRODUCT}: the step must also be this many standard errors (AR(1)-adjusted, "
        "best of all break days) from zero; false segmentation < 1 % in simulation"
    ),
    "level_shift_min_days": f"{_PRODUCT}: reading days needed on each side of a level shift",
    "level_shift_recent_days": (
        f"{_PRODUCT}: a drop in level that began within this many days, too recent to "
        "segment by the bars above, is segmented when that clears a rapid-decline verdict "
        "(0 = off): a replacement device reading 200 mL low without a new serial was flagged "
        "as a rapid decline in 26 % of stable simulated patients by 12 months (VALIDATION.md)"
    ),
    "level_shift_recent_z": (
        f"{_PRODUCT}: standard errors the recent drop must reach (lower than "
        "`level_shift_z`: it can only take a rapid-decline verdict away, never give one)"
    ),
    "level_shift_recent_min_days": f"{_PRODUCT}: reading days needed after a recent drop",
    "level_shift_recent_min_ml": f"{_PRODUCT}: smallest recent drop (mL) that can hold a verdict back",
    "natural_decline_premenopausal_ml_per_year": (
        "NHLBI LAM registry: untreated FEV1 decline 118 mL/yr in premenopausal women "
        "(74 mL/yr postmenopausal)"
    ),
    "natural_decline_postmenopausal_ml_per_year": (
        "NHLBI LAM registry: untreated decline 74 mL/yr in postmenopausal women"
    ),
    "natural_decline_unknown_ml_per_year": f"{_GUPTA}: registry mean untreated decline 89 mL/yr",
    "outlier_robust_z": f"{_PRODUCT}: robust z beyond which a reading is reported as outlier",
    "effort_drift_min_pct_per_year": (
        f"{_PRODUCT}: a rapid decline is withheld (data-quality review alert instead) when "
        "ln(PEF/FEV1) over the same window falls at least this fast (% per year) with its "
        "interval below 0. PEF is the most effort-dependent index and FEV1 relatively "
        f"effort-independent ({_ATS_ERS_EFFORT}), so worsening effort lowers PEF/FEV1 while a "
        "true decline lowers both; 0 turns the check off. Calibrated by simulation "
        "(VALIDATION.md, effort-drift rows)"
    ),
    "effort_drift_confidence": (
        f"{_PRODUCT}: two-sided confidence of the PEF/FEV1 slope interval (AR(1)-adjusted, "
        "as for FEV1) that must lie below 0 for effort drift"
    ),
    "effort_drift_min_days": f"{_PRODUCT}: reading days with PEF needed to judge effort drift",
    "split_at_dose_changes": f"{_PRODUCT}: also split on-treatment slopes at dose changes",
    "acute_drop_fraction": f"{_BJORTUFT}: FEV1 >= 10 % below the 7-day baseline",
    "acute_persistence_days": f"{_BJORTUFT}: drop persisting >= 2 days",
    "acute_baseline_days": f"{_BJORTUFT}: baseline = mean of the previous 7 days",
    "acute_baseline_min_readings": f"{_PRODUCT}: readings needed in the baseline week",
    "acute_lookback_days": f"{_PRODUCT}: how far back a drop episode may have started",
    "acute_drop_statistic": (
        f"{_BJORTUFT}: 'all' = every reading in the drop window below the limit "
        "(persisting); 'mean' = their mean (product option)"
    ),
    "acute_drop_noise_z": (
        f"{_PRODUCT}: the drop must also exceed this many times the patient's own "
        "day-to-day noise (within-person SD of daily FEV1, robust estimate); home FEV1 "
        "noise is roughly absolute, 120-200 mL (domain.md §3; Noth et al., ERJ 2021, "
        "INMARK), so at low FEV1 a 10 % drop is within the noise. The 10 % of Bjortuft "
        "stays the floor; 0 restores the plain rule. 2.5 brings false alerts in stable "
        "simulated patients from ~5 to ~1 per patient-year (VALIDATION.md)"
    ),
    "acute_noise_lookback_days": (f"{_PRODUCT}: days of home readings used to estimate the personal noise"),
    "acute_noise_min_pairs": (
        f"{_PRODUCT}: pairs of consecutive reading days needed for the noise estimate; "
        "with fewer the plain 10 % rule applies"
    ),
    "symptom_window_days": (
        f"{_PRODUCT}: respiratory symptoms this close to a drop make it a "
        "'progression or pneumonitis / infection?' question (domain.md §5)"
    ),
    "start_criterion_pct_predicted": f"{_ATS_JRS}: FEV1 < 70 % predicted",
    "start_criterion_home_days": f"{_PRODUCT}: home readings pooled for the % predicted check",
    "start_criterion_min_readings": f"{_PRODUCT}: home readings needed for the check",
    "start_criterion_rapid_decline": (
        f"{_ATS_JRS}: sirolimus recommended for declining lung function; the decline is "
        "the trend's rapid-decline verdict (rapid_decline_ml_per_year) while untreated"
    ),
    "start_criterion_dlco_pct_predicted": (
        f"{_PRODUCT}, not from a guideline: DLCO < 60 % predicted counts as abnormal lung "
        "function (the ATS/JRS 2016 guideline recommends sirolimus for abnormal or declining "
        "lung function without a DLCO threshold)"
    ),
    "start_criterion_dlco_max_age_days": (
        f"{_PRODUCT}: a DLCO measured longer ago than this is ignored by the start criteria"
    ),
    "start_criterion_aml_cm": (
        "2012 International TSC Consensus (Krueger et al., Pediatr Neurol 2013) and EXIST-2 "
        "(Bissler et al., Lancet 2013): angiomyolipoma >= 3 cm treated with an mTOR inhibitor"
    ),
    "start_criterion_tsc_lam": (
        f"{_ATS_JRS}; LAM Foundation: TSC-LAM is listed among the start criteria (domain.md §1); "
        "false leaves it out"
    ),
    "trough_target_low": "MILES, NEJM 2011: target 5-15 ng/mL (per-patient override)",
    "trough_target_high": "MILES, NEJM 2011: target 5-15 ng/mL (per-patient override)",
    "true_trough_min_hours": f"{_LABEL}: trough drawn ~24 h after a once-daily dose",
    "true_trough_max_hours": f"{_LABEL}: trough drawn ~24 h after a once-daily dose",
    "steady_state_days": (
        f"{_LABEL}: re-check no sooner than 7-14 days after a dose change (half-life "
        "62 h, steady state after ~13 days). A LOW level drawn sooner is shown and flagged "
        "but raises nothing on its own; a HIGH one can only rise further, so it alerts"
    ),
    "adherence_lookback_days": f"{_PRODUCT}: missed doses this close make a low level an adherence question",
    "start_due_day": f"{_LABEL}: first trough 10-20 days after starting",
    "start_window_start_day": f"{_LABEL}: first trough 10-20 days after starting",
    "start_window_end_day": f"{_LABEL}: first trough 10-20 days after starting",
    "dose_change_due_day": f"{_LABEL}: after a dose change wait >= 7-14 days",
    "dose_change_window_start_day": f"{_LABEL}: after a dose change wait >= 7-14 days",
    "dose_change_window_end_day": f"{_PRODUCT} (unconfirmed): window closes day 21",
    "interacting_drug_due_day": f"{_LABEL_DDI}: monitor the trough when starting or stopping one",
    "interacting_drug_window_start_day": f"{_PRODUCT} (unconfirmed): as for a dose change",
    "interacting_drug_window_end_day": f"{_PRODUCT} (unconfirmed): as for a dose change",
    "maintenance_interval_days": f"{_LABEL}: once stable, at least every 3 months",
    "maintenance_window_before_days": f"{_PRODUCT}: maintenance draw window opens 14 days early",
    "draw_grace_days": f"{_PRODUCT}: days after the window closes before 'missed draw'",
    "maintenance_grace_days": f"{_PRODUCT}: days after a maintenance due date before 'missed'",
    "trough_far_above_factor": (
        f"{_PRODUCT}: a level at or above this multiple of the upper target alerts as 'far "
        f"above target' whatever the timing; strong CYP3A4 inhibitors raise exposure up to "
        f"~11x ({_LABEL_DDI})"
    ),
    "dose_hint_max_mg_per_day": (f"{_LAM_LABEL}: the proportional hint is never shown above this daily dose"),
    "dose_hint_target_fraction": (
        f"{_LABEL}: proportional adjustment new = current x target / measured; the "
        f"product aims at this fraction of the way up the patient's target range "
        f"(0 = its lower bound), the lowest effective dose ({_ANDO}; {_LAM_LABEL})"
    ),
    "dose_hint_min_days": (
        f"{_LABEL}: no dose hint sooner than this many days after a start, dose change or "
        "interacting-drug change (steady state after ~13 days; re-check after 7-14 days)"
    ),
    "urgent_grade": f"{_CTCAE}: grade >= 3 is severe",
    "respiratory_urgent_grade": f"{_CTCAE}: pneumonitis or dyspnea grade >= 2 is same-day",
    "emergency_dyspnea_grade": (
        f"{_CTCAE}; domain.md §5: severe or sudden breathlessness may be a pneumothorax "
        "(about 70 % of women with LAM have one): seek emergency care now"
    ),
    "fever_c": f"{_PRODUCT} (domain.md §5): fever >= 38.0 °C is same-day",
    "digest_grade": f"{_CTCAE}: grade 2 (moderate) reports go to the daily digest",
    "side_effect_lookback_days": f"{_PRODUCT}: nightly pass re-reports recent reports (dedup)",
    "readings_overdue_days": f"{_PRODUCT}: days beyond the expected interval with no reading",
    "missed_doses_count": f"{_PRODUCT}: >= 3 missed doses in 14 days",
    "missed_doses_window_days": f"{_PRODUCT}: >= 3 missed doses in 14 days",
}

assert set(THRESHOLD_SOURCES) == {f.name for f in fields(Thresholds)}


@functools.cache
def _field_types() -> dict[str, Any]:
    """The declared type of each `Thresholds` field (resolved once: resolving
    the annotations cost more than the rest of a merge)."""
    hints = get_type_hints(Thresholds)
    return {f.name: hints[f.name] for f in fields(Thresholds)}
