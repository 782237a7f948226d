from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from sqlalchemy import select, update

from backend.audit import record_audit
from backend.auth.permissions import (
    clinician_team_ids,
    clinicians_only,
    current_principal,
    require_clinician,
    resource_check,
)
from backend.auth.principal import Principal
from backend.auth.routes import commit_then_raise, pair_out
from backend.auth.schemas import RegisterSchema, TokenPairSchema
from backend.db import utcnow
from backend.limits import limiter
from backend.patients import accounts, services
from backend.patients.access import load_patient_for, load_team_for
from backend.patients.accounts import new_invite_code
from backend.patients.models import Patient
from backend.patients.schemas import (
    PROFILE_FIELDS,
    InviteSchema,
    PatientCreatedSchema,
    PatientCreateSchema,
    PatientListArgs,
    PatientPageSchema,
    PatientSchema,
    PatientUpdateSchema,
    RuleThresholdSchema,
    TeamSchema,
    TeamUpdateSchema,
)
from backend.schemas import decode_cursor, encode_cursor
from backend.web import Blueprint, db, settings

blp = Blueprint(
    "patients", __name__, url_prefix="/api/v1", description="Patients, their settings and care teams"
)
# Registration sits under /auth in the URL space but belongs to the patient record
# the invite was made for.
registration = Blueprint(
    "registration",
    __name__,
    url_prefix="/api/v1/auth",
    description="Patient accounts made with an invite code",
)


def _summaries(session: Any, patient_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Summaries across features (latest reading, open alerts), provided by the app."""
    provider = current_app.extensions["lamtrack.patient_summaries"]
    result: dict[str, dict[str, Any]] = provider(session, patient_ids)
    return result


def team_out(team: Any) -> dict[str, Any]:
    """A team with its effective settings: what is stored over the defaults."""
    defaults = {
        "rule_overrides": {},
        "email_include_details": False,
        "email_hourly_cap": settings().email_team_hourly_cap,
        "email_digest": True,
        "email_patient_reminders": True,
    }
    return {"id": team.id, "name": team.name, "settings": {**defaults, **(team.settings or {})}}


def patient_out(patient: Patient, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    data = {
        c: getattr(patient, c)
        for c in (
            "id",
            "care_team_id",
            "external_ref",
            "sex_at_birth",
            "date_of_birth",
            "height_cm",
            "lam_type",
            "timezone",
            "treatment_status",
            "trough_target_low",
            "trough_target_high",
            "expected_sessions_per_week",
            "rule_overrides",
            *PROFILE_FIELDS,
            "created_at",
        )
    }
    data["registered"] = patient.user_id is not None
    data["summary"] = summary
    return data


@resource_check("pid")
def _check_patient(session: Any, principal: Principal, pid: str) -> None:
    """Before the body is parsed: a patient the principal may reach, else 404 (audited)."""
    load_patient_for(session, principal, pid)


@resource_check("team_id")
def _check_team(session: Any, principal: Principal, team_id: str) -> None:
    """Before the body is parsed: one of the clinician's teams, else 404 (audited)."""
    load_team_for(session, principal, team_id)


@blp.route("/patients")
class Patients(MethodView):
    @clinicians_only
    @blp.arguments(PatientListArgs, location="query")
    @blp.response(200, PatientPageSchema)
    @blp.alt_response(403, description="Clinicians only")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the patients of your care teams, with their latest reading"""
        principal = require_clinician()
        session = db()
        teams = clinician_team_ids(session, principal.user_id)
        if args.get("care_team_id"):
            teams = [t for t in teams if t == args["care_team_id"]]
        after = decode_cursor(args["cursor"], 1)
        stmt = select(Patient).where(Patient.care_team_id.in_(teams)).order_by(Patient.id)
        if after:
            stmt = stmt.where(Patient.id > str(after[0]))
        rows = list(session.scalars(stmt.limit(args["limit"] + 1)))
        more = len(rows) > args["limit"]
        rows = rows[: args["limit"]]
        summaries = _summaries(session, [p.id for p in rows])
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action="patient.list",
            resource_type="patient",
            detail=f"{len(rows)} patients",
        )
        session.commit()
        return {
            "items": [patient_out(p, summaries.get(p.id)) for p in rows],
            "next_cursor": encode_cursor([rows[-1].id]) if more else None,
        }

    @clinicians_only
    @blp.arguments(PatientCreateSchema)
    @blp.response(201, PatientCreatedSchema)
    @blp.alt_response(403, description="Clinicians only")
    @blp.alt_response(404, description="Not one of your care teams")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a patient and a one-time invite code for her to register"""
        principal = require_clinician()
        session = db()
        now = utcnow()
        patient, code = services.create_patient(
            session,
            principal=principal,
            team_ids=clinician_team_ids(session, principal.user_id),
            data=body,
            settings=settings(),
            now=now,
        )
        session.commit()
        out = patient_out(patient)
        out["invite_code"] = code
        out["invite_expires_at"] = now + _invite_lifetime()
        return out


def _invite_lifetime() -> Any:
    from datetime import timedelta

    return timedelta(hours=settings().invite_code_hours)


@blp.route("/patients/<pid>")
class PatientDetail(MethodView):
    @blp.response(200, PatientSchema)
    @blp.alt_response(404, description="No such patient, or not yours")
    def get(self, pid: str) -> dict[str, Any]:
        """A patient's profile and settings (`me` for your own)"""
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid)
        summary = _summaries(session, [patient.id]).get(patient.id)
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action="patient.read",
            patient_id=patient.id,
            resource_type="patient",
            resource_id=patient.id,
        )
        session.commit()
        return patient_out(patient, summary)

    @blp.arguments(PatientUpdateSchema)
    @blp.response(200, PatientSchema)
    @blp.alt_response(403, description="A patient may change only her time zone")
    @blp.alt_response(404, description="No such patient, or not yours")
    def patch(self, body: dict[str, Any], pid: str) -> dict[str, Any]:
        """Change a patient's profile or settings (targets, schedule, rule thresholds)"""
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid, for_update=True)
        services.update_patient(session, principal=principal, patient=patient, changes=body, now=utcnow())
        session.commit()
        return patient_out(patient)


