"""The treatment start criteria rule: each criterion alone fires it and is listed in
`criteria_met`; none of them, or a patient on sirolimus, raises nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from backend.clinical import rules
from backend.clinical.model import TrendResult
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, THRESHOLD_SOURCES

from .helpers import facts, local, series

T = DEFAULT_THRESHOLDS
NOW = local(2025, 5, 20, 20)
DAY = NOW.date().toordinal()
NORMAL = series([2.60] * 10, first_day=DAY - 9)  # 87.7 % of 2.965 L: no FEV1 criterion
LOW = series([1.90] * 10, first_day=DAY - 9)  # 64 %


def _trend(verdict: str = "rapid_decline", slope: float = -140.0) -> TrendResult:
    return TrendResult(slope, slope - 40, slope + 40, -4.0, 200, 300.0, verdict)


def _base(**kw: Any) -> Any:
    return facts(date_of_birth=date(1985, 5, 20), **kw)  # 40 y, 165 cm


def _run(
    f: Any,
    s: Any = NORMAL,
    *,
    trend: TrendResult | None = None,
    segment: str = "untreated",
    thresholds: Any = T,
    treated: bool = False,
) -> Any:
    return rules.treatment_start_criteria(
        f, s, None, NOW, thresholds, treated=treated, trend=trend, segment_key=segment
    )


def _met(c: Any) -> list[str]:
    assert c is not None
    assert c.rule == "treatment_start_criteria" and c.severity == "review"
    assert c.numbers["criteria_count"] == len(str(c.numbers["criteria_met"]).split(","))
    return str(c.numbers["criteria_met"]).split(",")


def test_nothing_met_raises_nothing() -> None:
    assert _run(_base()) is None
    assert _run(_base(), trend=_trend("declining", -60.0)) is None


def test_fev1_below_70_percent_predicted() -> None:
    c = _run(_base(), LOW)
    assert _met(c) == ["fev1_below_pct_predicted"]
    assert c.numbers["percent_predicted"] == pytest.approx(64.1, abs=0.3)
    assert "ATS/JRS 2016" in c.explanation


def test_rapid_decline_while_untreated() -> None:
    c = _run(_base(), trend=_trend())
    assert _met(c) == ["rapid_decline_untreated"]
    assert c.numbers["slope_ml_per_year"] == -140.0
    assert c.numbers["slope_threshold_ml_per_year"] == T.rapid_decline_ml_per_year
    # a decline measured on treatment is not an untreated decline
    assert _run(_base(), trend=_trend(), segment="on_treatment_2025-01-01") is None
    assert (
        _run(_base(), trend=_trend(), thresholds=T.merged({"start_criterion_rapid_decline": False})) is None
    )


def test_dlco_below_60_percent_predicted_and_recent() -> None:
    f = _base(dlco_percent_predicted=52.0, dlco_ml_min_mmhg=12.5, dlco_measured_on=date(2025, 1, 10))
    c = _run(f)
    assert _met(c) == ["dlco_below_pct_predicted"]
    assert c.numbers["dlco_percent_predicted"] == 52.0
    assert c.numbers["dlco_measured_on"] == "2025-01-10"
    assert "not from a guideline" in c.explanation
    assert _run(replace(f, dlco_percent_predicted=60.0)) is None
    # older than 365 days: ignored; the age limit is a setting
    old = replace(f, dlco_measured_on=NOW.date() - timedelta(days=366))
    assert _run(old) is None
    assert _met(_run(old, thresholds=T.merged({"start_criterion_dlco_max_age_days": 400}))) == [
        "dlco_below_pct_predicted"
    ]
    # a DLCO without its date is not current evidence
    assert _run(replace(f, dlco_measured_on=None)) is None


@pytest.mark.parametrize("where", ["pleural", "ascites", "both"])
def test_symptomatic_chylous_effusion(where: str) -> None:
    f = _base(
        chylous_effusion=where, chylous_effusion_symptomatic=True, chylous_effusion_date=date(2025, 4, 1)
    )
    c = _run(f)
    assert _met(c) == ["symptomatic_chylous_effusion"]
    assert c.numbers["chylous_effusion"] == where
    assert _run(replace(f, chylous_effusion_symptomatic=False)) is None
    assert _run(replace(f, chylous_effusion="absent")) is None


def test_angiomyolipoma_of_3_cm_or_more() -> None:
    f = _base(aml_largest_cm=3.0, aml_imaging_date=date(2025, 3, 3))
    c = _run(f)
    assert _met(c) == ["large_angiomyolipoma"]
    assert c.numbers["aml_largest_cm"] == 3.0
    assert "EXIST-2" in c.explanation
    assert _run(replace(f, aml_largest_cm=2.9)) is None
    assert _run(replace(f, aml_largest_cm=None)) is None


def test_tsc_lam() -> None:
    c = _run(_base(lam_type="tsc"))
    assert _met(c) == ["tsc_lam"]
    assert _run(_base(lam_type="tsc"), thresholds=T.merged({"start_criterion_tsc_lam": False})) is None


def test_every_criterion_met_is_listed_in_order() -> None:
    f = _base(
        lam_type="tsc",
        dlco_percent_predicted=40.0,
        dlco_measured_on=date(2025, 5, 1),
        chylous_effusion="both",
        chylous_effusion_symptomatic=True,
        aml_largest_cm=4.2,
    )
    c = _run(f, LOW, trend=_trend())
    assert _met(c) == list(rules.START_CRITERIA)
    assert "6 treatment start criteria met" in c.explanation
    assert c.episode_key == "treatment_start_criteria"


@pytest.mark.parametrize("status", ["on_sirolimus", "interrupted"])
def test_a_patient_on_sirolimus_is_not_screened(status: str) -> None:
    f = _base(lam_type="tsc", aml_largest_cm=5.0, treatment_status=status)
    assert _run(f, LOW, trend=_trend()) is None
    assert _run(_base(lam_type="tsc"), LOW, treated=True) is None
    # stopped counts as untreated
    assert _met(_run(_base(lam_type="tsc", treatment_status="stopped"))) == ["tsc_lam"]


def test_the_thresholds_have_their_sources() -> None:
    assert T.start_criterion_dlco_pct_predicted == 60.0
    assert T.start_criterion_dlco_max_age_days == 365
    assert T.start_criterion_aml_cm == 3.0
    assert "not from a guideline" in THRESHOLD_SOURCES["start_criterion_dlco_pct_predicted"]
    assert "EXIST-2" in THRESHOLD_SOURCES["start_criterion_aml_cm"]
