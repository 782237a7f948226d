"""The cohort report's computation on plain data: time weighting, the mixed
model, Poisson intervals, bands and small-cell suppression."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from backend.clinical import model as cm
from backend.reports.cohort import (
    CohortPatient,
    Reading,
    cohort_report,
    dose_intervals,
    fit_slopes,
    poisson_rate,
    report_rows,
    summarize,
    time_weighted_trough,
)

T0 = datetime(2025, 1, 1, 8, tzinfo=UTC)


def regimen(
    day: float, kind: str, dose: float | None = None, drug: str | None = "sirolimus"
) -> cm.RegimenEvent:
    return cm.RegimenEvent(
        id=f"g{day}{kind}",
        effective_at=T0 + timedelta(days=day),
        kind=kind,
        daily_dose_mg=dose,
        drug_name=drug,
    )


def trough(day: float, value: float) -> cm.TroughResult:
    return cm.TroughResult(
        id=f"t{day}", drawn_at=T0 + timedelta(days=day), value_ng_ml=value, last_dose_at=None
    )


def test_dose_intervals_follow_changes_interruptions_and_ignore_other_drugs() -> None:
    end = T0 + timedelta(days=100)
    events = [
        regimen(0, "start", 2.0),
        regimen(10, "interacting_drug_start", None, "clarithromycin"),
        regimen(20, "dose_change", 1.0),
        regimen(40, "interruption"),
        regimen(50, "resume"),  # no dose given: the last one
    ]
    got = [((a - T0).days, (b - T0).days, d) for a, b, d in dose_intervals(events, end)]
    assert got == [(0, 20, 2.0), (20, 40, 1.0), (50, 100, 1.0)]


def test_trough_is_weighted_by_time_on_treatment() -> None:
    intervals = dose_intervals([regimen(0, "start", 2.0)], T0 + timedelta(days=60))
    # 4 ng/mL holds days 0-30, 12 ng/mL days 30-60
    assert time_weighted_trough([trough(5, 4.0), trough(30, 12.0)], intervals) == pytest.approx(
        (4 * 30 + 12 * 30) / 60
    )
    # time off treatment does not count
    off = dose_intervals(
        [regimen(0, "start", 2.0), regimen(30, "stop"), regimen(50, "resume", 2.0)], T0 + timedelta(days=60)
    )
    assert time_weighted_trough([trough(5, 4.0), trough(30, 12.0)], off) == pytest.approx(
        (4 * 30 + 12 * 10) / 40
    )
    assert time_weighted_trough([], intervals) is None


def test_poisson_rate_exact_interval() -> None:
    rate, lo, hi = poisson_rate(3, 2.0)
    assert rate == 1.5
    assert lo == pytest.approx(0.6187 / 2, abs=1e-3) and hi == pytest.approx(8.7673 / 2, abs=1e-3)
    assert poisson_rate(0, 1.0)[1] == 0.0
    assert all(math.isnan(x) for x in poisson_rate(1, 0.0))


def _simulated(
    rng: np.random.Generator, n: int, pre: float, on: float, noise: float = 60.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t, y, g = [], [], []
    for k in range(n):
        times = np.arange(-1.0, 1.0, 1 / 26)  # fortnightly, a year either side of the start
        base = rng.normal(2200, 300)
        pre_k, on_k = pre + rng.normal(0, 20), on + rng.normal(0, 20)
        mean = base + np.where(times < 0, pre_k * times, on_k * times)
        t.extend(times)
        y.extend(mean + rng.normal(0, noise, times.size))
        g.extend([k] * times.size)
    return np.array(t), np.array(y), np.array(g)


def test_mixed_model_recovers_slopes_and_their_change() -> None:
    rng = np.random.default_rng(3)
    t, y, g = _simulated(rng, 12, pre=-120.0, on=-10.0)
    fit = fit_slopes(t, y, g)
    assert fit is not None
    assert fit.pre_ci[0] < -120 < fit.pre_ci[1]
    assert fit.on_ci[0] < -10 < fit.on_ci[1]
    assert fit.change_ci[0] < 110 < fit.change_ci[1]
    assert fit.change == pytest.approx(fit.on_slope - fit.pre_slope)
    assert fit.change_ci[0] > 0  # the improvement is clear with these numbers


def test_mixed_model_needs_readings_on_both_sides_of_the_start() -> None:
    t = np.linspace(0.1, 1, 30)
    assert fit_slopes(t, 2000 - 50 * t, np.repeat([0, 1, 2], 10)) is None


def _patient(
    rng: np.random.Generator, level: float, *, pct_at_start: float, menopausal: str | None
) -> CohortPatient:
    start = T0 + timedelta(days=365)
    end = start + timedelta(days=365)
    readings = []
    for day in range(0, 730, 14):
        at = T0 + timedelta(days=day)
        years = (at - start).days / 365.25
        ml = 2200 + (-100 * years if years < 0 else -20 * years) + rng.normal(0, 50)
        readings.append(Reading(at, ml / 1000, pct_at_start + years * (-3 if years < 0 else -0.5)))
    side_effects = [
        cm.SideEffectReport(
            id=f"s{k}",
            onset_at=start + timedelta(days=30 * (k + 1)),
            term="mucositis_oral",
            severity="moderate",
        )
        for k in range(2)
    ] + [cm.SideEffectReport(id="before", onset_at=T0 + timedelta(days=10), term="cough", severity="mild")]
    return CohortPatient(
        readings=readings,
        regimens=[regimen(365, "start", 2.0)],
        troughs=[
            cm.TroughResult(id="t", drawn_at=start + timedelta(days=14), value_ng_ml=level, last_dose_at=None)
        ],
        side_effects=side_effects,
        end=end,
        menopausal_status=menopausal,
        diagnosis_date=date(2023, 6, 1),
    )


def test_report_groups_suppresses_small_cells_and_counts_side_effects_on_treatment() -> None:
    rng = np.random.default_rng(5)
    patients = [_patient(rng, 8.0, pct_at_start=80, menopausal="premenopausal") for _ in range(6)]
    patients += [_patient(rng, 3.0, pct_at_start=60, menopausal=None) for _ in range(3)]
    patients.append(CohortPatient(readings=[], regimens=[], troughs=[], side_effects=[], end=T0))  # untreated
    report = cohort_report(patients, min_cell=5)
    by = {(g["grouping"], g["group"]): g for g in report["groups"]}
    band = by[("trough_band", "5-10")]
    assert not band["suppressed"] and band["n_patients"] == 6
    assert band["patient_years"] == pytest.approx(6 * 365 / 365.25, abs=0.01)
    slope = band["slopes"]["fev1_ml_per_year"]
    assert slope["before_treatment"]["ci_low"] < -100 < slope["before_treatment"]["ci_high"]
    assert slope["on_treatment"]["ci_low"] < -20 < slope["on_treatment"]["ci_high"]
    pct = band["slopes"]["fev1_pct_predicted_per_year"]
    assert pct["change"]["estimate"] == pytest.approx(2.5, abs=0.3)
    # two events each on treatment; the one before the start is not counted
    se = band["side_effects"]
    assert se["events"] == 12
    assert se["by_term_and_grade"] == [
        {"term": "mucositis_oral", "grade": 2, "events": 12, "per_patient_year": se["per_patient_year"]}
    ]
    low = by[("trough_band", "< 5")]
    assert low["suppressed"] and low["n_patients"] is None and low["slopes"] is None
    assert by[("fev1_at_start", ">= 70 % predicted (early)")]["n_patients"] == 6
    assert by[("fev1_at_start", "< 70 % predicted (late)")]["suppressed"]
    assert by[("menopausal_status", "premenopausal")]["n_patients"] == 6
    assert by[("diagnosis_to_start", "2-5 years")]["n_patients"] == 9
    assert by[("dose", "1.5-2.5 mg")]["n_patients"] == 9
    assert by[("menopausal_status", "premenopausal")]["side_effects"] is None  # only by trough and dose
    assert report["n_patients"] == 10 and report["n_treated"] == 9
    assert "confounding by indication" in report["caveat"]
    # a lower minimum shows the small band
    assert not {(g["grouping"], g["group"]): g for g in cohort_report(patients, min_cell=3)["groups"]}[
        ("trough_band", "< 5")
    ]["suppressed"]
    rows = report_rows(report)
    assert {r["measure"] for r in rows if r["group"] == "< 5"} == {"suppressed"}
    assert all(r.get("estimate") is None for r in rows if r["suppressed"])


def test_summary_reads_fev1_at_start_from_the_readings_around_it() -> None:
    rng = np.random.default_rng(1)
    s = summarize(_patient(rng, 8.0, pct_at_start=66, menopausal="postmenopausal"))
    assert s is not None
    assert s.fev1_pct_at_start == pytest.approx(66, abs=0.2)
    assert s.menopausal_status == "postmenopausal"
    assert s.years_diagnosis_to_start == pytest.approx((date(2026, 1, 1) - date(2023, 6, 1)).days / 365.25)