@blp.route("/patients/<pid>/invite")
class PatientInvite(MethodView):
    @clinicians_only
    @blp.response(201, InviteSchema)
    @blp.alt_response(404, description="No such patient, or not yours")
    @blp.alt_response(409, description="The patient has already registered")
    def post(self, pid: str) -> dict[str, Any]:
        """Issue a new invite code (for a patient who lost hers)"""
        from backend.errors import Conflict

        principal = require_clinician()
        session = db()
        patient = load_patient_for(session, principal, pid)
        if patient.user_id is not None:
            raise Conflict("The patient has already registered.")
        now = utcnow()
        code = new_invite_code(session, patient=patient, settings=settings(), now=now)
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action="patient.invite",
            patient_id=patient.id,
            resource_type="patient",
            resource_id=patient.id,
        )
        session.commit()
        return {"invite_code": code, "invite_expires_at": now + _invite_lifetime()}


@blp.route("/teams/<team_id>")
class Team(MethodView):
    @clinicians_only
    @blp.response(200, TeamSchema)
    @blp.alt_response(403, description="Clinicians only")
    @blp.alt_response(404, description="No such team, or not yours")
    def get(self, team_id: str) -> dict[str, Any]:
        """A care team and its settings (rule thresholds, email options)"""
        principal = require_clinician()
        session = db()
        team = services.get_team_for(
            session, team_id=team_id, team_ids=clinician_team_ids(session, principal.user_id)
        )
        return team_out(team)

    @clinicians_only
    @blp.arguments(TeamUpdateSchema)
    @blp.response(200, TeamSchema)
    @blp.alt_response(403, description="Clinicians only")
    @blp.alt_response(404, description="No such team, or not yours")
    def patch(self, body: dict[str, Any], team_id: str) -> dict[str, Any]:
        """Change a care team's name or settings"""
        principal = require_clinician()
        session = db()
        team = services.get_team_for(
            session, team_id=team_id, team_ids=clinician_team_ids(session, principal.user_id)
        )
        if "name" in body:
            team.name = body["name"]
        if "settings" in body:
            team.settings = {**(team.settings or {}), **body["settings"]}
            # Every patient of the team is evaluated again with the new thresholds.
            session.execute(
                update(Patient).where(Patient.care_team_id == team.id).values(data_changed_at=utcnow())
            )
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action="team.update",
            resource_type="care_team",
            resource_id=team.id,
        )
        session.commit()
        return team_out(team)


@blp.route("/rule-thresholds")
class RuleThresholds(MethodView):
    @clinicians_only
    @blp.response(200, RuleThresholdSchema(many=True))
    @blp.alt_response(403, description="Clinicians only")
    def get(self) -> list[dict[str, Any]]:
        """Every rule threshold with its default and its source

        Any of them can be overridden for a team (`PATCH /teams/{team_id}`,
        `settings.rule_overrides`) and for one patient (`PATCH /patients/{pid}`,
        `rule_overrides`); the patient's value wins."""
        import dataclasses

        from backend.clinical.thresholds import DEFAULT_THRESHOLDS, THRESHOLD_SOURCES

        require_clinician()
        return [
            {
                "name": f.name,
                "default": getattr(DEFAULT_THRESHOLDS, f.name),
                "source": THRESHOLD_SOURCES.get(f.name, ""),
            }
            for f in dataclasses.fields(DEFAULT_THRESHOLDS)
        ]


@registration.route("/register")
class Register(MethodView):
    decorators = [limiter.limit(lambda: settings().login_rate_limit)]

    @registration.doc(security=[])
    @registration.arguments(RegisterSchema)
    @registration.response(201, TokenPairSchema)
    @registration.alt_response(422, description="Invalid, used or expired invite code (one answer for all)")
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a patient account with the invite code from the care team"""
        return pair_out(
            commit_then_raise(accounts.register_patient, settings=settings(), now=utcnow(), **body)
        )
