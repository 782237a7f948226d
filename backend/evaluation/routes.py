"""Read-only views of the clinical engine for one patient: her FEV1 trend and
her trough-draw schedule, computed now from the stored data."""

from __future__ import annotations

import dataclasses
from typing import Any

from flask.views import MethodView
from marshmallow import fields

from backend.audit import record_audit
from backend.auth.permissions import current_principal
from backend.clinical.evaluate import evaluate_patient
from backend.db import utcnow
from backend.evaluation.loading import load_history
from backend.patients.access import load_patient_for
from backend.patients.services import thresholds_for
from backend.schemas import StrictSchema
from backend.web import Blueprint, db

blp = Blueprint(
    "trends",
    __name__,
    url_prefix="/api/v1",
    description="FEV1 trend and trough schedule, from the clinical engine",
)


class TrendSegmentSchema(StrictSchema):
    label = fields.String(required=True)
    start = fields.Date(required=True)
    end = fields.Date(required=True)
    slope_ml_per_year = fields.Float(allow_none=True)
    ci_low = fields.Float(allow_none=True)
    ci_high = fields.Float(allow_none=True)
    n_readings = fields.Integer(required=True)
    span_days = fields.Float(required=True)
    verdict = fields.String(required=True)


class TrendSchema(StrictSchema):
    as_of = fields.AwareDateTime(required=True)
    slope_ml_per_year = fields.Float(allow_none=True)
    ci_low = fields.Float(allow_none=True)
    ci_high = fields.Float(allow_none=True)
    slope_pct_pred_per_year = fields.Float(allow_none=True)
    n_readings = fields.Integer(required=True)
    span_days = fields.Float(required=True)
    verdict = fields.String(
        required=True,
        metadata={"description": "insufficient_data | improving | stable | declining | rapid_decline"},
    )
    window_start = fields.Date(allow_none=True)
    window_end = fields.Date(allow_none=True)
    confidence = fields.Float(required=True)
    lag1_autocorrelation = fields.Float(allow_none=True)
    effective_n = fields.Float(allow_none=True)
    n_outliers = fields.Integer(required=True)
    segments = fields.List(fields.Nested(TrendSegmentSchema), required=True)
    treatment_effect_ml_per_year = fields.Float(
        allow_none=True,
        metadata={"description": "On-treatment minus before-treatment slope: is the drug working for her?"},
    )
    treatment_effect_ci_low = fields.Float(allow_none=True)
    treatment_effect_ci_high = fields.Float(allow_none=True)
    latest_clinic_fev1_l = fields.Float(allow_none=True)
    latest_clinic_at = fields.AwareDateTime(allow_none=True)
    learning_days = fields.Integer(
        required=True, metadata={"description": "Days of first home readings left out (learning effect)."}
    )
    learning_period_end = fields.Date(
        allow_none=True, metadata={"description": "Home readings before this date are not in the trend."}
    )
    learning_period_note = fields.String(allow_none=True)
    current_level_l = fields.Float(
        allow_none=True, metadata={"description": "Fitted FEV1 at the latest reading."}
    )
    current_pct_predicted = fields.Float(
        allow_none=True, metadata={"description": "GLI Global % predicted of the fitted current FEV1."}
    )
    slope_pct_pred_ci_low = fields.Float(allow_none=True)
    slope_pct_pred_ci_high = fields.Float(allow_none=True)

    level_shifts = fields.List(
        fields.Tuple((fields.Date(), fields.Float())),
        required=True,
        metadata={
            "description": "Steps in home FEV1 level (e.g. a replacement device without a new serial) "
            "given their own level, so they change the level, not the slope: [first date of the new "
            "level, step in mL]. A step down raises the review alert fev1_level_drop (check the device). "
            "A drop too recent for the ordinary bar is segmented when it is what makes the slope rapid"
        },
    )
    menopausal_status = fields.String(
        allow_none=True, metadata={"description": "premenopausal | postmenopausal | unknown, where recorded"}
    )
    expected_untreated_slope_ml_per_year = fields.Float(
        allow_none=True,
        metadata={
            "description": "Natural untreated FEV1 slope expected for her menopausal status "
            "(NHLBI registry: -118 premenopausal, -74 postmenopausal, -89 overall)"
        },
    )
    effort_drift_pct_per_year = fields.Float(
        allow_none=True,
        metadata={
            "description": "Slope of ln(PEF/FEV1) over the same window, % per year: PEF is the most "
            "effort-dependent index (ATS/ERS 2019), so worsening effort makes it fall; null without "
            "enough sessions with PEF"
        },
    )
    effort_drift_ci_low = fields.Float(allow_none=True)
    effort_drift_ci_high = fields.Float(allow_none=True)
    effort_drift_n_days = fields.Integer(
        required=True, metadata={"description": "Reading days with both PEF and FEV1 in the window."}
    )
    effort_drift_detected = fields.Boolean(
        required=True,
        metadata={
            "description": "PEF/FEV1 falls at least `effort_drift_min_pct_per_year` with its interval below 0"
        },
    )
    rapid_decline_withheld = fields.Boolean(
        required=True,
        metadata={
            "description": "FEV1 met the rapid-decline rule but effort drift was detected: the verdict is "
            "not rapid_decline and a data-quality review alert (fev1_effort_drift) is raised instead"
        },
    )
    effort_note = fields.String(
        allow_none=True, metadata={"description": "What the trend says about effort and what was done."}
    )


