"""Alerts for clinicians (list, read, acknowledge, snooze, resolve), a patient's
own alerts."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import ValidationError
from sqlalchemy import Select, and_, or_, select

from backend.alerts import services
from backend.alerts.access import load_alert_for
from backend.alerts.models import Alert, AlertEvent
from backend.alerts.schemas import (
    AlertDetailSchema,
    AlertListArgs,
    AlertNoteSchema,
    AlertPageSchema,
    AlertSnoozeSchema,
    PatientAlertListArgs,
)
from backend.audit import record_audit
from backend.auth.permissions import (
    clinician_team_ids,
    clinicians_only,
    current_principal,
    require_clinician,
    resource_check,
)
from backend.auth.principal import Principal
from backend.clinical.model import RULE_ALIASES
from backend.db import utcnow
from backend.errors import Unprocessable
from backend.patients.access import load_patient_for, record_denied
from backend.patients.models import Patient
from backend.schemas import cursor_time, decode_cursor, encode_cursor
from backend.web import Blueprint, db

blp = Blueprint("alerts", __name__, url_prefix="/api/v1", description="Care-team alerts")
alerts_blp = blp

CLINICIAN_FIELDS = (
    "id",
    "patient_id",
    "care_team_id",
    "rule",
    "severity",
    "episode_key",
    "source",
    "status",
    "opened_at",
    "last_seen_at",
    "numbers",
    "explanation",
    "patient_message",
    "acknowledged_by",
    "acknowledged_at",
    "snoozed_until",
    "resolved_by",
    "resolved_at",
    "resolution_note",
    "last_notified_at",
    "notify_count",
)
PATIENT_FIELDS = ("id", "rule", "severity", "status", "opened_at", "patient_message")


def alert_out(alert: Alert, principal: Principal) -> dict[str, Any]:
    names = CLINICIAN_FIELDS if principal.is_clinician else PATIENT_FIELDS
    return {name: getattr(alert, name) for name in names}


def _page(stmt: Select[Alert], args: dict[str, Any]) -> tuple[list[Alert], str | None]:
    """Newest first, keyset-paged on (opened_at, id)."""
    try:
        after = decode_cursor(args["cursor"], 2)
        at = cursor_time(after[0]) if after else None
    except (ValidationError, ValueError):
        raise Unprocessable(
            "The cursor is not valid.", errors={"query": {"cursor": ["Not valid."]}}
        ) from None
    if after and at is not None:
        if at.tzinfo is None:
            raise Unprocessable("The cursor is not valid.", errors={"query": {"cursor": ["Not valid."]}})
        stmt = stmt.where(or_(Alert.opened_at < at, and_(Alert.opened_at == at, Alert.id < str(after[1]))))
    stmt = stmt.order_by(Alert.opened_at.desc(), Alert.id.desc()).limit(args["limit"] + 1)
    rows = list(db().scalars(stmt))
    more = len(rows) > args["limit"]
    rows = rows[: args["limit"]]
    cursor = encode_cursor([rows[-1].opened_at.isoformat(), rows[-1].id]) if more else None
    return rows, cursor


@resource_check("alert_id")
def _check_alert(session: Any, principal: Principal, alert_id: str) -> None:
    """Before the body is parsed: an alert of the clinician's teams, else 404 (audited)."""
    load_alert_for(session, principal, alert_id)


def _audit(
    principal: Principal,
    action: str,
    *,
    patient_id: str | None = None,
    resource_id: str | None = None,
    detail: str | None = None,
) -> None:
    record_audit(
        db(),
        actor_id=principal.user_id,
        actor_role=principal.role,
        action=action,
        patient_id=patient_id,
        resource_type="alert",
        resource_id=resource_id,
        detail=detail,
    )


def _same_rule(rule: str) -> list[str]:
    """The rule and the former ids of it (or, for a former id, its successor)."""
    current = RULE_ALIASES.get(rule, rule)
    return [current, *(old for old, new in RULE_ALIASES.items() if new == current)]


def _is_team_patient(session: Any, patient_id: str, team_ids: list[str]) -> bool:
    stmt = select(Patient.id).where(Patient.id == patient_id, Patient.care_team_id.in_(team_ids))
    return session.scalars(stmt).first() is not None


