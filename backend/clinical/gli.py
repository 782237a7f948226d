"""GLI Global reference values (Bowerman et al., AJRCCM 2023) through pyspiro.

GLI Global is race-neutral and recommended by the ATS 2023 statement. Inputs are
sex at birth, age at the measurement date and height in cm; valid for ages 3-95.
Check values are in the tests (domain.md section 4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from pyspiro import BOWERMAN_2022

_EQUATION = BOWERMAN_2022()
_EQUATION.set_silence(True)

MIN_AGE = 3.0
MAX_AGE = 95.0
# Heights of the GLI reference population (children of 3 to tall adults); outside
# them the equations extrapolate (a height of 10 cm gives ~0.004 L predicted and a
# % predicted in the millions).
MIN_HEIGHT_CM = 80.0
MAX_HEIGHT_CM = 230.0
SEXES = {"female": 0, "male": 1}
LLN_Z = -1.645  # 5th percentile
FEV1 = BOWERMAN_2022.Parameters.FEV1
FVC = BOWERMAN_2022.Parameters.FVC
FEV1FVC = BOWERMAN_2022.Parameters.FEV1FVC


class ReferenceInputError(ValueError):
    """Sex, age or height outside what the GLI Global equations cover."""


def _sex_code(sex_at_birth: str) -> int:
    code = SEXES.get(sex_at_birth)
    if code is None:
        raise ReferenceInputError(f"sex at birth {sex_at_birth!r} is not 'female' or 'male'")
    return code


def _check_height(height_cm: float) -> None:
    if not (MIN_HEIGHT_CM <= height_cm <= MAX_HEIGHT_CM):  # also rejects NaN
        raise ReferenceInputError(
            f"height {height_cm:g} cm is outside the GLI Global range {MIN_HEIGHT_CM:g}-{MAX_HEIGHT_CM:g} cm"
        )


def age_problem(age_years: float) -> str | None:
    """Why there is no reference value at this age, or None."""
    if not (MIN_AGE <= age_years <= MAX_AGE):
        return f"age {age_years:.1f} years is outside the GLI Global range {MIN_AGE:g}-{MAX_AGE:g} years"
    return None


def check_person(*, sex_at_birth: str, height_cm: float) -> None:
    """Raise ReferenceInputError unless the equations cover this sex and height."""
    _sex_code(sex_at_birth)
    _check_height(height_cm)


def check_inputs(*, sex_at_birth: str, age_years: float, height_cm: float) -> None:
    """Raise ReferenceInputError unless the equations cover these inputs."""
    check_person(sex_at_birth=sex_at_birth, height_cm=height_cm)
    problem = age_problem(age_years)
    if problem is not None:
        raise ReferenceInputError(problem)


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    predicted_l: float
    lln_l: float
    percent_predicted: float
    z_score: float


def age_on(date_of_birth: date, on: date) -> float:
    """Decimal age in years at a date, as GLI uses it."""
    return (on - date_of_birth).days / 365.25


_LMS_CACHE: dict[tuple[int, float, float, Any], tuple[float, float, float]] = {}
_LMS_CACHE_MAX = 65536


def _remember(key: tuple[int, float, float, Any], value: tuple[float, float, float]) -> None:
    if len(_LMS_CACHE) >= _LMS_CACHE_MAX:
        _LMS_CACHE.clear()
    _LMS_CACHE[key] = value


def _lms(sex: int, age: float, height_cm: float, parameter: int) -> tuple[float, float, float]:
    key = (sex, age, height_cm, parameter)
    hit = _LMS_CACHE.get(key)
    if hit is None:
        lam, mu, sigma = _EQUATION.lms(sex, age, height_cm, parameter, 1.0)
        hit = (float(lam), float(mu), float(sigma))
        _remember(key, hit)
    return hit


def prefetch(
    sex_at_birth: str,
    points: Iterable[tuple[float, float]],
    parameters: Iterable[int] = (FEV1, FVC, FEV1FVC),
) -> None:
    """Compute the FEV1 and FVC LMS values of many (age, height) points in one
    array evaluation of the equations (pyspiro's own array twin of `lms`, which
    gives the same values) instead of one table lookup per point; a batch of
    sessions then finds them cached. Points out of range are left to `_reference`."""
    if sex_at_birth not in SEXES:
        return
    sex = SEXES[sex_at_birth]
    keys = {
        (round(age, 2), round(height, 1))
        for age, height in points
        if MIN_AGE <= age <= MAX_AGE and height > 0
    }
    for parameter in parameters:
        missing = [k for k in keys if (sex, k[0], k[1], parameter) not in _LMS_CACHE]
        if len(missing) < 2:
            continue
        ages = np.array([k[0] for k in missing], dtype=np.float64)
        heights = np.array([k[1] for k in missing], dtype=np.float64)
        lam, mu, sigma, na = _EQUATION._lms_arrays(np.full(len(missing), sex), ages, heights, None, parameter)
        for i, (age, height) in enumerate(missing):
            if not na[i]:
                _remember((sex, age, height, parameter), (float(lam[i]), float(mu[i]), float(sigma[i])))


def _reference(
    parameter: int, *, sex_at_birth: str, age_years: float, height_cm: float, measured_l: float
) -> ReferenceValue | None:
    """One point; ReferenceInputError when sex, age or height are out of range, None
    only when the measured value is not positive."""
    check_inputs(sex_at_birth=sex_at_birth, age_years=age_years, height_cm=height_cm)
    return references(
        parameter, sex_at_birth=sex_at_birth, height_cm=height_cm, points=[(age_years, measured_l)]
    )[0]


def references(
    parameter: int,
    *,
    sex_at_birth: str,
    height_cm: float,
    points: Iterable[tuple[float, float | None]],
) -> list[ReferenceValue | None]:
    """Predicted, LLN, % predicted and z for many (age, measured value) points
    of one person in one call; None where the value is missing or the age is out
    of range (`age_problem` says why). An unknown sex or a height outside the GLI
    range raises ReferenceInputError (never a silent default). Age to 1/100 year
    (3.65 days) keeps the LMS cache effective without moving predicted values by
    more than a few mL. For FEV1FVC the values are ratios, not litres."""
    sex = _sex_code(sex_at_birth)
    _check_height(height_cm)
    nd = 4 if parameter == FEV1FVC else 3  # ratios to 4 places, litres to the mL
    height_key = round(height_cm, 1)
    cache_get = _LMS_CACHE.get
    out: list[ReferenceValue | None] = []
    for age_years, measured_l in points:
        if measured_l is None or not (MIN_AGE <= age_years <= MAX_AGE) or measured_l <= 0:
            out.append(None)
            continue
        age_key = round(age_years, 2)
        lms = cache_get((sex, age_key, height_key, parameter))
        lam, mu, sigma = lms if lms is not None else _lms(sex, age_key, height_key, parameter)
        z = ((measured_l / mu) ** lam - 1.0) / (lam * sigma)
        lln = mu * (1.0 + lam * sigma * LLN_Z) ** (1.0 / lam)
        out.append(
            ReferenceValue(round(mu, nd), round(lln, nd), round(100.0 * measured_l / mu, 2), round(z, 3))
        )
    return out


def fev1_reference(
    *, sex_at_birth: str, age_years: float, height_cm: float, fev1_l: float
) -> ReferenceValue | None:
    return _reference(
        BOWERMAN_2022.Parameters.FEV1,
        sex_at_birth=sex_at_birth,
        age_years=age_years,
        height_cm=height_cm,
        measured_l=fev1_l,
    )


def fvc_reference(
    *, sex_at_birth: str, age_years: float, height_cm: float, fvc_l: float
) -> ReferenceValue | None:
    return _reference(
        BOWERMAN_2022.Parameters.FVC,
        sex_at_birth=sex_at_birth,
        age_years=age_years,
        height_cm=height_cm,
        measured_l=fvc_l,
    )


def fev1_fvc_reference(
    *, sex_at_birth: str, age_years: float, height_cm: float, fev1_fvc: float
) -> ReferenceValue | None:
    """GLI Global FEV1/FVC: predicted and LLN as ratios; obstruction is FEV1/FVC
    below the LLN (ATS/ERS interpretation, Stanojevic et al., ERJ 2022)."""
    return _reference(
        FEV1FVC, sex_at_birth=sex_at_birth, age_years=age_years, height_cm=height_cm, measured_l=fev1_fvc
    )
