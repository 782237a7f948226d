"""The batch fast path of GLI derivation gives exactly the values of the
one-point path (the ingest benchmark relies on it; see BENCHMARKS.md)."""

from __future__ import annotations

import random
from typing import Any

from backend.clinical import gli


def _one(fn: Any, **kw: Any) -> object:
    try:
        return fn(**kw)
    except gli.ReferenceInputError as exc:  # out of range: the same error either way
        return str(exc)


def _values(points: list[tuple[float, float]], sex: str) -> list[tuple[object, object, object]]:
    return [
        (
            _one(gli.fev1_reference, sex_at_birth=sex, age_years=a, height_cm=h, fev1_l=2.1),
            _one(gli.fvc_reference, sex_at_birth=sex, age_years=a, height_cm=h, fvc_l=2.9),
            _one(gli.fev1_fvc_reference, sex_at_birth=sex, age_years=a, height_cm=h, fev1_fvc=0.72),
        )
        for a, h in points
    ]


def test_prefetch_gives_the_same_reference_values() -> None:
    rnd = random.Random(11)
    points = [(rnd.uniform(1.0, 99.0), rnd.uniform(130.0, 195.0)) for _ in range(400)]
    points += [(3.0, 150.0), (95.0, 160.0), (94.999, 160.0), (40.0, -1.0)]
    for sex in ("female", "male"):
        gli._LMS_CACHE.clear()
        one_by_one = _values(points, sex)
        gli._LMS_CACHE.clear()
        gli.prefetch(sex, points)
        assert len(gli._LMS_CACHE) > 500
        assert _values(points, sex) == one_by_one


def test_a_miss_fills_the_persons_neighbouring_ages_with_the_one_point_values() -> None:
    """A cache miss computes the same person's LMS values at the ages around
    it in one array call: each is exactly what the one-point path computes, and
    the next ages a patient's evaluation asks for are found cached."""
    rnd = random.Random(5)
    for _ in range(120):
        sex = rnd.choice(list(gli.SEXES.values()))
        age, height = round(rnd.uniform(4.0, 94.0), 2), round(rnd.uniform(130.0, 195.0), 1)
        parameter = rnd.choice([gli.FEV1, gli.FVC, gli.FEV1FVC])
        gli._LMS_CACHE.clear()
        got = gli._lms(sex, age, height, parameter)
        assert got == tuple(float(x) for x in gli._EQUATION.lms(sex, age, height, parameter, 1.0))
        later = round(age + 0.73, 2)
        if later <= gli.MAX_AGE:
            assert (sex, later, height, parameter) in gli._LMS_CACHE
            one_point = tuple(float(x) for x in gli._EQUATION.lms(sex, later, height, parameter, 1.0))
            assert gli._LMS_CACHE[(sex, later, height, parameter)] == one_point