@blp.route("/alerts")
class Alerts(MethodView):
    @clinicians_only
    @blp.arguments(AlertListArgs, location="query")
    @blp.response(200, AlertPageSchema)
    @blp.alt_response(403, description="Clinicians only")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Alerts of your care teams' patients, newest first

        Filters: patient_id, rule, severity, status."""
        principal = require_clinician()
        session = db()
        teams = clinician_team_ids(session, principal.user_id)
        wanted = args.get("patient_id")
        if wanted and not _is_team_patient(session, wanted, teams):
            # Filtered on a patient who is not hers (or no one): nothing is read,
            # and the trail says so without naming that patient as read.
            record_denied(
                session, principal, action="alert.list", resource_type="patient", resource_id=wanted
            )
            return {"items": [], "next_cursor": None}
        stmt = select(Alert).where(
            Alert.patient_id.in_(select(Patient.id).where(Patient.care_team_id.in_(teams)))
        )
        for name in ("patient_id", "severity", "status"):
            if args.get(name):
                stmt = stmt.where(getattr(Alert, name) == args[name])
        if args.get("rule"):
            stmt = stmt.where(Alert.rule.in_(_same_rule(args["rule"])))
        rows, cursor = _page(stmt, args)
        _audit(principal, "alert.list", patient_id=wanted, detail=f"{len(rows)} alerts")
        session.commit()
        return {"items": [alert_out(a, principal) for a in rows], "next_cursor": cursor}


def _detail(alert: Alert, principal: Principal) -> dict[str, Any]:
    out = alert_out(alert, principal)
    out["history"] = [
        {
            "at": e.at,
            "action": e.action,
            "actor_id": e.actor_id,
            "from_status": e.from_status,
            "to_status": e.to_status,
            "note": e.note,
        }
        for e in db().scalars(
            select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.at, AlertEvent.id)
        )
    ]
    return out


@blp.route("/alerts/<alert_id>")
class AlertDetail(MethodView):
    @clinicians_only
    @blp.response(200, AlertDetailSchema)
    @blp.alt_response(403, description="Clinicians only")
    @blp.alt_response(404, description="No such alert, or not your team's")
    def get(self, alert_id: str) -> dict[str, Any]:
        """One alert with the numbers behind it and its history"""
        principal = require_clinician()
        alert = load_alert_for(db(), principal, alert_id)
        _audit(principal, "alert.read", patient_id=alert.patient_id, resource_id=alert.id)
        out = _detail(alert, principal)
        db().commit()
        return out


def _change(alert_id: str, action: Any, **options: Any) -> dict[str, Any]:
    """A clinician's lifecycle action on one of her teams' alerts (locked while changed)."""
    principal = require_clinician()
    alert = load_alert_for(db(), principal, alert_id, for_update=True)
    action(db(), alert=alert, actor_id=principal.user_id, now=utcnow(), **options)
    db().commit()
    return _detail(alert, principal)


@blp.route("/alerts/<alert_id>/acknowledge")
class AlertAcknowledge(MethodView):
    @clinicians_only
    @blp.arguments(AlertNoteSchema, required=False)
    @blp.response(200, AlertDetailSchema)
    @blp.alt_response(403, description="Clinicians only")
    @blp.alt_response(404, description="No such alert, or not your team's")
    @blp.alt_response(409, description="The alert is already resolved")
    def post(self, body: dict[str, Any], alert_id: str) -> dict[str, Any]:
        """Acknowledge an alert: someone in the team is on it (stops re-notification)"""
        return _change(alert_id, services.acknowledge_alert, note=body.get("note"))


@blp.route("/alerts/<alert_id>/snooze")
class AlertSnooze(MethodView):
    @clinicians_only
    @blp.arguments(AlertSnoozeSchema)
    @blp.response(200, AlertDetailSchema)
    @blp.alt_response(403, description="Clinicians only")
    @blp.alt_response(404, description="No such alert, or not your team's")
    @blp.alt_response(409, description="The alert is already resolved")
    def post(self, body: dict[str, Any], alert_id: str) -> dict[str, Any]:
        """Snooze an alert until a time (`until`) or for `hours`; it reopens when the snooze ends"""
        return _change(
            alert_id,
            services.snooze_alert,
            until=body.get("until"),
            hours=body.get("hours"),
            note=body.get("note"),
        )


@blp.route("/alerts/<alert_id>/resolve")
class AlertResolve(MethodView):
    @clinicians_only
    @blp.arguments(AlertNoteSchema, required=False)
    @blp.response(200, AlertDetailSchema)
    @blp.alt_response(403, description="Clinicians only")
    @blp.alt_response(404, description="No such alert, or not your team's")
    @blp.alt_response(409, description="The alert is already resolved")
    def post(self, body: dict[str, Any], alert_id: str) -> dict[str, Any]:
        """Resolve an alert, with an optional note; the same episode is not raised again"""
        return _change(alert_id, services.resolve_alert, note=body.get("note"))


@blp.route("/patients/<pid>/alerts")
class PatientAlerts(MethodView):
    @blp.arguments(PatientAlertListArgs, location="query")
    @blp.response(200, AlertPageSchema)
    @blp.alt_response(404, description="No such patient, or not yours")
    def get(self, args: dict[str, Any], pid: str) -> dict[str, Any]:
        """A patient's alerts, newest first

        A patient sees rule, severity, status and her message; clinicians see all."""
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid)
        stmt = select(Alert).where(Alert.patient_id == patient.id)
        if args.get("status"):
            stmt = stmt.where(Alert.status == args["status"])
        rows, cursor = _page(stmt, args)
        _audit(principal, "alert.list", patient_id=patient.id, detail=f"{len(rows)} alerts")
        session.commit()
        return {"items": [alert_out(a, principal) for a in rows], "next_cursor": cursor}
