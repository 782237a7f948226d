"""ATS/ERS 2019 spirometry session grading (Graham et al., AJRCCM 2019, table 10).

Adults, graded for FEV1 and FVC separately from the blows of one session:
  A  >= 3 acceptable, the two largest within 0.150 L
  B  2 acceptable within 0.150 L
  C  >= 2 acceptable within 0.200 L
  D  >= 2 acceptable within 0.250 L
  E  >= 2 acceptable differing by more than 0.250 L, or only 1 acceptable
  U  no acceptable blow but >= 1 usable
  F  no usable blow
The reported FEV1 and FVC are the largest values among acceptable blows (or
usable ones when none is acceptable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GRADES = ("A", "B", "C", "D", "E", "U", "F")
TRUSTED_GRADES_DEFAULT = frozenset({"A", "B", "C"})


@dataclass(frozen=True, slots=True)
class Blow:
    fev1_l: float | None
    fvc_l: float | None
    fev1_acceptable: bool
    fvc_acceptable: bool
    usable: bool = True


@dataclass(frozen=True, slots=True)
class SessionGrade:
    fev1_grade: str
    fvc_grade: str
    best_fev1_l: float | None
    best_fvc_l: float | None

    @property
    def overall(self) -> str:
        """The worse of the two grades: what the session can be trusted for."""
        return max(self.fev1_grade, self.fvc_grade, key=GRADES.index)


def _grade(acceptable: Sequence[float], usable: Sequence[float]) -> str:
    if not acceptable:
        return "U" if usable else "F"
    if len(acceptable) == 1:
        return "E"
    top = sorted(acceptable, reverse=True)
    spread = round(top[0] - top[1], 3)  # blows are reported to the mL
    if len(top) >= 3 and spread <= 0.150:
        return "A"
    if spread <= 0.150:
        return "B"
    if spread <= 0.200:
        return "C"
    if spread <= 0.250:
        return "D"
    return "E"


def grade_session(blows: Sequence[Blow]) -> SessionGrade:
    fev1_ok = [b.fev1_l for b in blows if b.fev1_acceptable and b.fev1_l is not None]
    fvc_ok = [b.fvc_l for b in blows if b.fvc_acceptable and b.fvc_l is not None]
    fev1_usable = [b.fev1_l for b in blows if (b.usable or b.fev1_acceptable) and b.fev1_l is not None]
    fvc_usable = [b.fvc_l for b in blows if (b.usable or b.fvc_acceptable) and b.fvc_l is not None]
    best_fev1 = max(fev1_ok or fev1_usable, default=None)
    best_fvc = max(fvc_ok or fvc_usable, default=None)
    return SessionGrade(
        fev1_grade=_grade(fev1_ok, fev1_usable),
        fvc_grade=_grade(fvc_ok, fvc_usable),
        best_fev1_l=best_fev1,
        best_fvc_l=best_fvc,
    )
