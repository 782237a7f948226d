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
