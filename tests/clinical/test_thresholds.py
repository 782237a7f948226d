from __future__ import annotations

from dataclasses import fields

import pytest

from backend.clinical.thresholds import DEFAULT_THRESHOLDS, THRESHOLD_SOURCES, Thresholds


def test_published_defaults() -> None:
    t = DEFAULT_THRESHOLDS
    assert t.rapid_decline_ml_per_year == -90.0  # ATS/JRS 2016
    assert t.acute_drop_fraction == 0.10  # Bjortuft 1993
    assert t.acute_persistence_days == 2
    assert t.acute_baseline_days == 7
    assert (t.trough_target_low, t.trough_target_high) == (5.0, 15.0)  # MILES
    assert (t.true_trough_min_hours, t.true_trough_max_hours) == (20.0, 28.0)
    assert (t.start_due_day, t.start_window_start_day, t.start_window_end_day) == (14, 10, 20)
    assert (t.dose_change_due_day, t.dose_change_window_start_day, t.dose_change_window_end_day) == (
        14,
        7,
        21,
    )
    assert t.maintenance_interval_days == 90
    assert (t.draw_grace_days, t.maintenance_grace_days) == (7, 14)
    assert t.fever_c == 38.0
    assert t.start_criterion_pct_predicted == 70.0
    assert t.trusted_grades == ("A", "B", "C")
    assert t.steady_state_days == 7
    assert (t.missed_doses_count, t.missed_doses_window_days) == (3, 14)


def test_every_field_has_a_source() -> None:
    names = {f.name for f in fields(Thresholds)}
    assert set(THRESHOLD_SOURCES) == names
    assert all(len(v) > 10 for v in THRESHOLD_SOURCES.values())


def test_merged_applies_team_then_patient() -> None:
    team = {"rapid_decline_ml_per_year": -80, "trough_target_high": 10}
    patient = {"trough_target_high": 8.5, "trusted_grades": ["A", "B"]}
    t = DEFAULT_THRESHOLDS.merged(team, patient)
    assert t.rapid_decline_ml_per_year == -80.0
    assert isinstance(t.rapid_decline_ml_per_year, float)
    assert t.trough_target_high == 8.5
    assert t.trusted_grades == ("A", "B")
    assert DEFAULT_THRESHOLDS.trough_target_high == 15.0  # defaults untouched


@pytest.mark.parametrize(
    "override",
    [
        {"no_such_threshold": 1},
        {"learning_days": 3.5},
        {"learning_days": True},
        {"fever_c": "38"},
        {"use_ungraded": 1},
        {"trusted_grades": "ABC"},
        {"trusted_grades": ["A", "Z"]},
        {"acute_drop_fraction": 1.5},
        {"trough_target_low": 20.0},
        {"daily_aggregate": "mean"},
        {"learning_days": -1},
        {"fever_c": float("nan")},
    ],
)
def test_merged_rejects_bad_overrides(override: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - message varies by field
        DEFAULT_THRESHOLDS.merged(override)


def test_repeated_look_and_level_shift_thresholds_are_checked() -> None:
    from backend.clinical.thresholds import DEFAULT_THRESHOLDS as _T

    for bad in (
        {"rapid_decline_early_exponent": -0.5},
        {"rapid_decline_late_exponent": -1.0},
        {"level_shift_z": -1.0},
        {"level_shift_min_days": 2},
        {"rapid_decline_early_until_days": 0},
    ):
        with pytest.raises(ValueError, match="must"):
            _T.merged(bad)
    assert _T.merged({"level_shift_min_ml": 0.0}).level_shift_min_ml == 0.0
