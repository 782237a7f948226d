"""FHIR R4 export of one patient's record, for her and her clinicians."""

from __future__ import annotations

import json

from flask import Response
from flask.views import MethodView

from backend.audit import record_audit
from backend.auth.permissions import current_principal
from backend.db import new_id, utcnow
from backend.fhir.bundle import patient_bundle
from backend.fhir.loading import load_patient_record
from backend.patients.access import load_patient_for
from backend.web import Blueprint, db

FHIR_JSON = "application/fhir+json"

blp = Blueprint("fhir", __name__, url_prefix="/api/v1", description="FHIR R4 export of a patient's record")


@blp.route("/patients/<pid>/fhir")
class PatientFhir(MethodView):
    @blp.doc(
        responses={
            "200": {
                "description": "A FHIR R4 Bundle (type collection): Patient, Condition, Observation, "
                "MedicationStatement, MedicationAdministration, AdverseEvent",
                "content": {FHIR_JSON: {"schema": {"type": "object"}}},
            }
        }
    )
    @blp.alt_response(404, description="No such patient, or not yours")
    def get(self, pid: str) -> Response:
        """Her whole record as a FHIR R4 Bundle (no name; the team's reference as identifier)"""
        principal = current_principal()
        session = db()
        patient = load_patient_for(session, principal, pid)
        now = utcnow()
        bundle = patient_bundle(load_patient_record(session, patient), bundle_id=new_id(), timestamp=now)
        record_audit(
            session,
            actor_id=principal.user_id,
            actor_role=principal.role,
            action="fhir.export",
            patient_id=patient.id,
            resource_type="patient",
            resource_id=patient.id,
        )
        session.commit()
        return Response(json.dumps(bundle), mimetype=FHIR_JSON)
