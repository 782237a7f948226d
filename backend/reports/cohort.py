"""The cohort report of a care team, computed from plain data (no Flask, no
database): does FEV1 decline less on sirolimus, and does that depend on the
trough level, the dose, how impaired she was and how long after diagnosis she
started, or her menopausal status? And how often do side effects come, by level
and dose?

Slopes come from one linear mixed-effects model per group (statsmodels MixedLM,
random intercept and slope per patient): FEV1 ~ 1 + t + t_on, where t is years
from her treatment start and t_on = max(t, 0). The coefficient of t is the slope
before treatment, t + t_on the slope on treatment, and t_on the change.
Side-effect rates are events per patient-year on treatment with exact Poisson
intervals (Garwood).

Observational data: who is started when, and who is kept at which level, is
decided by clinicians for reasons that also affect the lung (confounding by
indication); the report says so with every answer.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
from scipy import stats

from backend.clinical import model as cm
from backend.clinical.catalog import PRO_CTCAE_SEVERITY

YEAR_DAYS = 365.25
SIROLIMUS = "sirolimus"
OFF_KINDS = frozenset({"stop", "interruption"})
ON_KINDS = frozenset({"start", "resume", "dose_change"})

# Time-weighted trough bands (ng/mL) as the editorial asks: MILES targeted 5-15;
# Ando 2013 reported benefit below 5.
TROUGH_BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 5", -math.inf, 5.0),
    ("5-10", 5.0, 10.0),
    ("10-15", 10.0, 15.0),
    ("> 15", 15.0, math.inf),
)
# Time-weighted daily dose bands (mg/day); 2 mg/day is the usual start.
DOSE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 1.5 mg", -math.inf, 1.5),
    ("1.5-2.5 mg", 1.5, 2.5),
    (">= 2.5 mg", 2.5, math.inf),
)
START_FEV1_BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 70 % predicted (late)", -math.inf, 70.0),
    (">= 70 % predicted (early)", 70.0, math.inf),
)
DIAGNOSIS_TO_START_BANDS: tuple[tuple[str, float, float], ...] = (
    ("< 2 years", -math.inf, 2.0),
    ("2-5 years", 2.0, 5.0),
    (">= 5 years", 5.0, math.inf),
)
MENOPAUSAL_STATUSES = ("premenopausal", "postmenopausal", "unknown")
# FEV1 % predicted "at start": the latest reading this many days before, else the
# first this many days after.
START_WINDOW_DAYS = 90

CAVEAT = (
    "These numbers describe the patients of this team; they do not show what "
    "sirolimus, a trough level or a dose does. Who starts treatment, when, and at "
    "which dose or level is decided by clinicians for reasons that also affect how "
    "the lungs change (confounding by indication): patients kept at low levels may, "
    "for example, be those who tolerated the drug poorly or were doing well. Groups "
    "are small and intervals wide; groups with fewer patients than the minimum are "
    "shown without numbers."
)


# ------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class Reading:
    measured_at: datetime
    fev1_l: float
    fev1_pct_predicted: float | None


@dataclass(frozen=True)
class CohortPatient:
    """One patient as the report sees her: no identifier, only her data."""

    readings: Sequence[Reading]
    regimens: Sequence[cm.RegimenEvent]
    troughs: Sequence[cm.TroughResult]
    side_effects: Sequence[cm.SideEffectReport]
    end: datetime  # end of follow-up
    menopausal_status: str | None = None
    diagnosis_date: date | None = None


@dataclass(frozen=True)
class PatientSummary:
    """What the grouping needs of one treated patient."""

    start: datetime
    treated_years: float
    trough_ng_ml: float | None  # time-weighted over the treated time
    dose_mg: float | None  # time-weighted daily dose over the treated time
    fev1_pct_at_start: float | None
    years_diagnosis_to_start: float | None
    menopausal_status: str
    side_effects: tuple[cm.SideEffectReport, ...]
    patient: CohortPatient = field(repr=False)


# ------------------------------------------------------------------ per patient


def _years(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 86400.0 / YEAR_DAYS


def _is_sirolimus(event: cm.RegimenEvent) -> bool:
    return event.kind in ON_KINDS | OFF_KINDS and (event.drug_name or SIROLIMUS).lower() == SIROLIMUS


def dose_intervals(
    regimens: Sequence[cm.RegimenEvent], end: datetime
) -> list[tuple[datetime, datetime, float]]:
    """(from, to, daily mg) for each stretch on sirolimus, up to `end`."""
    out: list[tuple[datetime, datetime, float]] = []
    current: tuple[datetime, float] | None = None
    last_dose: float | None = None
    for event in sorted((r for r in regimens if _is_sirolimus(r)), key=lambda r: r.effective_at):
        if event.effective_at >= end:
            break
        if current is not None:
            out.append((current[0], event.effective_at, current[1]))
            current = None
        if event.kind in OFF_KINDS:
            continue
        dose = event.daily_dose_mg if event.daily_dose_mg is not None else last_dose
        if dose is not None and dose > 0:
            current, last_dose = (event.effective_at, dose), dose
    if current is not None:
        out.append((current[0], end, current[1]))
    return [(a, b, d) for a, b, d in out if b > a]


def time_weighted_trough(
    troughs: Sequence[cm.TroughResult], intervals: Sequence[tuple[datetime, datetime, float]]
) -> float | None:
    """Each level holds from its draw to the next draw, counted only while on
    treatment; the time before the first draw takes the first level."""
    draws = sorted(troughs, key=lambda t: t.drawn_at)
    if not draws or not intervals:
        return None
    total = weight = 0.0
    for a, b, _ in intervals:
        for k, t in enumerate(draws):
            lo = a if k == 0 else max(a, t.drawn_at)
            hi = b if k == len(draws) - 1 else min(b, draws[k + 1].drawn_at)
            span = (hi - lo).total_seconds()
            if span > 0:
                total += t.value_ng_ml * span
                weight += span
    return total / weight if weight > 0 else None


def _pct_at_start(readings: Sequence[Reading], start: datetime) -> float | None:
    window = START_WINDOW_DAYS * 86400.0
    before = [
        r
        for r in readings
        if r.fev1_pct_predicted is not None and 0 <= (start - r.measured_at).total_seconds() <= window
    ]
    if before:
        return max(before, key=lambda r: r.measured_at).fev1_pct_predicted
    after = [
        r
        for r in readings
        if r.fev1_pct_predicted is not None and 0 < (r.measured_at - start).total_seconds() <= window
    ]
    return min(after, key=lambda r: r.measured_at).fev1_pct_predicted if after else None


def summarize(patient: CohortPatient) -> PatientSummary | None:
    """Her treated time, levels and starting point; None if never on sirolimus."""
    intervals = dose_intervals(patient.regimens, patient.end)
    if not intervals:
        return None
    start = intervals[0][0]
    seconds = sum((b - a).total_seconds() for a, b, _ in intervals)
    dose = sum((b - a).total_seconds() * d for a, b, d in intervals) / seconds
    diagnosis = patient.diagnosis_date
    years_dx = (start.date() - diagnosis).days / YEAR_DAYS if diagnosis is not None else None
    on = [e for e in patient.side_effects if any(a <= e.onset_at < b for a, b, _ in intervals)]
    return PatientSummary(
        start=start,
        treated_years=seconds / 86400.0 / YEAR_DAYS,
        trough_ng_ml=time_weighted_trough(patient.troughs, intervals),
        dose_mg=dose,
        fev1_pct_at_start=_pct_at_start(patient.readings, start),
        years_diagnosis_to_start=years_dx,
        menopausal_status=patient.menopausal_status or "unknown",
        side_effects=tuple(on),
        patient=patient,
    )


def band_of(value: float | None, bands: Sequence[tuple[str, float, float]]) -> str | None:
    if value is None:
        return None
    for label, lo, hi in bands:
        if lo <= value < hi:
            return label
    return None


def side_effect_grade(report: cm.SideEffectReport) -> int:
    """The clinician's CTCAE grade when given, else the patient's severity read as one."""
    if report.ctcae_grade is not None:
        return report.ctcae_grade
    return PRO_CTCAE_SEVERITY.get(report.severity, 0)


# ------------------------------------------------------------------ models


@dataclass(frozen=True)
class SlopeFit:
    on_slope: float
    on_ci: tuple[float, float]
    pre_slope: float
    pre_ci: tuple[float, float]
    change: float
    change_ci: tuple[float, float]
    n_readings: int


def fit_slopes(
    t_years: np.ndarray[Any, Any], y: np.ndarray[Any, Any], groups: np.ndarray[Any, Any]
) -> SlopeFit | None:
    """Piecewise-linear mixed model with a knot at treatment start (t = 0):
    y ~ 1 + t + max(t, 0), random intercept and slope in t per patient.
    None when it cannot be fitted (too few readings, no readings before or
    after the start, or no convergence)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    t = np.asarray(t_years, dtype=float)
    y = np.asarray(y, dtype=float)
    if t.size < 10 or not (t < 0).any() or not (t > 0).any() or np.unique(groups).size < 2:
        return None
    t_on = np.maximum(t, 0.0)
    exog = np.column_stack([np.ones_like(t), t, t_on])
    exog_re = np.column_stack([np.ones_like(t), t])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = MixedLM(y, exog, groups=groups, exog_re=exog_re).fit(reml=True, method=["lbfgs", "cg"])
        except (np.linalg.LinAlgError, ValueError):
            return None
    beta = np.asarray(result.fe_params, dtype=float)
    cov = np.asarray(result.cov_params(), dtype=float)[:3, :3]
    if not np.all(np.isfinite(beta)) or not np.all(np.isfinite(cov)):
        return None
    z = float(stats.norm.ppf(0.975))

    def ci(weights: Sequence[float]) -> tuple[float, float, float]:
        w = np.asarray(weights, dtype=float)
        est = float(w @ beta)
        se = math.sqrt(max(float(w @ cov @ w), 0.0))
        return est, est - z * se, est + z * se

    on, on_lo, on_hi = ci((0, 1, 1))
    pre, pre_lo, pre_hi = ci((0, 1, 0))
    change, ch_lo, ch_hi = ci((0, 0, 1))
    return SlopeFit(on, (on_lo, on_hi), pre, (pre_lo, pre_hi), change, (ch_lo, ch_hi), int(t.size))


