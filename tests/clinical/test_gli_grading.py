"""Published check values (domain.md §4) and the ATS/ERS 2019 grading table."""

from __future__ import annotations

import re

import pytest

from backend.clinical.gli import (
    FEV1,
    LLN_Z,
    ReferenceInputError,
    age_problem,
    fev1_fvc_reference,
    fev1_reference,
    fvc_reference,
    references,
)
from backend.clinical.grading import Blow, grade_session


def test_gli_global_female_40_165_fev1() -> None:
    ref = fev1_reference(sex_at_birth="female", age_years=40.0, height_cm=165.0, fev1_l=2.50)
    assert ref is not None
    assert ref.predicted_l == pytest.approx(2.965, abs=0.0005)
    assert ref.lln_l == pytest.approx(2.244, abs=0.0005)
    assert ref.percent_predicted == pytest.approx(84.31, abs=0.005)
    assert ref.z_score == pytest.approx(-1.072, abs=0.0005)


def test_gli_global_female_40_165_fvc_predicted() -> None:
    ref = fvc_reference(sex_at_birth="female", age_years=40.0, height_cm=165.0, fvc_l=3.0)
    assert ref is not None
    assert ref.predicted_l == pytest.approx(3.576, abs=0.0005)


def test_gli_global_male_40_175_fvc_percent() -> None:
    ref = fvc_reference(sex_at_birth="male", age_years=40.0, height_cm=175.0, fvc_l=4.5)
    assert ref is not None
    assert ref.percent_predicted == pytest.approx(95.77, abs=0.005)


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"age_years": 96.0}, "age 96.0 years is outside"),
        ({"age_years": 2.0, "height_cm": 90}, "age 2.0 years is outside"),
        ({"height_cm": 10.0}, "height 10 cm is outside"),
        ({"height_cm": 1650.0}, "height 1650 cm is outside"),
        ({"height_cm": float("nan")}, "height nan cm is outside"),
        ({"sex_at_birth": "unknown"}, "sex at birth 'unknown'"),
        ({"sex_at_birth": "Female"}, "sex at birth 'Female'"),
    ],
)
def test_gli_inputs_out_of_range_are_errors(kw: dict[str, object], why: str) -> None:
    args: dict[str, object] = {"sex_at_birth": "female", "age_years": 40.0, "height_cm": 165.0}
    args.update(kw)
    for fn, value in ((fev1_reference, "fev1_l"), (fvc_reference, "fvc_l")):
        with pytest.raises(ReferenceInputError, match=re.escape(why)):
            fn(**args, **{value: 2.0})  # type: ignore[arg-type]
    with pytest.raises(ReferenceInputError, match=re.escape(why)):
        fev1_fvc_reference(**args, fev1_fvc=0.7)  # type: ignore[arg-type]


def test_gli_batch_refuses_unknown_sex_and_says_why_an_age_has_none() -> None:
    with pytest.raises(ReferenceInputError):
        references(FEV1, sex_at_birth="", height_cm=165, points=[(40.0, 2.5)])
    with pytest.raises(ReferenceInputError):
        references(FEV1, sex_at_birth="female", height_cm=10, points=[(40.0, 2.5)])
    ok, old = references(FEV1, sex_at_birth="female", height_cm=165, points=[(40.0, 2.5), (96.0, 2.5)])
    assert ok is not None and ok.percent_predicted == pytest.approx(84.31, abs=0.005)
    assert old is None and age_problem(96.0) is not None and age_problem(40.0) is None


def test_gli_global_fev1_fvc_ratio() -> None:
    """GLI Global FEV1/FVC (Bowerman et al., AJRCCM 2023) through pyspiro's tables of
    the published coefficients: female 40 y 165 cm predicted 0.828, LLN 0.719; male
    40 y 175 cm predicted 0.815. Obstruction is a ratio below the LLN."""
    f = fev1_fvc_reference(sex_at_birth="female", age_years=40.0, height_cm=165.0, fev1_fvc=0.70)
    assert f is not None
    assert f.predicted_l == pytest.approx(0.8281, abs=0.0001)
    assert f.lln_l == pytest.approx(0.7189, abs=0.0002)
    assert f.z_score < LLN_Z  # 0.70 < LLN: obstruction
    m = fev1_fvc_reference(sex_at_birth="male", age_years=40.0, height_cm=175.0, fev1_fvc=0.80)
    assert m is not None and m.predicted_l == pytest.approx(0.8150, abs=0.0001)
    assert m.lln_l < 0.80 and m.z_score > LLN_Z


def _acc(*fev1: float) -> list[Blow]:
    return [Blow(v, v + 0.8, True, True) for v in fev1]


@pytest.mark.parametrize(
    ("values", "grade"),
    [
        ((3.000, 2.850, 2.700), "A"),  # 3 acceptable, 0.150 apart: boundary inside A
        ((3.000, 2.849, 2.700), "C"),  # 3 acceptable but 0.151 apart: not A, not B
        ((3.000, 2.850), "B"),  # 2 acceptable within 0.150
        ((3.000, 2.849), "C"),  # 0.151
        ((3.000, 2.800), "C"),  # 0.200 boundary inside C
        ((3.000, 2.799), "D"),  # 0.201
        ((3.000, 2.750), "D"),  # 0.250 boundary inside D
        ((3.000, 2.749), "E"),  # 0.251
        ((3.000,), "E"),  # only one acceptable
    ],
)
def test_grade_table(values: tuple[float, ...], grade: str) -> None:
    g = grade_session(_acc(*values))
    assert g.fev1_grade == grade
    assert g.best_fev1_l == max(values)


def test_grade_u_and_f() -> None:
    usable_only = [Blow(2.5, 3.1, False, False, usable=True)]
    assert grade_session(usable_only).fev1_grade == "U"
    assert grade_session(usable_only).best_fev1_l == 2.5
    none_usable = [Blow(2.5, 3.1, False, False, usable=False)]
    assert grade_session(none_usable).fev1_grade == "F"
    assert grade_session(none_usable).best_fev1_l is None
    assert grade_session([]).overall == "F"


def test_overall_grade_is_the_worse_of_fev1_and_fvc() -> None:
    blows = [Blow(3.0, 4.0, True, True), Blow(2.95, 3.70, True, True), Blow(2.9, 3.6, True, False)]
    g = grade_session(blows)
    assert g.fev1_grade == "A"
    assert g.fvc_grade == "E"  # FVC 4.0 vs 3.70: 0.300 apart
    assert g.overall == "E"
    assert g.best_fvc_l == 4.0
