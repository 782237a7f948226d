"""A care team's cohort report (JSON or CSV), for the clinicians of that team."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import fields, validate

from backend.auth.permissions import clinicians_only, require_clinician
from backend.db import utcnow
from backend.reports.cohort import CSV_COLUMNS, report_rows
from backend.reports.services import team_report
from backend.schemas import StrictSchema
from backend.web import Blueprint, db, settings

blp = Blueprint(
    "reports",
    __name__,
    url_prefix="/api/v1",
    description="Cohort reports of a care team (de-identified, small groups suppressed)",
)


class ReportArgsSchema(StrictSchema):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


class EstimateSchema(StrictSchema):
    estimate = fields.Float(allow_none=True)
    ci_low = fields.Float(allow_none=True)
    ci_high = fields.Float(allow_none=True)


class SlopeSchema(StrictSchema):
    on_treatment = fields.Nested(EstimateSchema, required=True)
    before_treatment = fields.Nested(EstimateSchema, required=True)
    change = fields.Nested(
        EstimateSchema, required=True, metadata={"description": "On-treatment minus before-treatment slope"}
    )
    n_readings = fields.Integer(required=True)


class SlopesSchema(StrictSchema):
    fev1_ml_per_year = fields.Nested(SlopeSchema, required=True)
    fev1_pct_predicted_per_year = fields.Nested(SlopeSchema, required=True)


class SideEffectTermRateSchema(StrictSchema):
    term = fields.String(required=True)
    grade = fields.Integer(required=True)
    events = fields.Integer(required=True)
    per_patient_year = fields.Nested(EstimateSchema, required=True)


class SideEffectRatesSchema(StrictSchema):
    events = fields.Integer(required=True)
    per_patient_year = fields.Nested(EstimateSchema, required=True)
    by_term_and_grade = fields.List(fields.Nested(SideEffectTermRateSchema), required=True)


class ReportGroupSchema(StrictSchema):
    grouping = fields.String(
        required=True,
        metadata={
            "description": "trough_band | fev1_at_start | diagnosis_to_start | menopausal_status | dose"
        },
    )
    grouping_title = fields.String(required=True)
    group = fields.String(required=True)
    suppressed = fields.Boolean(
        required=True, metadata={"description": "Fewer patients than the minimum cell size: no numbers"}
    )
    n_patients = fields.Integer(allow_none=True)
    patient_years = fields.Float(allow_none=True)
    slopes = fields.Nested(SlopesSchema, allow_none=True)
    side_effects = fields.Nested(SideEffectRatesSchema, allow_none=True)


class CohortReportSchema(StrictSchema):
    team_id = fields.String(required=True)
    as_of = fields.AwareDateTime(required=True)
    n_patients = fields.Integer(required=True)
    n_treated = fields.Integer(allow_none=True)
    min_cell_size = fields.Integer(required=True)
    caveat = fields.String(required=True)
    method = fields.String(required=True)
    groups = fields.List(fields.Nested(ReportGroupSchema), required=True)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report_rows(report):
        writer.writerow(row)
    out.write(f"# {report['caveat']}\n")
    return out.getvalue()


def build_report(team_id: str) -> dict[str, Any]:
    """The report of `team_id` for the calling clinician (404 if not her team), audited."""
    principal = require_clinician()
    session = db()
    report = team_report(
        session,
        principal=principal,
        team_id=team_id,
        min_cell=settings().report_min_cell_size,
        now=utcnow(),
    )
    session.commit()
    report.pop("team_name")
    return report


@blp.route("/teams/<team_id>/cohort-report")
class CohortReport(MethodView):
    @clinicians_only
    @blp.arguments(ReportArgsSchema, location="query")
    @blp.response(200, CohortReportSchema)
    @blp.doc(
        responses={
            "200": {
                "description": "The report as JSON, or as CSV with `format=csv`",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/CohortReport"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        }
    )
    @blp.alt_response(403, description="Not a clinician")
    @blp.alt_response(404, description="No such team, or not yours")
    def get(self, args: dict[str, Any], team_id: str) -> Any:
        """Cohort report: FEV1 slopes on vs before sirolimus and side-effect rates, by
        trough band, starting FEV1, time from diagnosis, menopausal status and dose"""
        report = build_report(team_id)
        if args["format"] == "csv":
            return Response(
                to_csv(report),
                mimetype="text/csv",
                headers={"Content-Disposition": 'attachment; filename="cohort-report.csv"'},
            )
        return report