def _learning_note(trend: Any) -> str | None:
    if trend.learning_period_end is None or trend.learning_days == 0:
        return None
    return (
        f"The first {trend.learning_days} days of home readings (before "
        f"{trend.learning_period_end.isoformat()}) are left out of the trend: results improve "
        "while a patient learns the technique."
    )


class TroughScheduleItemSchema(StrictSchema):
    reason = fields.String(required=True)
    anchor_date = fields.Date(required=True)
    due_date = fields.Date(required=True)
    window_start = fields.Date(required=True)
    window_end = fields.Date(required=True)
    missed_after = fields.Date(required=True)
    status = fields.String(
        required=True, metadata={"description": "upcoming | due | overdue | missed | done"}
    )
    done_by = fields.String(allow_none=True)
    late = fields.Boolean(
        required=True,
        metadata={"description": "done by a draw after the window closed (it still counts)"},
    )


class TroughScheduleSchema(StrictSchema):
    as_of = fields.AwareDateTime(required=True)
    timezone = fields.String(required=True)
    items = fields.List(fields.Nested(TroughScheduleItemSchema), required=True)


def _evaluate(pid: str, action: str) -> tuple[Any, Any]:
    principal = current_principal()
    session = db()
    patient = load_patient_for(session, principal, pid)
    now = utcnow()
    thresholds = thresholds_for(session, patient)
    history = load_history(session, patient, as_of=now, thresholds=thresholds)
    evaluation = evaluate_patient(history, as_of=now, thresholds=thresholds)
    record_audit(
        session,
        actor_id=principal.user_id,
        actor_role=principal.role,
        action=action,
        patient_id=patient.id,
        resource_type=action.split(".")[0],
    )
    session.commit()
    return patient, evaluation


@blp.route("/patients/<pid>/trend")
class Trend(MethodView):
    @blp.response(200, TrendSchema)
    @blp.alt_response(404, description="No such patient, or not yours")
    def get(self, pid: str) -> dict[str, Any]:
        """FEV1 slope (mL/year, % predicted/year) with its confidence interval, before vs on treatment"""
        _, evaluation = _evaluate(pid, "trend.read")
        trend = evaluation.trend
        return {
            "as_of": evaluation.as_of,
            **dataclasses.asdict(trend),
            "learning_period_note": _learning_note(trend),
        }


@blp.route("/patients/<pid>/trough-schedule")
class TroughSchedule(MethodView):
    @blp.response(200, TroughScheduleSchema)
    @blp.alt_response(404, description="No such patient, or not yours")
    def get(self, pid: str) -> dict[str, Any]:
        """Trough draws due after each regimen change and for maintenance, in her time zone"""
        patient, evaluation = _evaluate(pid, "trough_schedule.read")
        return {
            "as_of": evaluation.as_of,
            "timezone": patient.timezone,
            "items": [dataclasses.asdict(i) for i in evaluation.trough_schedule],
        }
