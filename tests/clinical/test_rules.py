"""Each rule on hand-made cases, firing and not firing."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from backend.clinical import catalog, rules
from backend.clinical.model import (
    DoseLog,
    LamEvent,
    RegimenEvent,
    SideEffectReport,
    SpirometryReading,
    TrendResult,
    TroughFlags,
    TroughResult,
    TroughScheduleItem,
)
from backend.clinical.thresholds import DEFAULT_THRESHOLDS

from .helpers import facts, local, series

T = DEFAULT_THRESHOLDS


# ------------------------------------------------------------- rapid decline


def _trend(verdict: str, slope: float = -150.0) -> TrendResult:
    return TrendResult(
        slope,
        slope - 60,
        slope + 60,
        -5.1,
        220,
        300.0,
        verdict,
        window_start=date(2025, 1, 1),
        window_end=date(2025, 10, 28),
        lag1_autocorrelation=0.3,
        effective_n=120.0,
    )


def test_rapid_decline_fires_only_on_that_verdict() -> None:
    c = rules.rapid_fev1_decline(_trend("rapid_decline"), T, segment_key="untreated")
    assert c is not None
    assert (c.rule, c.severity) == ("rapid_fev1_decline", "review")
    assert c.numbers["slope_ml_per_year"] == -150.0
    assert c.numbers["threshold_ml_per_year"] == -90.0
    assert "150 mL/year" in c.explanation and "ATS/JRS 2016" in c.explanation
    for v in ("stable", "declining", "insufficient_data", "improving"):
        assert rules.rapid_fev1_decline(_trend(v), T, segment_key="untreated") is None


def test_rapid_decline_episode_key_is_stable_while_decline_persists() -> None:
    a = rules.rapid_fev1_decline(_trend("rapid_decline", -150), T, segment_key="untreated")
    b = rules.rapid_fev1_decline(_trend("rapid_decline", -170), T, segment_key="untreated")
    c = rules.rapid_fev1_decline(_trend("rapid_decline", -170), T, segment_key="on_treatment:2025-06-01")
    assert a is not None and b is not None and c is not None
    assert a.episode_key == b.episode_key
    assert c.episode_key != a.episode_key


# ---------------------------------------------------------------- acute drop


def test_acute_drop_fires_after_two_days_at_least_10_percent_low() -> None:
    s = series([2.50] * 10 + [2.20, 2.21])  # 12 % below the 7-day mean
    last = int(s.day[-1])
    drop = rules.find_acute_drop(s, last, T)
    assert drop is not None
    assert drop.onset_day == int(s.day[10])
    assert drop.baseline_l == pytest.approx(2.5)
    assert drop.n_baseline == 7
    c = rules.acute_fev1_drop(drop, T)
    assert c is not None and c.rule == "acute_fev1_drop"
    assert c.numbers["drop_pct"] == pytest.approx(11.8, abs=0.1)
    assert c.patient_message


@pytest.mark.parametrize(
    "values",
    [
        [2.50] * 10 + [2.30, 2.31],  # only 8 % below
        [2.50] * 10 + [2.20],  # one day only
        [2.50] * 10 + [2.20, 2.40],  # not persisting: back to normal
        [2.50] * 2 + [2.20, 2.20],  # too little baseline
    ],
)
def test_acute_drop_does_not_fire(values: list[float]) -> None:
    s = series(values)
    assert rules.find_acute_drop(s, int(s.day[-1]), T) is None


def test_acute_drop_needs_recent_readings_and_same_device() -> None:
    s = series([2.50] * 10 + [2.20, 2.21])
    assert rules.find_acute_drop(s, int(s.day[-1]) + 3, T) is None  # old news
    dev = series([2.50] * 10 + [2.20, 2.21], device=[0] * 10 + [1, 1])
    assert rules.find_acute_drop(dev, int(dev.day[-1]), T) is None  # a device change


def test_acute_drop_episode_onset_stays_fixed_while_it_persists() -> None:
    values = [2.50] * 10 + [2.20, 2.21, 2.19, 2.22, 2.18, 2.20]
    s = series(values)
    onsets = set()
    for k in range(12, len(values) + 1):
        part = s.upto(int(s.day[k - 1]))
        drop = rules.find_acute_drop(part, int(part.day[-1]), T)
        assert drop is not None
        c = rules.acute_fev1_drop(drop, T)
        assert c is not None
        onsets.add(c.episode_key)
    assert len(onsets) == 1


def test_acute_drop_mean_statistic_option() -> None:
    s = series([2.50] * 10 + [2.30, 2.10])  # mean 12 % low, one day only 8 % low
    assert rules.find_acute_drop(s, int(s.day[-1]), T) is None
    mean = T.merged({"acute_drop_statistic": "mean"})
    assert rules.find_acute_drop(s, int(s.day[-1]), mean) is not None


# ---------------------------------------------------- drop with symptoms


def _drop_alert() -> rules.AlertCandidate:
    s = series([2.50] * 10 + [2.20, 2.21])
    c = rules.acute_fev1_drop(rules.find_acute_drop(s, int(s.day[-1]), T), T)
    assert c is not None
    return c


def test_drop_with_new_cough_or_fever_becomes_a_question() -> None:
    now = local(2025, 5, 20)
    cough = SideEffectReport("s1", now - timedelta(days=3), "cough", "mild")
    c = rules.fev1_drop_with_symptoms(_drop_alert(), [cough], now - timedelta(days=14), now, T)
    assert c is not None
    assert (c.rule, c.severity) == ("fev1_drop_with_symptoms", "review")
    assert "pneumonitis / infection" in c.explanation
    assert c.numbers["underlying_rule"] == "acute_fev1_drop"
    fever = SideEffectReport("s2", now - timedelta(days=1), "diarrhea", "mild", None, 38.4)
    f = rules.fev1_drop_with_symptoms(_drop_alert(), [fever], now - timedelta(days=14), now, T)
    assert f is not None and "fever 38.4" in f.explanation


def test_drop_without_respiratory_symptoms_stays_plain() -> None:
    now = local(2025, 5, 20)
    reports = [
        SideEffectReport("a", now - timedelta(days=2), "mucositis_oral", "severe"),
        SideEffectReport("b", now - timedelta(days=30), "cough", "moderate"),  # too old
        SideEffectReport("c", now - timedelta(days=2), "cough", "none"),
        SideEffectReport("d", now - timedelta(days=2), "rash_acneiform", "mild", None, 37.9),
    ]
    assert rules.fev1_drop_with_symptoms(_drop_alert(), reports, now - timedelta(days=14), now, T) is None


# ------------------------------------------------------- start criterion


def test_below_start_criterion_in_untreated_patient() -> None:
    f = facts(date_of_birth=date(1985, 5, 20))  # 40 y on 2025-05-20, 165 cm
    now = local(2025, 5, 20, 20)
    day = now.date().toordinal()
    low = series([1.90] * 10, first_day=day - 9)  # 64 % of 2.965 L
    c = rules.treatment_start_criteria(f, low, None, now, T, treated=False)
    assert c is not None
    assert c.rule == "treatment_start_criteria"
    assert c.numbers["criteria_met"] == "fev1_below_pct_predicted"
    assert c.numbers["percent_predicted"] == pytest.approx(64.1, abs=0.3)
    assert "ATS/JRS 2016" in c.explanation
    assert rules.treatment_start_criteria(f, low, None, now, T, treated=True) is None
    ok = series([2.30] * 10, first_day=day - 9)  # 77.6 %
    assert rules.treatment_start_criteria(f, ok, None, now, T, treated=False) is None


def test_start_criterion_display_never_rounds_up_to_the_limit() -> None:
    """69.85 % predicted must not read "70 %" in a "< 70 %" alert."""
    f = facts(date_of_birth=date(1985, 5, 20))  # 40 y on 2025-05-20, 165 cm: predicted 2.9652 L
    now = local(2025, 5, 20, 20)
    day = now.date().toordinal()
    c = rules.treatment_start_criteria(
        f, series([2.0712] * 10, first_day=day - 9), None, now, T, treated=False
    )
    assert c is not None
    pct = c.numbers["percent_predicted"]
    assert isinstance(pct, float) and 69.8 < pct < 69.9
    assert "is 69.8 % predicted" in c.explanation
    assert "70 % predicted (" not in c.explanation


@pytest.mark.parametrize(
    ("value", "shown"), [(69.85, "69.8"), (69.96, "69.9"), (69.9, "69.9"), (70.0, "70.0"), (64.123, "64.1")]
)
def test_shown_below_rounds_down(value: float, shown: str) -> None:
    assert rules.shown_below(value) == shown


def test_below_start_criterion_falls_back_to_clinic() -> None:
    f = facts(date_of_birth=date(1985, 5, 20))
    now = local(2025, 5, 20, 20)
    clinic = SpirometryReading("k", local(2025, 3, 1), 1.8, None, "A", "clinic")
    empty = series([])
    c = rules.treatment_start_criteria(f, empty, clinic, now, T, treated=False)
    assert c is not None and "clinic" in str(c.numbers["source"])
    old = replace(clinic, measured_at=local(2023, 3, 1))
    assert rules.treatment_start_criteria(f, empty, old, now, T, treated=False) is None


# --------------------------------------------------------- trough schedule


def _item(status: str) -> TroughScheduleItem:
    return TroughScheduleItem(
        "dose_change",
        date(2025, 3, 1),
        date(2025, 3, 15),
        date(2025, 3, 8),
        date(2025, 3, 22),
        date(2025, 3, 29),
        status,
    )


def test_trough_schedule_alerts() -> None:
    assert rules.trough_schedule_alert(_item("upcoming")) is None
    assert rules.trough_schedule_alert(_item("done")) is None
    assert rules.trough_schedule_alert(None) is None
    due = rules.trough_schedule_alert(_item("due"))
    assert due is not None and (due.rule, due.severity) == ("trough_draw_due", "digest")
    assert due.episode_key == "trough_draw_due:dose_change:2025-03-15"
    missed = rules.trough_schedule_alert(_item("missed"))
    assert missed is not None and (missed.rule, missed.severity) == ("trough_draw_missed", "review")
    assert missed.episode_key == "trough_draw_missed:dose_change:2025-03-15"


# ------------------------------------------------------------ trough level

DRAWN = local(2025, 5, 10, 8)
START = RegimenEvent("g", DRAWN - timedelta(days=60), "start", 2.0, "sirolimus")


def _flags(**kw: object) -> TroughFlags:
    base: dict[str, object] = {
        "hours_since_last_dose": 24.0,
        "days_since_regimen_change": 60.0,
        "not_true_trough": False,
        "before_steady_state": False,
    }
    base.update(kw)
    return TroughFlags(**base)  # type: ignore[arg-type]


def test_trough_in_range_or_before_steady_state_raises_nothing() -> None:
    ok = TroughResult("t", DRAWN, 9.0, None)
    assert rules.trough_out_of_range(ok, _flags(), [], [START], facts(), T) is None
    low = TroughResult("t", DRAWN, 3.0, None)
    assert rules.trough_out_of_range(low, _flags(before_steady_state=True), [], [START], facts(), T) is None


def test_trough_not_true_trough() -> None:
    high = TroughResult("t", DRAWN, 18.0, None)
    c = rules.trough_out_of_range(
        high, _flags(hours_since_last_dose=12.0, not_true_trough=True), [], [START], facts(), T
    )
    assert c is not None and c.numbers["kind"] == "not_true_trough"
    assert "not a true trough" in c.explanation
    assert "proportional_dose_mg" not in c.numbers


def test_low_trough_with_missed_doses_is_an_adherence_question() -> None:
    low = TroughResult("t", DRAWN, 3.0, None)
    doses = [DoseLog("m", DRAWN - timedelta(days=3), "missed", None)]
    c = rules.trough_out_of_range(low, _flags(), doses, [START], facts(), T)
    assert c is not None and c.numbers["kind"] == "adherence"
    assert "adherence question, not a dose question" in c.explanation
    old_miss = [DoseLog("m", DRAWN - timedelta(days=9), "missed", None)]
    d = rules.trough_out_of_range(low, _flags(), old_miss, [START], facts(), T)
    assert d is not None and d.numbers["kind"] == "dose_question"


def test_dose_question_shows_proportional_arithmetic_not_a_prescription() -> None:
    low = TroughResult("t", DRAWN, 4.0, None)
    c = rules.trough_out_of_range(low, _flags(), [], [START], facts(), T)
    assert c is not None and c.numbers["kind"] == "dose_question"
    assert c.numbers["proportional_dose_mg"] == 3.75  # 2 mg x 7.5 / 4 (lower part of 5-15)
    assert "not a prescription" in c.explanation
    assert c.episode_key == "trough_out_of_range:t"
    # the patient's own target range takes precedence
    own = facts(trough_target_low=3.0, trough_target_high=8.0)
    assert rules.trough_out_of_range(low, _flags(), [], [START], own, T) is None


def test_high_trough_before_steady_state_alerts_low_does_not() -> None:
    # 18 ng/mL five days after a dose increase: it can only rise further
    high = TroughResult("t", DRAWN, 18.0, DRAWN - timedelta(hours=24))
    pre = _flags(days_since_regimen_change=5.0, before_steady_state=True)
    c = rules.trough_out_of_range(high, pre, [], [START], facts(), T)
    assert c is not None and c.severity == "review"
    assert c.numbers["kind"] == "high_before_steady_state"
    assert "can only rise further" in c.explanation
    assert "before steady state" in c.explanation
    assert "proportional_dose_mg" not in c.numbers
    # a low pre-steady-state value is still no reason to act on its own
    low = TroughResult("t", DRAWN, 3.0, DRAWN - timedelta(hours=24))
    assert rules.trough_out_of_range(low, pre, [], [START], facts(), T) is None


def test_far_above_target_alerts_whatever_the_timing_and_factor_is_configurable() -> None:
    very = TroughResult("t", DRAWN, 40.0, None)
    odd = _flags(hours_since_last_dose=6.0, not_true_trough=True, before_steady_state=True)
    c = rules.trough_out_of_range(very, odd, [], [START], facts(), T)
    assert c is not None and c.numbers["kind"] == "far_above_target"
    assert c.numbers["far_above_limit_ng_ml"] == 22.5  # 1.5 x 15
    assert "far above target" in c.explanation
    # 20 ng/mL 6 h after a dose is only "not a true trough" at the default factor ...
    mild = TroughResult("t", DRAWN, 20.0, None)
    c2 = rules.trough_out_of_range(mild, odd, [], [START], facts(), T)
    assert c2 is not None and c2.numbers["kind"] == "not_true_trough"
    # ... and far above target when a team lowers the factor
    c3 = rules.trough_out_of_range(
        mild, odd, [], [START], facts(), T.merged({"trough_far_above_factor": 1.2})
    )
    assert c3 is not None and c3.numbers["kind"] == "far_above_target"
    with pytest.raises(ValueError, match="trough_far_above_factor"):
        T.merged({"trough_far_above_factor": 0.5})


def test_dose_hint_is_capped_at_the_lam_label_maximum() -> None:
    low = TroughResult("t", DRAWN, 3.0, DRAWN - timedelta(hours=24))
    c = rules.trough_out_of_range(low, _flags(), [], [START], facts(), T)
    assert c is not None and c.numbers["kind"] == "dose_question"
    # 2 mg x 7.5 / 3 = 5.00 mg/day, above the 4 mg/day maximum
    assert c.numbers["proportional_dose_mg"] == 4.0
    assert c.numbers["proportional_dose_capped"] is True
    assert c.numbers["hint_target_ng_ml"] == 7.5
    assert "6.67" not in c.explanation and "shown as 4 mg/day" in c.explanation
    lower_cap = T.merged({"dose_hint_max_mg_per_day": 3.0})
    c2 = rules.trough_out_of_range(low, _flags(), [], [START], facts(), lower_cap)
    assert c2 is not None and c2.numbers["proportional_dose_mg"] == 3.0
    # aims at the lower part of the patient's own target
    own = facts(trough_target_low=4.0, trough_target_high=8.0)
    c3 = rules.trough_out_of_range(low, _flags(), [], [START], own, T)
    assert c3 is not None and c3.numbers["hint_target_ng_ml"] == 5.0
    assert c3.numbers["proportional_dose_mg"] == round(2.0 * 5.0 / 3.0, 2)


def test_no_dose_hint_before_day_10_or_with_unknown_last_dose() -> None:
    low = TroughResult("t", DRAWN, 3.5, None)
    day9 = _flags(days_since_regimen_change=9.0)
    c = rules.trough_out_of_range(low, day9, [], [START], facts(), T)
    assert c is not None and c.numbers["kind"] == "dose_question"
    assert "proportional_dose_mg" not in c.numbers and "mg/day" not in c.explanation
    c10 = rules.trough_out_of_range(low, _flags(days_since_regimen_change=10.0), [], [START], facts(), T)
    assert c10 is not None and "proportional_dose_mg" in c10.numbers
    unknown = _flags(hours_since_last_dose=None, last_dose_unknown=True)
    cu = rules.trough_out_of_range(low, unknown, [], [START], facts(), T)
    assert cu is not None and "proportional_dose_mg" not in cu.numbers
    assert cu.numbers["last_dose_unknown"] is True


def test_low_trough_with_stable_fev1_on_treatment_says_nothing_about_dose() -> None:
    low = TroughResult("t", DRAWN, 3.0, None)
    on = facts(treatment_status="on_sirolimus")
    c = rules.trough_out_of_range(low, _flags(), [], [START], on, T, fev1_verdict="stable")
    assert c is not None and c.numbers["kind"] == "low_fev1_stable"
    assert c.severity == "digest"
    assert "proportional_dose_mg" not in c.numbers
    assert "mg" not in c.explanation and "Ando 2013" in c.explanation
    # declining FEV1: a dose question again
    d = rules.trough_out_of_range(low, _flags(), [], [START], on, T, fev1_verdict="declining")
    assert d is not None and d.numbers["kind"] == "dose_question"
    # a high level with stable FEV1 is still a dose question
    high = TroughResult("t", DRAWN, 18.0, None)
    h = rules.trough_out_of_range(high, _flags(), [], [START], on, T, fev1_verdict="stable")
    assert h is not None and h.numbers["kind"] == "dose_question"


MISSED3 = [DoseLog(f"m{i}", DRAWN - timedelta(days=i), "missed", None) for i in (1, 2, 4)]


@pytest.mark.parametrize(
    ("value", "flags", "doses", "kind"),
    [
        (40.0, _flags(), MISSED3, "far_above_target"),
        (18.0, _flags(hours_since_last_dose=12.0, not_true_trough=True), MISSED3, "not_true_trough"),
        (
            18.0,
            _flags(days_since_regimen_change=4.0, before_steady_state=True),
            MISSED3,
            "high_before_steady_state",
        ),
        (3.0, _flags(), MISSED3, "adherence"),
        (18.0, _flags(), MISSED3, "dose_question"),
        (18.0, _flags(), [], "dose_question"),
        (3.0, _flags(hours_since_last_dose=None, last_dose_unknown=True), [], "dose_question"),
    ],
)
def test_trough_words_follow_the_numbers(
    value: float, flags: TroughFlags, doses: list[DoseLog], kind: str
) -> None:
    c = rules.trough_out_of_range(TroughResult("t", DRAWN, value, None), flags, doses, [START], facts(), T)
    assert c is not None and c.numbers["kind"] == kind
    missed = c.numbers["missed_doses_prior_7_days"]
    assert missed == len(doses)
    if missed:
        assert f"{missed} missed dose(s) logged in the 7 days before the draw" in c.explanation
        assert "no missed doses" not in c.explanation.lower()
    else:
        assert "No missed doses logged in the 7 days before the draw" in c.explanation
    hours = c.numbers["hours_since_last_dose"]
    if c.numbers["last_dose_unknown"]:
        assert "Time of the last dose unknown" in c.explanation
        assert "a true trough." not in c.explanation
    else:
        assert f"Drawn {hours:g} h after the last dose" in c.explanation
    if flags.not_true_trough:
        assert "not a true trough" in c.explanation
    days = c.numbers["days_since_regimen_change"]
    assert f"{days:g} days after the last regimen change" in c.explanation
    assert ("before steady state" in c.explanation) == flags.before_steady_state
    assert ("at steady state" in c.explanation) == (not flags.before_steady_state)
    assert ("adherence question" in c.explanation) == (kind == "adherence")


def test_interacting_drug_start_and_stop_alert_names_drug_class_and_direction() -> None:
    at = DRAWN
    start = RegimenEvent("i1", at, "interacting_drug_start", None, "Fluconazole 200 mg")
    c = rules.interacting_drug_alert(start, T)
    assert c is not None and (c.rule, c.severity) == ("interacting_drug_change", "review")
    assert c.episode_key == "interacting_drug_change:i1"
    assert c.numbers["catalog_name"] == "fluconazole"
    assert (c.numbers["interaction"], c.numbers["expected_level"]) == ("inhibitor", "rise")
    assert "inhibitor" in c.explanation and "expected to rise" in c.explanation
    stop = RegimenEvent("i2", at, "interacting_drug_stop", None, "Rifampicin")
    s = rules.interacting_drug_alert(stop, T)
    assert s is not None and s.numbers["catalog_name"] == "rifampin"
    # stopping an inducer: the level rises back
    assert (s.numbers["interaction"], s.numbers["expected_level"]) == ("inducer", "rise")
    ind = rules.interacting_drug_alert(replace(stop, kind="interacting_drug_start"), T)
    assert ind is not None and ind.numbers["expected_level"] == "fall"
    unknown = rules.interacting_drug_alert(replace(start, drug_name="Zorblatinib"), T)
    assert unknown is not None and unknown.numbers["interaction"] == "unknown"
    assert "not in the interaction catalog" in unknown.explanation
    assert rules.interacting_drug_alert(replace(start, kind="dose_change"), T) is None


@pytest.mark.parametrize(
    ("typed", "name", "kind"),
    [
        ("rifampicin", "rifampin", "inducer"),
        ("Rifampin", "rifampin", "inducer"),
        ("St John\u2019s Wort", "st_johns_wort", "inducer"),
        ("St. John's wort", "st_johns_wort", "inducer"),
        ("Ciclosporin", "cyclosporine", "inhibitor"),
        ("Neoral", "cyclosporine", "inhibitor"),
        ("Diflucan 150mg", "fluconazole", "inhibitor"),
        ("nirmatrelvir/ritonavir", "ritonavir", "inhibitor"),
        ("Paxlovid", "ritonavir", "inhibitor"),
        ("phenobarbitone", "phenobarbital", "inducer"),
        ("rifapentine", "rifapentine", "inducer"),
        ("diltiazem", "diltiazem", "inhibitor"),
        ("verapamil", "verapamil", "inhibitor"),
        ("nicardipine", "nicardipine", "inhibitor"),
        ("clotrimazole", "clotrimazole", "inhibitor"),
        ("danazol", "danazol", "inhibitor"),
        ("bromocriptine", "bromocriptine", "inhibitor"),
        ("cimetidine", "cimetidine", "inhibitor"),
        ("metoclopramide", "metoclopramide", "inhibitor"),
        ("cisapride", "cisapride", "inhibitor"),
        ("boceprevir", "boceprevir", "inhibitor"),
        ("telaprevir", "telaprevir", "inhibitor"),
        ("Grapefruit juice", "grapefruit", "inhibitor"),
        ("Epidyolex", "cannabidiol", "warning"),
        ("cobicistat", "cobicistat", "inhibitor"),
        ("Genvoya", "cobicistat", "inhibitor"),
        ("darunavir/cobicistat", "cobicistat", "inhibitor"),
        ("Aptivus", "tipranavir", "inhibitor"),
        ("fosamprenavir", "fosamprenavir", "inhibitor"),
        ("Telzir", "fosamprenavir", "inhibitor"),
        ("Prevymis", "letermovir", "inhibitor"),
        ("Reyataz", "atazanavir", "inhibitor"),
    ],
)
def test_interacting_drug_names(typed: str, name: str, kind: str) -> None:
    assert catalog.match_interacting_drug(typed) == (name, kind)


@pytest.mark.parametrize("typed", ["paracetamol", "", None, "  ", "rifampicinx"])
def test_unknown_drug_names_are_not_matched(typed: str | None) -> None:
    assert catalog.match_interacting_drug(typed) is None


# ------------------------------------------------------------ side effects


def _se(term: str, severity: str, **kw: object) -> SideEffectReport:
    base: dict[str, object] = {"id": "s", "onset_at": local(2025, 5, 1), "term": term, "severity": severity}
    base.update(kw)
    return SideEffectReport(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "report",
    [
        _se("mucositis_oral", "severe"),
        _se("diarrhea", "very_severe"),
        _se("dyspnea", "moderate"),
        _se("pneumonitis", "mild", ctcae_grade=2),
        _se("rash_acneiform", "mild", temperature_c=38.0),
        _se("upper_respiratory_infection", "mild", antibiotics_started=True),
        _se("nausea", "mild", ctcae_grade=3),
    ],
)
def test_urgent_side_effects(report: SideEffectReport) -> None:
    c = rules.side_effect_alert(report, T)
    assert c is not None and (c.rule, c.severity) == ("urgent_side_effect", "urgent")
    assert c.patient_message and "today" in c.patient_message


@pytest.mark.parametrize(
    "report",
    [
        _se("cough", "mild"),
        _se("dyspnea", "mild"),
        _se("rash_acneiform", "mild", temperature_c=37.9),
        _se("mucositis_oral", "severe", ctcae_grade=1),  # clinician grade takes precedence
        _se("diarrhea", "none"),
    ],
)
def test_non_urgent_side_effects(report: SideEffectReport) -> None:
    c = rules.side_effect_alert(report, T)
    assert c is None or c.severity != "urgent"


def test_moderate_side_effect_goes_to_digest_and_thresholds_are_configurable() -> None:
    c = rules.side_effect_alert(_se("rash_acneiform", "moderate"), T)
    assert c is not None and c.severity == "digest"
    assert rules.side_effect_alert(_se("rash_acneiform", "mild"), T) is None
    strict = T.merged({"urgent_grade": 2})
    s = rules.side_effect_alert(_se("rash_acneiform", "moderate"), strict)
    assert s is not None and s.severity == "urgent"
    warm = T.merged({"fever_c": 37.5})
    w = rules.side_effect_alert(_se("rash_acneiform", "mild", temperature_c=37.6), warm)
    assert w is not None and w.severity == "urgent"


EMERGENCY = "seek emergency care now (call your local emergency number)"


@pytest.mark.parametrize(
    "report",
    [
        _se("dyspnea", "severe"),
        _se("dyspnea", "very_severe"),
        _se("dyspnea", "mild", sudden=True),
        _se("dyspnea", "mild", ctcae_grade=3),
        _se("chest_pain", "mild"),
        _se("chest_pain", "severe"),
    ],
)
def test_possible_pneumothorax_is_urgent_with_emergency_advice(report: SideEffectReport) -> None:
    c = rules.side_effect_alert(report, T)
    assert c is not None and c.severity == "urgent"
    assert c.patient_message is not None and c.patient_message.lower().startswith(EMERGENCY)
    assert c.numbers["emergency_advice"] is True
    assert "pneumothorax" in c.explanation


def test_moderate_breathlessness_is_same_day_without_emergency_advice() -> None:
    c = rules.side_effect_alert(_se("dyspnea", "moderate"), T)
    assert c is not None and c.severity == "urgent"
    assert c.patient_message == rules.CARE_TEAM_TODAY
    strict = rules.side_effect_alert(_se("dyspnea", "moderate"), T.merged({"emergency_dyspnea_grade": 2}))
    assert strict is not None and strict.numbers["emergency_advice"] is True


def test_chest_pain_is_a_term() -> None:
    from backend.clinical.catalog import SIDE_EFFECT_TERMS

    assert SIDE_EFFECT_TERMS["chest_pain"].respiratory


def test_moderate_lung_infection_is_same_day() -> None:
    c = rules.side_effect_alert(_se("lung_infection", "moderate"), T)
    assert c is not None and c.severity == "urgent"
    assert "immunosuppressant" in c.explanation
    mild = rules.side_effect_alert(_se("lung_infection", "mild"), T)
    assert mild is None


@pytest.mark.parametrize("term", ["cough", "upper_respiratory_infection"])
def test_moderate_cough_or_infection_with_recent_fever_or_breathlessness_is_same_day(term: str) -> None:
    report = _se(term, "moderate", id="new", onset_at=local(2025, 5, 3))
    alone = rules.side_effect_alert(report, T)
    assert alone is not None and alone.severity == "digest"
    fever = _se("fatigue", "mild", id="old", onset_at=local(2025, 5, 1), temperature_c=38.4)
    breathless = _se("dyspnea", "mild", id="old2", onset_at=local(2025, 5, 2))
    for other in (fever, breathless):
        c = rules.side_effect_alert(report, T, [report, other])
        assert c is not None and c.severity == "urgent", other
        assert c.patient_message == rules.CARE_TEAM_TODAY
    long_ago = replace(fever, onset_at=local(2025, 5, 3) - timedelta(days=T.symptom_window_days + 1))
    old = rules.side_effect_alert(report, T, [long_ago])
    assert old is not None and old.severity == "digest"
    # breathlessness reported after the cough is judged with the cough
    later = _se("dyspnea", "mild", id="later", onset_at=local(2025, 5, 4))
    c = rules.side_effect_alert(later, T, [report, later])
    assert c is not None and c.severity == "urgent"


@pytest.mark.parametrize("severity", ["urgent", "review", "digest"])
def test_patient_advice_follows_severity(severity: str) -> None:
    text = rules.patient_advice(severity)
    assert ("today" in text) == (severity == "urgent")
    if severity != "urgent":
        with pytest.raises(ValueError, match="urgent"):
            rules.patient_advice(severity, emergency=True)


def test_patient_messages_never_say_today_unless_urgent() -> None:
    """Every side-effect, LAM-event and FEV1 candidate: the patient's message is the
    advice of the alert's own severity."""
    reports = [
        _se(term, sev, **kw)
        for term in ("dyspnea", "cough", "lung_infection", "chest_pain", "rash_acneiform", "diarrhea")
        for sev in ("mild", "moderate", "severe", "very_severe")
        for kw in ({}, {"sudden": True}, {"temperature_c": 38.5})
    ]
    candidates = [c for r in reports if (c := rules.side_effect_alert(r, T)) is not None]
    kinds = ("pneumothorax", "chylothorax", "chylous_ascites", "hospital_admission", "other")
    candidates += [rules.lam_event_alert(LamEvent(k, local(2025, 5, 1), k), T) for k in kinds]
    drop = rules.AcuteDrop(100, 105, 2.0, 7, 1.7, 1.75, 4, 0.15)
    acute = rules.acute_fev1_drop(drop, T)
    assert acute is not None
    candidates.append(acute)
    with_symptoms = rules.fev1_drop_with_symptoms(
        acute, [_se("cough", "mild")], local(2025, 4, 20), local(2025, 5, 2), T
    )
    assert with_symptoms is not None
    candidates.append(with_symptoms)
    assert {c.severity for c in candidates} == {"urgent", "review", "digest"}
    for c in candidates:
        assert c.patient_message is not None
        emergency = c.patient_message.lower().startswith(EMERGENCY)
        assert c.patient_message.endswith(rules.patient_advice(c.severity, emergency=emergency)), c
        assert ("today" in c.patient_message) == (c.severity == "urgent" and not emergency), c


