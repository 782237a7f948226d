"""GLI Global reference values (Bowerman et al., AJRCCM 2023) through pyspiro.

GLI Global is race-neutral and recommended by the ATS 2023 statement. Inputs are
sex at birth, age at the measurement date and height in cm; valid for ages 3-95.
Check values are in the tests (domain.md section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from pyspiro import BOWERMAN_2022

_EQUATION = BOWERMAN_2022()
_EQUATION.set_silence(True)

MIN_AGE = 3.0
MAX_AGE = 95.0
LLN_Z = -1.645  # 5th percentile


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    predicted_l: float
    lln_l: float
    percent_predicted: float
    z_score: float


def age_on(date_of_birth: date, on: date) -> float:
    """Decimal age in years at a date, as GLI uses it."""
    return (on - date_of_birth).days / 365.25


@lru_cache(maxsize=65536)
def _lms(sex: int, age: float, height_cm: float, parameter: int) -> tuple[float, float, float]:
    lam, mu, sigma = _EQUATION.lms(sex, age, height_cm, parameter, 1.0)
    return float(lam), float(mu), float(sigma)


def _reference(
    parameter: int, *, sex_at_birth: str, age_years: float, height_cm: float, measured_l: float
) -> ReferenceValue | None:
    if not (MIN_AGE <= age_years <= MAX_AGE) or measured_l <= 0 or height_cm <= 0:
        return None
    sex = 0 if sex_at_birth == "female" else 1
    # Age to 1/100 year (3.65 days) keeps the cache effective without moving
    # predicted values by more than a few mL.
    lam, mu, sigma = _lms(sex, round(age_years, 2), round(height_cm, 1), parameter)
    z = ((measured_l / mu) ** lam - 1.0) / (lam * sigma)
    lln = mu * (1.0 + lam * sigma * LLN_Z) ** (1.0 / lam)
    return ReferenceValue(
        predicted_l=round(mu, 3),
        lln_l=round(lln, 3),
        percent_predicted=round(100.0 * measured_l / mu, 2),
        z_score=round(z, 3),
    )


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
