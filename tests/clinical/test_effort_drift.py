"""Effort drift: PEF falling relative to FEV1 withholds a rapid-decline verdict.

PEF is the most effort-dependent index (ATS/ERS 2019), so a slowly worsening,
ungraded effort lowers ln(PEF/FEV1); a true loss of lung function lowers both
and leaves the ratio level. The pure function must tell the two apart, and the
engine must not report the drifting patient's fall as a confident decline.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np

from backend.clinical.evaluate import evaluate_patient
from backend.clinical.model import PatientHistory, SpirometryReading
from backend.clinical.series import series_from_arrays
from backend.clinical.simulation import CohortConfig, simulate_fev1_cohort
from backend.clinical.thresholds import DEFAULT_THRESHOLDS
from backend.clinical.trend import effort_drift

from .helpers import facts, local

T = DEFAULT_THRESHOLDS
OFF = T.merged({"effort_drift_min_pct_per_year": 0.0})
BASE = CohortConfig(
    n_patients=12,
    days=450,
    seed=31,
    true_slope_ml_per_year=0.0,
    treatment_start_p=0.0,
)


def _drift_of(cfg: CohortConfig) -> list[bool]:
    """Effort drift detected over each simulated patient's last 365 days?"""
    out = []
    for arrays, _ in simulate_fev1_cohort(cfg):
        trusted = np.isin(arrays.grade, ["", "A", "B", "C"])
        assert arrays.pef_l_s is not None
        s = series_from_arrays(
            arrays.day[trusted],
            arrays.fev1_l[trusted],
            arrays.device[trusted],
            T,
            pef_l_s=arrays.pef_l_s[trusted],
        )
        part = s.between(cfg.days - 365, cfg.days)
        d = effort_drift(part.day, part.effort, part.device, T)
        assert d is not None and d.n_days >= 150
        out.append(d.detected)
    return out


def test_drift_is_detected_on_a_drifting_series() -> None:
    found = _drift_of(replace(BASE, effort_drift_ml_per_year=-124.0))
    assert sum(found) >= 10, found


def test_drift_is_not_detected_on_a_stable_series() -> None:
    assert sum(_drift_of(BASE)) <= 1


def test_drift_is_not_detected_on_a_true_decline() -> None:
    assert sum(_drift_of(replace(BASE, true_slope_ml_per_year=-144.0))) <= 1


def test_no_pef_means_no_judgement() -> None:
    day = np.arange(740000, 740300)
    assert effort_drift(day, None, np.zeros(300, np.int64), T) is None
    assert effort_drift(day, np.full(300, np.nan), np.zeros(300, np.int64), T) is None


def test_simulated_effort_lowers_pef_most_fev1_least() -> None:
    cfg = replace(BASE, n_patients=4, outlier_p=0.0, graded_device_p=0.0, device_change_p=0.0)
    plain = simulate_fev1_cohort(cfg)
    drift = simulate_fev1_cohort(replace(cfg, effort_drift_ml_per_year=-124.0))
    for (a, _), (b, _) in zip(plain, drift, strict=True):
        assert a.pef_l_s is not None and b.pef_l_s is not None
        assert a.fvc_l is not None and b.fvc_l is not None
        late = a.day >= 400
        fev1 = np.mean(np.log(b.fev1_l[late] / a.fev1_l[late]))
        pef = np.mean(np.log(b.pef_l_s[late] / a.pef_l_s[late]))
        fvc = np.mean(np.log(b.fvc_l[late] / a.fvc_l[late]))
        assert pef < fvc < fev1 < 0
        assert 2.5 < pef / fev1 < 3.5  # PEF three times as effort-dependent


def _readings(pef_follows_effort: bool) -> list[SpirometryReading]:
    """A year of daily home sessions, FEV1 falling 150 mL/yr, seeded noise."""
    rng = np.random.default_rng(5)
    start = local(2024, 1, 1, 9)
    out = []
    for i in range(400):
        years = i / 365.25
        fev1 = 2.5 - 0.150 * years + rng.normal(0.0, 0.06)
        # effort drift: the whole fall is effort, and PEF loses three times as much
        effort = (2.5 - 0.150 * years) / 2.5 if pef_follows_effort else 1.0
        pef = 2.4 * fev1 * effort**2 * np.exp(rng.normal(0.0, 0.04))
        out.append(
            SpirometryReading(
                f"r{i}",
                start + timedelta(days=i),
                round(float(fev1), 3),
                None,
                None,
                "home",
                "dev1",
                round(float(pef), 2),
            )
        )
    return out


def test_effort_drift_withholds_the_rapid_decline_and_says_why() -> None:
    as_of = local(2025, 2, 3, 12)
    history = PatientHistory(facts(), _readings(pef_follows_effort=True))
    ev = evaluate_patient(history, as_of=as_of, thresholds=T)
    rules = {c.rule for c in ev.candidates}
    assert "rapid_fev1_decline" not in rules
    assert "fev1_effort_drift" in rules
    assert ev.trend.verdict != "rapid_decline"
    assert ev.trend.rapid_decline_withheld and ev.trend.effort_drift_detected
    assert ev.trend.effort_drift_pct_per_year is not None and ev.trend.effort_drift_pct_per_year < -8
    assert ev.trend.effort_note is not None
    assert "effort may be worsening" in ev.trend.effort_note.lower()
    assert "check technique" in ev.trend.effort_note
    assert "not reported as a confident decline" in ev.trend.effort_note
    [alert] = [c for c in ev.candidates if c.rule == "fev1_effort_drift"]
    assert alert.severity == "review" and "Check technique" in alert.explanation
    # the same data with the check turned off: the rapid-decline rule fires
    off = evaluate_patient(history, as_of=as_of, thresholds=OFF)
    assert off.trend.verdict == "rapid_decline"
    assert {c.rule for c in off.candidates} >= {"rapid_fev1_decline"}
    assert "fev1_effort_drift" not in {c.rule for c in off.candidates}


def test_a_true_decline_with_level_pef_ratio_stays_a_rapid_decline() -> None:
    as_of = local(2025, 2, 3, 12)
    ev = evaluate_patient(
        PatientHistory(facts(), _readings(pef_follows_effort=False)), as_of=as_of, thresholds=T
    )
    assert ev.trend.verdict == "rapid_decline"
    assert not ev.trend.effort_drift_detected and not ev.trend.rapid_decline_withheld
    assert ev.trend.effort_note is None
    rules = {c.rule for c in ev.candidates}
    assert "rapid_fev1_decline" in rules and "fev1_effort_drift" not in rules