def poisson_rate(events: int, years: float) -> tuple[float, float, float]:
    """Rate per patient-year with its exact 95 % interval (Garwood)."""
    if years <= 0:
        return math.nan, math.nan, math.nan
    lo = float(stats.chi2.ppf(0.025, 2 * events)) / 2 if events > 0 else 0.0
    hi = float(stats.chi2.ppf(0.975, 2 * events + 2)) / 2
    return events / years, lo / years, hi / years


# ------------------------------------------------------------------ the report


@dataclass(frozen=True)
class Grouping:
    key: str
    title: str
    labels: tuple[str, ...]
    of: Callable[[PatientSummary], str | None]


GROUPINGS: tuple[Grouping, ...] = (
    Grouping(
        "trough_band",
        "Time-weighted sirolimus trough (ng/mL)",
        tuple(b[0] for b in TROUGH_BANDS),
        lambda s: band_of(s.trough_ng_ml, TROUGH_BANDS),
    ),
    Grouping(
        "fev1_at_start",
        "FEV1 % predicted at treatment start",
        tuple(b[0] for b in START_FEV1_BANDS),
        lambda s: band_of(s.fev1_pct_at_start, START_FEV1_BANDS),
    ),
    Grouping(
        "diagnosis_to_start",
        "Time from diagnosis to treatment start",
        tuple(b[0] for b in DIAGNOSIS_TO_START_BANDS),
        lambda s: band_of(s.years_diagnosis_to_start, DIAGNOSIS_TO_START_BANDS),
    ),
    Grouping(
        "menopausal_status",
        "Menopausal status",
        MENOPAUSAL_STATUSES,
        lambda s: s.menopausal_status if s.menopausal_status in MENOPAUSAL_STATUSES else "unknown",
    ),
    Grouping(
        "dose",
        "Time-weighted daily dose",
        tuple(b[0] for b in DOSE_BANDS),
        lambda s: band_of(s.dose_mg, DOSE_BANDS),
    ),
)
SIDE_EFFECT_GROUPINGS = ("trough_band", "dose")


