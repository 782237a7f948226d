from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from backend.audit import record_audit
from backend.auth.principal import Principal
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from backend.config import Settings
from backend.errors import Forbidden, NotFound, Unprocessable
from backend.patients.accounts import new_invite_code
from backend.patients.models import CareTeam, Patient
from backend.patients.schemas import PATIENT_EDITABLE_BY_PATIENT, PROFILE_DATES, PROFILE_FIELDS

log = logging.getLogger(__name__)


def create_patient(
    session: Session,
    *,
    principal: Principal,
    team_ids: list[str],
    data: dict[str, Any],
    settings: Settings,
    now: datetime,
) -> tuple[Patient, str]:
    if data["care_team_id"] not in team_ids:
        # Same answer as a team that does not exist.
        raise NotFound("No such care team.")
    check_profile(data, now=now)
    patient = Patient(**data, change_seq=0)
    session.add(patient)
    session.flush()
    code = new_invite_code(session, patient=patient, settings=settings, now=now)
    record_audit(
        session,
        actor_id=principal.user_id,
        actor_role=principal.role,
        action="patient.create",
        patient_id=patient.id,
        resource_type="patient",
        resource_id=patient.id,
    )
    return patient, code


def check_profile(profile: Mapping[str, Any], *, now: datetime) -> None:
    """The clinical profile as it will be stored hangs together: its dates are not
    after today (her calendar) nor before her birth, a DLCO value has its date, and
    only an effusion that is there can be symptomatic. Raises Unprocessable (422,
    nothing changed) naming each field at fault."""
    errors: dict[str, list[str]] = {}
    today = now.astimezone(ZoneInfo(profile["timezone"])).date()
    born: date = profile["date_of_birth"]
    for name in PROFILE_DATES:
        value = profile.get(name)
        if value is None:
            continue
        if value > today:
            errors[name] = ["Must not be in the future."]
        elif value < born:
            errors[name] = ["Must not be before the date of birth."]
    has_dlco = any(profile.get(n) is not None for n in ("dlco_ml_min_mmhg", "dlco_percent_predicted"))
    if has_dlco and profile.get("dlco_measured_on") is None:
        errors.setdefault("dlco_measured_on", []).append("Needed with a DLCO value.")
    if profile.get("chylous_effusion_symptomatic") and profile.get("chylous_effusion", "absent") == "absent":
        errors["chylous_effusion_symptomatic"] = ["Needs a chylous effusion (pleural, ascites or both)."]
    if errors:
        raise Unprocessable("The clinical profile does not hold together.", errors=errors)


def update_patient(
    session: Session, *, principal: Principal, patient: Patient, changes: dict[str, Any], now: datetime
) -> Patient:
    if principal.role == "patient" and set(changes) - PATIENT_EDITABLE_BY_PATIENT:
        raise Forbidden("Only your care team can change these settings.")
    low = changes.get("trough_target_low", patient.trough_target_low)
    high = changes.get("trough_target_high", patient.trough_target_high)
    if low >= high:
        raise Unprocessable(
            "The trough target range is empty.",
            errors={"trough_target_low": ["Must be below trough_target_high."]},
        )
    if set(changes) & set(PROFILE_FIELDS):
        # checked as it will be stored (a time-zone change alone leaves it as it was)
        current = {name: getattr(patient, name) for name in ("date_of_birth", "timezone", *PROFILE_FIELDS)}
        check_profile({**current, **changes}, now=now)
    for key, value in changes.items():
        setattr(patient, key, value)
    if changes:
        # Settings change what the rules conclude: evaluate her again.
        patient.data_changed_at = now
    record_audit(
        session,
        actor_id=principal.user_id,
        actor_role=principal.role,
        action="patient.update",
        patient_id=patient.id,
        resource_type="patient",
        resource_id=patient.id,
        detail=",".join(sorted(changes))[:200],
    )
    return patient


def get_team_for(session: Session, *, team_id: str, team_ids: list[str]) -> CareTeam:
    team = session.get(CareTeam, team_id) if team_id in team_ids else None
    if team is None:
        raise NotFound("No such care team.")
    return team


def thresholds_for(session: Session, patient: Patient) -> Thresholds:
    """The patient's rule thresholds: defaults, then team, then patient overrides,
    then her trough target range.

    Overrides are validated when saved; one that no longer validates (the rules
    changed since) is skipped with a warning rather than stopping her evaluation.
    """
    team = session.get(CareTeam, patient.care_team_id)
    team_overrides = ((team.settings or {}).get("rule_overrides") or {}) if team else {}
    targets = {
        "trough_target_low": patient.trough_target_low,
        "trough_target_high": patient.trough_target_high,
    }
    try:
        return DEFAULT_THRESHOLDS.merged(team_overrides, patient.rule_overrides or {}, targets)
    except ValueError as exc:
        log.warning("patient %s: rule overrides ignored (%s)", patient.id, exc)
    try:
        return DEFAULT_THRESHOLDS.merged(targets)
    except ValueError:
        return DEFAULT_THRESHOLDS
