"""Whole-patient evaluation: only past data, determinism, segments, rule wiring."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest

from backend.clinical.evaluate import evaluate_patient
from backend.clinical.model import (
    DoseLog,
    LamEvent,
    PatientHistory,
    RegimenEvent,
    SideEffectReport,
    SpirometryReading,
    TroughResult,
)
from backend.clinical.replay import first_flags
from backend.clinical.thresholds import DEFAULT_THRESHOLDS

from .helpers import daily_readings, facts, local

T = DEFAULT_THRESHOLDS
START = local(2024, 1, 1, 9)


def _declining(
    days: int = 400, slope_ml: float = -200.0, sd: float = 0.05, seed: int = 1
) -> list[SpirometryReading]:
    rng = np.random.default_rng(seed)
    values = 2.5 + slope_ml / 365250 * np.arange(days) + rng.normal(0, sd, days)
    return daily_readings(np.round(values, 3).tolist(), START)


def test_clear_decline_is_flagged_with_numbers() -> None:
    h = PatientHistory(facts(), _declining())
    ev = evaluate_patient(h, as_of=START + timedelta(days=399, hours=2), thresholds=T)
    assert ev.trend.verdict == "rapid_decline"
    assert ev.trend.slope_ml_per_year == pytest.approx(-200, abs=25)
    assert ev.trend.ci_low is not None and ev.trend.ci_low < -200 < (ev.trend.ci_high or 0)
    assert ev.trend.slope_pct_pred_per_year is not None
    assert ev.trend.slope_pct_pred_per_year < -4
    rules = [c.rule for c in ev.candidates]
    assert "rapid_fev1_decline" in rules
    (c,) = [c for c in ev.candidates if c.rule == "rapid_fev1_decline"]
    assert c.episode_key == "rapid_fev1_decline:untreated"


def test_stable_patient_is_not_flagged() -> None:
    h = PatientHistory(facts(), _declining(slope_ml=-20.0, sd=0.15, seed=4))
    ev = evaluate_patient(h, as_of=START + timedelta(days=399, hours=2), thresholds=T)
    assert ev.trend.verdict in ("stable", "declining", "improving")
    assert not [c for c in ev.candidates if c.rule == "rapid_fev1_decline"]


def test_too_short_a_series_gives_no_verdict() -> None:
    h = PatientHistory(facts(), _declining(days=120))
    ev = evaluate_patient(h, as_of=START + timedelta(days=130), thresholds=T)
    assert ev.trend.verdict == "insufficient_data"
    assert not [c for c in ev.candidates if c.rule == "rapid_fev1_decline"]


def test_only_data_up_to_as_of_is_used_and_result_is_deterministic() -> None:
    readings = _declining(days=300, slope_ml=0.0, sd=0.03)
    as_of = START + timedelta(days=299, hours=2)
    crash = daily_readings([1.0] * 10, START + timedelta(days=300), prefix="late")
    later_dose = [DoseLog(f"m{i}", as_of + timedelta(days=i + 1), "missed") for i in range(5)]
    h1 = PatientHistory(facts(), readings)
    h2 = PatientHistory(
        facts(),
        [*crash, *readings],
        doses=later_dose,
        events=[LamEvent("e", as_of + timedelta(hours=1), "pneumothorax")],
    )
    e1 = evaluate_patient(h1, as_of=as_of, thresholds=T)
    e2 = evaluate_patient(h2, as_of=as_of, thresholds=T)
    assert e1.trend == e2.trend
    assert e1.candidates == e2.candidates == ()
    shuffled = list(readings)
    random.Random(5).shuffle(shuffled)
    e3 = evaluate_patient(PatientHistory(facts(), shuffled), as_of=as_of, thresholds=T)
    assert e3 == e1


def test_naive_as_of_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        evaluate_patient(PatientHistory(facts()), as_of=START.replace(tzinfo=None), thresholds=T)


def test_segments_before_and_on_treatment_answer_is_it_working() -> None:
    days = 800
    t = np.arange(days)
    rng = np.random.default_rng(2)
    before = 2.8 - 0.150 / 365.25 * t
    s = 400
    on = before[s] + 0.010 / 365.25 * (t - s)
    values = np.where(t < s, before, on) + rng.normal(0, 0.03, days)
    readings = daily_readings(np.round(values, 3).tolist(), START)
    start = RegimenEvent("g", START + timedelta(days=s, hours=-1), "start", 2.0, "sirolimus")
    h = PatientHistory(facts(treatment_status="on_sirolimus"), readings, regimens=[start])
    ev = evaluate_patient(h, as_of=START + timedelta(days=days - 1, hours=2), thresholds=T)
    labels = [seg.label for seg in ev.trend.segments]
    assert labels == ["before_treatment", "on_treatment"]
    b, o = ev.trend.segments
    assert b.slope_ml_per_year == pytest.approx(-150, abs=20)
    assert o.slope_ml_per_year == pytest.approx(10, abs=20)
    assert ev.trend.treatment_effect_ml_per_year == pytest.approx(160, abs=30)
    lo, hi = ev.trend.treatment_effect_ci_low, ev.trend.treatment_effect_ci_high
    assert lo is not None and hi is not None and 0 < lo < 160 < hi
    # the current trend only uses on-treatment readings
    assert ev.trend.window_start is not None
    assert ev.trend.window_start >= (START + timedelta(days=s)).date()
    assert ev.trend.verdict != "rapid_decline"


def test_acute_drop_and_drop_with_symptoms() -> None:
    values = [2.5] * 40 + [2.1, 2.12]
    readings = daily_readings(values, START)
    as_of = START + timedelta(days=41, hours=3)
    h = PatientHistory(facts(), readings)
    ev = evaluate_patient(h, as_of=as_of, thresholds=T)
    assert [c.rule for c in ev.candidates] == ["acute_fev1_drop"]
    cough = SideEffectReport("s", START + timedelta(days=39), "cough", "moderate")
    h2 = PatientHistory(facts(), readings, side_effects=[cough])
    ev2 = evaluate_patient(h2, as_of=as_of, thresholds=T)
    rules = [c.rule for c in ev2.candidates]
    assert "fev1_drop_with_symptoms" in rules
    assert "acute_fev1_drop" not in rules


def test_trough_rules_wired_in() -> None:
    start = RegimenEvent("g", local(2025, 1, 1, 8), "start", 2.0, "sirolimus")
    f = facts(treatment_status="on_sirolimus")
    due = evaluate_patient(PatientHistory(f, regimens=[start]), as_of=local(2025, 1, 13), thresholds=T)
    assert [c.rule for c in due.candidates] == ["trough_draw_due"]
    assert due.trough_schedule[0].status == "due"
    missed = evaluate_patient(PatientHistory(f, regimens=[start]), as_of=local(2025, 2, 1), thresholds=T)
    assert [c.rule for c in missed.candidates] == ["trough_draw_missed"]
    drawn = local(2025, 1, 15, 8)
    low = TroughResult("t1", drawn, 3.2, drawn - timedelta(hours=24))
    doses = [DoseLog(f"d{i}", local(2025, 1, 1, 8) + timedelta(days=i), "taken", 2.0) for i in range(14)]
    ev = evaluate_patient(
        PatientHistory(f, doses=doses, regimens=[start], troughs=[low]),
        as_of=local(2025, 1, 16),
        thresholds=T,
    )
    (c,) = ev.candidates
    assert c.rule == "trough_out_of_range" and c.numbers["kind"] == "dose_question"


def test_low_trough_with_stable_fev1_on_treatment_is_not_a_dose_question() -> None:
    start = RegimenEvent("g", START - timedelta(days=30), "start", 2.0, "sirolimus")
    readings = _declining(slope_ml=0.0, sd=0.03, seed=3)
    as_of = START + timedelta(days=399, hours=2)
    drawn = as_of - timedelta(hours=1)
    low = TroughResult("t1", drawn, 3.0, drawn - timedelta(hours=24))
    on = facts(treatment_status="on_sirolimus")
    ev = evaluate_patient(
        PatientHistory(on, readings, regimens=[start], troughs=[low]), as_of=as_of, thresholds=T
    )
    assert ev.trend.verdict == "stable"
    (c,) = [c for c in ev.candidates if c.rule == "trough_out_of_range"]
    assert c.numbers["kind"] == "low_fev1_stable" and c.numbers["fev1_verdict"] == "stable"
    assert "proportional_dose_mg" not in c.numbers


def test_event_alerts_and_overdue_and_missed_doses_in_nightly_pass() -> None:
    f = facts(treatment_status="on_sirolimus")
    start = RegimenEvent("g", local(2025, 1, 1, 8), "start", 2.0, "sirolimus")
    t1 = TroughResult("t1", local(2025, 1, 14, 8), 8.0, local(2025, 1, 13, 8))
    now = local(2025, 3, 1, 22)
    readings = daily_readings([2.5] * 20, local(2025, 2, 1))  # last on 20 Feb
    doses = [DoseLog(f"m{i}", now - timedelta(days=i * 3 + 1), "missed") for i in range(3)]
    h = PatientHistory(
        f,
        readings,
        doses=doses,
        regimens=[start],
        troughs=[t1],
        side_effects=[SideEffectReport("s", now - timedelta(days=1), "dyspnea", "moderate")],
        events=[LamEvent("e", now - timedelta(days=2), "chylothorax")],
    )
    ev = evaluate_patient(h, as_of=now, thresholds=T)
    rules = sorted(c.rule for c in ev.candidates)
    assert rules == ["lam_event", "readings_overdue", "repeated_missed_doses", "urgent_side_effect"]
    # the same reports a week later are no longer re-emitted
    ev2 = evaluate_patient(h, as_of=now + timedelta(days=8), thresholds=T)
    assert "urgent_side_effect" not in {c.rule for c in ev2.candidates}


def test_per_patient_overrides_change_the_verdict() -> None:
    h = PatientHistory(facts(), _declining(slope_ml=-70.0, sd=0.02))
    as_of = START + timedelta(days=399, hours=2)
    assert evaluate_patient(h, as_of=as_of, thresholds=T).trend.verdict == "declining"
    patient = T.merged({"rapid_decline_ml_per_year": -60})
    assert evaluate_patient(h, as_of=as_of, thresholds=patient).trend.verdict == "rapid_decline"


def test_replay_first_flags() -> None:
    values = [2.5] * 60 + [2.1] * 5
    h = PatientHistory(facts(), daily_readings(values, START))
    found = first_flags(h, date(2024, 1, 1), date(2024, 3, 10), T)
    assert found["acute_fev1_drop"] == date(2024, 3, 2)  # second low day (days 60, 61)
    assert "rapid_fev1_decline" not in found
    h2 = replace(h, readings=daily_readings(values[:60], START))
    assert first_flags(h2, date(2024, 1, 1), date(2024, 3, 10), T) == {
        "readings_overdue": date(2024, 3, 9)
    }  # last reading 29 Feb, 8 days allowed


def test_dose_change_segments_are_optional() -> None:
    readings = _declining(days=500, slope_ml=-50.0, sd=0.03)
    regimens = [
        RegimenEvent("g1", START + timedelta(days=100), "start", 2.0, "sirolimus"),
        RegimenEvent("g2", START + timedelta(days=300), "dose_change", 3.0, "sirolimus"),
    ]
    h = PatientHistory(facts(treatment_status="on_sirolimus"), readings, regimens=regimens)
    as_of = START + timedelta(days=499, hours=2)
    plain = evaluate_patient(h, as_of=as_of, thresholds=T)
    assert [s.label for s in plain.trend.segments] == ["before_treatment", "on_treatment"]
    split = evaluate_patient(h, as_of=as_of, thresholds=T.merged({"split_at_dose_changes": True}))
    labels = [s.label for s in split.trend.segments]
    assert labels == [
        "before_treatment",
        "on_treatment",
        "dose_" + (START + timedelta(days=300)).date().isoformat(),
    ]
    assert split.trend.segments[1].end < split.trend.segments[2].start


def test_stop_ends_the_on_treatment_segment() -> None:
    readings = _declining(days=500, slope_ml=-50.0, sd=0.03)
    regimens = [
        RegimenEvent("g1", START + timedelta(days=100), "start", 2.0, "sirolimus"),
        RegimenEvent("g2", START + timedelta(days=300), "stop", None, "sirolimus"),
    ]
    h = PatientHistory(facts(treatment_status="stopped"), readings, regimens=regimens)
    ev = evaluate_patient(h, as_of=START + timedelta(days=499, hours=2), thresholds=T)
    assert [s.label for s in ev.trend.segments] == ["before_treatment", "on_treatment", "off_treatment"]
    assert ev.trend.window_start is not None
    assert ev.trend.window_start >= (START + timedelta(days=300)).date()


def test_confirmation_window_option() -> None:
    # a clear decline, but 80 days ago the series was too short for a verdict:
    # an 80-day confirmation holds the alert back until the earlier window agrees
    h = PatientHistory(facts(), _declining(days=261, slope_ml=-300.0, sd=0.03))
    as_of = START + timedelta(days=260, hours=2)
    assert evaluate_patient(h, as_of=as_of, thresholds=T).trend.verdict == "rapid_decline"
    confirmed = T.merged({"rapid_decline_confirm_days": 80})
    ev = evaluate_patient(h, as_of=as_of, thresholds=confirmed)
    assert ev.trend.verdict == "declining"
    assert not [c for c in ev.candidates if c.rule == "rapid_fev1_decline"]
    assert (
        evaluate_patient(
            h, as_of=as_of, thresholds=T.merged({"rapid_decline_confirm_days": 30})
        ).trend.verdict
        == "rapid_decline"
    )


def test_decline_on_treatment_is_continued_decline_with_trough_and_adherence() -> None:
    readings = _declining(days=420)
    start = RegimenEvent("g", START - timedelta(days=30), "start", 2.0, "sirolimus")
    as_of = START + timedelta(days=419, hours=2)
    trough = TroughResult("t", as_of - timedelta(days=20), 3.1)
    missed = [DoseLog(f"d{i}", as_of - timedelta(days=i + 1), "missed") for i in range(4)]
    h = PatientHistory(
        facts(treatment_status="on_sirolimus"), readings, regimens=[start], troughs=[trough], doses=missed
    )
    ev = evaluate_patient(h, as_of=as_of, thresholds=T)
    (c,) = [c for c in ev.candidates if c.rule == "rapid_fev1_decline"]
    assert c.episode_key.startswith("rapid_fev1_decline:on_treatment")
    assert c.explanation.startswith("Continued decline on treatment.")
    assert "untreated rate of the ATS/JRS 2016 criterion" in c.explanation
    assert f"Latest sirolimus trough 3.1 ng/mL on {trough.drawn_at.date().isoformat()}" in c.explanation
    assert "4 missed dose(s)" in c.explanation
    assert c.numbers["context_latest_trough_ng_ml"] == 3.1 and c.numbers["context_missed_doses"] == 4
    untreated = evaluate_patient(PatientHistory(facts(), readings), as_of=as_of, thresholds=T)
    (u,) = [c for c in untreated.candidates if c.rule == "rapid_fev1_decline"]
    assert "Continued decline" not in u.explanation and "trough" not in u.explanation


def test_leaving_out_the_segment_trends_changes_no_candidate() -> None:
    """`with_segments=False` (the nightly pass) gives the same candidates and
    the same trend, less the per-segment trends and the treatment effect, on
    simulated patients (about half start sirolimus) at several nightly looks."""
    from backend.clinical.simulation import CohortConfig, simulate_patient

    cfg = CohortConfig(n_patients=24, seed=5, days=600, treatment_start_p=0.5, acute_drop_p=0.2)
    children = np.random.SeedSequence(cfg.seed).spawn(cfg.n_patients)
    with_segments = candidates = 0
    for i in range(cfg.n_patients):
        history = simulate_patient(np.random.default_rng(children[i]), cfg, i).history
        for day in (200, 400, 599):
            as_of = local(2024, 1, 1, 23) + timedelta(days=day)
            full = evaluate_patient(history, as_of=as_of, thresholds=T)
            lean = evaluate_patient(history, as_of=as_of, thresholds=T, with_segments=False)
            assert lean.candidates == full.candidates
            assert lean.trend == replace(
                full.trend,
                segments=(),
                treatment_effect_ml_per_year=None,
                treatment_effect_ci_low=None,
                treatment_effect_ci_high=None,
            )
            assert lean.trough_schedule == full.trough_schedule
            with_segments += len(full.trend.segments) > 1
            candidates += len(full.candidates)
    assert with_segments > 10 and candidates > 10