def test_very_severe_breathlessness_says_emergency() -> None:
    c = rules.side_effect_alert(_se("dyspnea", "very_severe"), T)
    assert c is not None and c.patient_message is not None
    assert "emergency" in c.patient_message.lower()


@pytest.mark.parametrize(
    ("kind", "severity", "emergency"),
    [
        ("pneumothorax", "urgent", True),
        ("chylothorax", "urgent", False),
        ("chylous_ascites", "urgent", False),
        ("hospital_admission", "review", False),
    ],
)
def test_lam_events(kind: str, severity: str, emergency: bool) -> None:
    c = rules.lam_event_alert(LamEvent("e1", local(2025, 5, 1), kind), T)
    assert c is not None and c.severity == severity
    assert c.episode_key == "lam_event:e1"
    assert c.patient_message is not None
    assert c.patient_message.lower().startswith(EMERGENCY) == emergency


# --------------------------------------------------------------- adherence


def test_readings_overdue() -> None:
    f = facts(expected_sessions_per_week=7)
    last = local(2025, 5, 1, 9)
    assert rules.readings_overdue(f, last, local(2025, 5, 9, 20), T) is None  # 8 days
    c = rules.readings_overdue(f, last, local(2025, 5, 10, 20), T)  # 9 days
    assert c is not None and c.numbers["days_since_last_reading"] == 9
    c2 = rules.readings_overdue(f, last, local(2025, 5, 20, 20), T)
    assert c2 is not None and c2.episode_key == c.episode_key
    weekly = facts(expected_sessions_per_week=1)
    assert rules.readings_overdue(weekly, last, local(2025, 5, 15, 20), T) is None  # 14 days
    assert rules.readings_overdue(weekly, last, local(2025, 5, 16, 20), T) is not None
    assert rules.readings_overdue(facts(expected_sessions_per_week=0), last, local(2025, 9, 1), T) is None
    assert rules.readings_overdue(f, None, local(2025, 9, 1), T) is None


def test_repeated_missed_doses() -> None:
    tz = "Europe/London"
    now = local(2025, 5, 20, 21)

    def miss(days_ago: float, i: int) -> DoseLog:
        return DoseLog(f"m{i}", now - timedelta(days=days_ago), "missed", None)

    taken = [DoseLog(f"t{i}", now - timedelta(days=i), "taken", 2.0) for i in range(20)]
    two = [miss(2, 1), miss(5, 2)]
    assert rules.repeated_missed_doses(taken + two, now, tz, T) is None
    three = [*two, miss(12, 3)]
    c = rules.repeated_missed_doses(taken + three, now, tz, T)
    assert c is not None and c.numbers["missed_in_window"] == 3
    four = [*three, miss(0.5, 4)]
    c4 = rules.repeated_missed_doses(taken + four, now, tz, T)
    assert c4 is not None and c4.episode_key == c.episode_key
    spread = [miss(2, 1), miss(16, 2), miss(30, 3)]
    assert rules.repeated_missed_doses(spread, now, tz, T) is None
