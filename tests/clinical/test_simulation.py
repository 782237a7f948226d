"""The synthetic cohort is reproducible and follows the published figures."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from backend.clinical.evaluate import evaluate_patient
from backend.clinical.simulation import (
    UNTREATED_SLOPE_MEAN,
    UNTREATED_SLOPE_SD,
    CohortConfig,
    simulate_cohort,
    simulate_fev1_cohort,
)
from backend.clinical.thresholds import DEFAULT_THRESHOLDS


def test_same_seed_same_cohort_other_seed_other_cohort() -> None:
    cfg = CohortConfig(n_patients=4, days=200)
    a = simulate_cohort(cfg)
    b = simulate_cohort(cfg)
    assert [p.history for p in a] == [p.history for p in b]
    c = simulate_cohort(cfg, seed=cfg.seed + 1)
    assert [p.history.readings for p in a] != [p.history.readings for p in c]


def test_true_slopes_follow_the_registry_distribution() -> None:
    cohort = simulate_fev1_cohort(CohortConfig(n_patients=400, days=30, treatment_start_p=0))
    slopes = np.array([t.true_slope_ml_per_year for _, t in cohort])
    assert abs(slopes.mean() - UNTREATED_SLOPE_MEAN) < 10  # Gupta 2019: -89 ± 53
    assert abs(slopes.std() - UNTREATED_SLOPE_SD) < 8


def test_noise_reading_frequency_and_autocorrelation() -> None:
    cfg = CohortConfig(
        n_patients=60,
        days=365,
        true_slope_ml_per_year=0.0,
        treatment_start_p=0,
        outlier_p=0.0,
        graded_device_p=0.0,
        device_change_p=0.0,
        learning_effect_ml=0.0,
        second_session_p=0.0,
        gaps_per_year=0.0,
        within_day_sd_ml=0.0,
        ar1_rho=0.5,
        noise_sd_ml=150.0,
    )
    sds, rhos, freq = [], [], []
    for arrays, truth in simulate_fev1_cohort(cfg):
        r = arrays.fev1_l - truth.baseline_fev1_l
        sds.append(r.std())
        consecutive = np.diff(arrays.day) == 1
        rhos.append(np.corrcoef(r[:-1][consecutive], r[1:][consecutive])[0, 1])
        freq.append(arrays.day.size / 365 * 7)
    assert 0.13 < float(np.mean(sds)) < 0.16
    assert 0.4 < float(np.mean(rhos)) < 0.6
    assert 4.7 < float(np.mean(freq)) < 5.3


def test_full_patients_carry_treatment_troughs_and_aware_times() -> None:
    cohort = simulate_cohort(CohortConfig(n_patients=30, days=730, treatment_start_p=1.0))
    treated = [p for p in cohort if p.truth.treatment_start_day is not None]
    assert len(treated) == 30
    for p in treated:
        h = p.history
        assert h.facts.treatment_status == "on_sirolimus"
        assert h.regimens[0].kind == "start"
        assert h.troughs and h.doses
        assert all(r.measured_at.tzinfo is not None for r in h.readings)
        assert {r.setting for r in h.readings} == {"home", "clinic"}
        assert p.truth.on_treatment_slope_ml_per_year is not None


def test_engine_runs_on_a_simulated_cohort_deterministically() -> None:
    cohort = simulate_cohort(CohortConfig(n_patients=12, days=500))
    t = DEFAULT_THRESHOLDS
    as_of = datetime.combine(CohortConfig.start + timedelta(days=480), datetime.min.time()).astimezone()
    for p in cohort:
        e1 = evaluate_patient(p.history, as_of=as_of, thresholds=t)
        e2 = evaluate_patient(p.history, as_of=as_of, thresholds=t)
        assert e1 == e2
        assert e1.trend.verdict in ("insufficient_data", "stable", "declining", "improving", "rapid_decline")
        for c in e1.candidates:
            assert c.severity in ("urgent", "review", "digest")
            assert c.episode_key.startswith(c.rule)
            assert p.history.facts.patient_id not in c.explanation


def test_home_data_artefacts_are_simulated() -> None:
    from dataclasses import replace

    from backend.clinical.simulation import CohortConfig, simulate_fev1_cohort
    from backend.clinical.trend import ols_slope

    base = CohortConfig(
        n_patients=6,
        days=400,
        seed=4,
        true_slope_ml_per_year=0.0,
        treatment_start_p=0.0,
        device_change_p=0.0,
        outlier_p=0.0,
        graded_device_p=0.0,
    )
    plain = simulate_fev1_cohort(base)
    drift = simulate_fev1_cohort(replace(base, effort_drift_ml_per_year=-124.0))
    step = simulate_fev1_cohort(replace(base, replacement_step_ml=-200.0, replacement_day=200))
    serial = simulate_fev1_cohort(replace(base, replacement_step_ml=-200.0, replacement_new_serial=True))
    dips = simulate_fev1_cohort(replace(base, infection_dips_per_year=3.0))
    no_dips = simulate_fev1_cohort(replace(base, infection_dips_per_year=3.0, infection_dip_fraction=0.0))
    for (a, _), (b, _), (c, _), (d, _) in zip(plain, drift, step, serial, strict=True):
        diff = b.fev1_l - a.fev1_l
        slope = ols_slope(a.day.astype(float), diff)
        assert slope is not None and abs(slope * 365250 + 124) < 15  # rounding only
        after = c.day >= 200
        assert np.allclose((c.fev1_l - a.fev1_l)[after], -0.2, atol=0.0015)
        assert (c.device == 0).all() and (d.device[d.day >= 300] == 1).all()
    for (a, _), (d, _) in zip(no_dips, dips, strict=True):
        gap = a.fev1_l - d.fev1_l
        assert gap.min() >= -0.0015  # a dip only lowers readings
        assert gap.max() > 0.15  # 15 % of >= 0.9 L at the dip's first day
        assert gap[-30:].max() < gap.max()  # and recovers
