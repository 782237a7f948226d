"""The offline boundary calibration judges each night exactly as the product does."""

from __future__ import annotations

import numpy as np
import pytest

from backend.clinical.boundary_calibration import Candidate, Recording, evaluate, first_flag_days, record
from backend.clinical.detection_report import patient_series
from backend.clinical.replay import fev1_first_flags
from backend.clinical.simulation import CohortConfig, simulate_fev1_cohort
from backend.clinical.thresholds import DEFAULT_THRESHOLDS


def _cohort(slope: float, n: int, seed: int) -> CohortConfig:
    return CohortConfig(
        n_patients=n,
        days=600,
        seed=seed,
        days_per_week=5.0,
        noise_sd_ml=150.0,
        ar1_rho=0.3,
        true_slope_ml_per_year=slope,
        treatment_start_p=0.0,
    )


@pytest.fixture(scope="module")
def recordings() -> dict[float, tuple[CohortConfig, Recording]]:
    out = {}
    for slope, seed in ((-144.0, 11), (-60.0, 12)):
        cfg = _cohort(slope, 5, seed)
        out[slope] = (cfg, record(cfg, DEFAULT_THRESHOLDS, 599))
    return out


@pytest.mark.parametrize(
    "override",
    [
        {},
        {
            "rapid_decline_late_exponent": 0.0,
            "rapid_decline_early_exponent": 0.5,
            "rapid_decline_confidence": 0.98,
            "rapid_decline_early_until_days": 365,  # another pivot: both judge by the same one
        },
        {"rapid_decline_confidence": 0.9, "rapid_decline_ci_high_below_ml_per_year": 0.0},
    ],
)
def test_offline_first_flags_are_those_of_the_nightly_replay(
    override: dict[str, float], recordings: dict[float, tuple[CohortConfig, Recording]]
) -> None:
    t = DEFAULT_THRESHOLDS.merged(override)
    for slope, (cfg, rec) in recordings.items():
        offline = first_flag_days(rec, t)
        replayed = [
            fev1_first_flags(patient_series(a, t), 0, 599, t, acute=False).rapid_decline_day
            for a, _ in simulate_fev1_cohort(cfg)
        ]
        assert [np.inf if d is None else float(d) for d in replayed] == offline.tolist()
        if slope == -144.0:
            assert np.isfinite(offline).sum() >= 3  # the comparison is not only of "never"


def test_a_stricter_boundary_never_flags_more_or_earlier(
    recordings: dict[float, tuple[CohortConfig, Recording]],
) -> None:
    rec = recordings[-144.0][1]
    base = Candidate.of(DEFAULT_THRESHOLDS)
    strict = Candidate(0.99, base.early_exponent, base.late_exponent, base.pivot_days)
    a, b = evaluate([base, strict], DEFAULT_THRESHOLDS, rec, rec)
    assert b.decline_12 <= a.decline_12 and b.decline_18 <= a.decline_18
    assert np.all(
        first_flag_days(rec, strict.thresholds(DEFAULT_THRESHOLDS))
        >= first_flag_days(rec, base.thresholds(DEFAULT_THRESHOLDS))
    )


def test_the_follow_up_must_fit_the_window() -> None:
    with pytest.raises(ValueError, match="window"):
        record(_cohort(-144.0, 1, 1), DEFAULT_THRESHOLDS, DEFAULT_THRESHOLDS.trend_window_days)


def test_one_look_judges_each_patient_on_her_last_night_before_the_look() -> None:
    from backend.clinical.boundary_calibration import one_look_share

    nan = float("nan")
    # pid, day, span, n, slope, se, neff, alt slope/se/neff, withheld
    rows = np.array(
        [
            [0, 300, 290, 200, -200.0, 20.0, 100, nan, nan, nan, 0],  # clear then...
            [0, 364, 350, 240, -100.0, 60.0, 120, nan, nan, nan, 0],  # ...not on the look night
            [1, 364, 350, 240, -150.0, 30.0, 120, nan, nan, nan, 0],  # -150 + 1.645 * 30 < -30
            [1, 400, 390, 260, 0.0, 30.0, 130, nan, nan, nan, 0],  # after the look: ignored
        ]
    )
    rec = Recording(3, rows)  # patient 2 has no night: counted, never flagged
    assert one_look_share(rec, 364, DEFAULT_THRESHOLDS) == pytest.approx(1 / 3)
    assert one_look_share(rec, 299, DEFAULT_THRESHOLDS) == 0.0


def test_best_keeps_the_budget_and_early_detection_of_fast_declines() -> None:
    from backend.clinical.boundary_calibration import Operating, best

    def op(conf: float, d12: float, null_ever: float, fast_9: float) -> Operating:
        c = Candidate(conf, 1.0, 1.0, 365)
        return Operating(c, d12, 0.95, 0.99, 10.0, 0.02, null_ever, (0.01,), fast_9)

    ops = [
        op(0.90, 0.70, 0.08, 0.40),  # over the false-flag budget
        op(0.91, 0.62, 0.05, 0.00),  # within it, but nobody flagged before month 10
        op(0.92, 0.58, 0.05, 0.30),
        op(0.93, 0.55, 0.04, 0.35),
    ]
    kept = best(ops, max_false=0.05, min_decline_18=0.9, min_fast_9=0.25)
    assert [o.candidate.confidence for o in kept] == [0.92, 0.93]
    assert best(ops, max_false=0.05, min_decline_18=0.9)[0].candidate.confidence == 0.91
