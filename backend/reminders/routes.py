"""What the patient should do next, for her app: GET /patients/{pid}/reminders."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields

from backend.audit import record_audit
from backend.auth.permissions import current_principal
from backend.db import utcnow
from backend.patients.access import load_patient_for
from backend.reminders.services import patient_reminders
from backend.schemas import PageSchema
from backend.web import Blueprint, db

blp = Blueprint("reminders", __name__, url_prefix="/api/v1", description="Patient reminders")


class ReminderSchema(Schema):
    kind = fields.String(required=True, metadata={"description": "trough_draw | readings"})
    status = fields.String(required=True, metadata={"description": "upcoming | due | overdue | missed"})
    message = fields.String(required=True)
    due_date = fields.Date(allow_none=True)
    window_start = fields.Date(allow_none=True)
    window_end = fields.Date(allow_none=True)
    reason = fields.String(allow_none=True)


class ReminderListSchema(PageSchema):
    """Reminders are few; the list is never paged (`next_cursor` is null)."""

    items = fields.List(fields.Nested(ReminderSchema), required=True)
    timezone = fields.String(required=True)
    as_of = fields.AwareDateTime(required=True)


@blp.route("/patients/<pid>/reminders")
class PatientReminders(MethodView):
    @blp.response(200, ReminderListSchema)
    @blp.alt_response(404, description="No such patient, or not yours")
    def get(self, pid: str) -> dict[str, Any]:
        """What the patient should do next: a trough draw coming up or overdue, readings overdue

        Dates are calendar dates in the patient's own time zone."""
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid)
        now = utcnow()
        reminders = patient_reminders(session, patient, now=now)
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action="reminder.list",
            patient_id=patient.id,
            resource_type="reminder",
        )
        session.commit()
        return {
            "items": [
                {
                    "kind": r.kind,
                    "status": r.status,
                    "message": r.message,
                    "due_date": r.due_date,
                    "window_start": r.window_start,
                    "window_end": r.window_end,
                    "reason": r.reason,
                }
                for r in reminders
            ],
            "next_cursor": None,
            "timezone": patient.timezone,
            "as_of": now,
        }
