"""Who is acting: the signed-in account, passed explicitly to every service."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    role: str  # clinician | patient

    @property
    def is_clinician(self) -> bool:
        return self.role == "clinician"