def _estimate(value: float | None, lo: float | None, hi: float | None) -> dict[str, float | None]:
    def clean(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else round(x, 2)

    return {"estimate": clean(value), "ci_low": clean(lo), "ci_high": clean(hi)}


def _slopes(members: Sequence[PatientSummary]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    outcomes: tuple[tuple[str, float, Callable[[Reading], float | None]], ...] = (
        ("fev1_ml_per_year", 1000.0, lambda r: r.fev1_l),
        ("fev1_pct_predicted_per_year", 1.0, lambda r: r.fev1_pct_predicted),
    )
    for outcome, scale, getter in outcomes:
        t: list[float] = []
        y: list[float] = []
        g: list[int] = []
        for k, s in enumerate(members):
            for r in s.patient.readings:
                value = getter(r)
                if value is None or r.measured_at > s.patient.end:
                    continue
                t.append(_years(s.start, r.measured_at))
                y.append(value * scale)
                g.append(k)
        fit = fit_slopes(np.asarray(t), np.asarray(y), np.asarray(g))
        if fit is None:
            empty = _estimate(None, None, None)
            out[outcome] = {
                "on_treatment": empty,
                "before_treatment": empty,
                "change": empty,
                "n_readings": len(t),
            }
        else:
            out[outcome] = {
                "on_treatment": _estimate(fit.on_slope, *fit.on_ci),
                "before_treatment": _estimate(fit.pre_slope, *fit.pre_ci),
                "change": _estimate(fit.change, *fit.change_ci),
                "n_readings": fit.n_readings,
            }
    return out


def _side_effect_rates(members: Sequence[PatientSummary], years: float) -> dict[str, Any]:
    events = [e for s in members for e in s.side_effects]
    total = _estimate(*poisson_rate(len(events), years))
    by_term: dict[tuple[str, int], int] = {}
    for e in events:
        key = (e.term, side_effect_grade(e))
        by_term[key] = by_term.get(key, 0) + 1
    return {
        "events": len(events),
        "per_patient_year": total,
        "by_term_and_grade": [
            {
                "term": term,
                "grade": grade,
                "events": n,
                "per_patient_year": _estimate(*poisson_rate(n, years)),
            }
            for (term, grade), n in sorted(by_term.items())
        ],
    }


def cohort_report(patients: Sequence[CohortPatient], *, min_cell: int = 5) -> dict[str, Any]:
    """The report as plain data (JSON-ready): groups of fewer than `min_cell`
    patients are listed with `suppressed: true` and no numbers."""
    summaries = [s for s in (summarize(p) for p in patients) if s is not None]
    groups: list[dict[str, Any]] = []
    for grouping in GROUPINGS:
        for label in grouping.labels:
            members = [s for s in summaries if grouping.of(s) == label]
            years = sum(s.treated_years for s in members)
            row: dict[str, Any] = {
                "grouping": grouping.key,
                "grouping_title": grouping.title,
                "group": label,
                "suppressed": len(members) < min_cell,
                "n_patients": None,
                "patient_years": None,
                "slopes": None,
                "side_effects": None,
            }
            if not row["suppressed"]:
                row["n_patients"] = len(members)
                row["patient_years"] = round(years, 2)
                row["slopes"] = _slopes(members)
                if grouping.key in SIDE_EFFECT_GROUPINGS:
                    row["side_effects"] = _side_effect_rates(members, years)
            groups.append(row)
    return {
        "n_patients": len(patients),
        "n_treated": len(summaries) if len(summaries) >= min_cell or not summaries else None,
        "min_cell_size": min_cell,
        "caveat": CAVEAT,
        "method": (
            "FEV1 slopes: linear mixed-effects model per group (random intercept and slope "
            "per patient), knot at treatment start; 95 % Wald intervals. Side effects: "
            "events per patient-year on treatment, exact Poisson 95 % intervals. Trough and "
            "dose are time-weighted over the time on sirolimus."
        ),
        "groups": groups,
    }


CSV_COLUMNS = (
    "grouping",
    "group",
    "suppressed",
    "n_patients",
    "patient_years",
    "measure",
    "term",
    "grade",
    "events",
    "estimate",
    "ci_low",
    "ci_high",
)


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report flattened to one row per estimate (the CSV)."""
    rows: list[dict[str, Any]] = []
    for g in report["groups"]:
        base = {k: g[k] for k in ("grouping", "group", "suppressed", "n_patients", "patient_years")}
        if g["suppressed"]:
            rows.append({**base, "measure": "suppressed"})
            continue
        for outcome, parts in (g["slopes"] or {}).items():
            for part in ("on_treatment", "before_treatment", "change"):
                rows.append({**base, "measure": f"{outcome}.{part}", **parts[part]})
        se = g["side_effects"]
        if se:
            rows.append(
                {
                    **base,
                    "measure": "side_effects_per_patient_year",
                    "events": se["events"],
                    **se["per_patient_year"],
                }
            )
            for item in se["by_term_and_grade"]:
                rows.append(
                    {
                        **base,
                        "measure": "side_effects_per_patient_year",
                        "term": item["term"],
                        "grade": item["grade"],
                        "events": item["events"],
                        **item["per_patient_year"],
                    }
                )
    return rows
