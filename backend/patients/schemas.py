from __future__ import annotations

import zoneinfo
from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from backend.clinical.catalog import LAM_TYPES, TREATMENT_STATUSES
from backend.schemas import PageArgs, PageSchema, StrictSchema

_ZONES = frozenset(zoneinfo.available_timezones())


def _check_zone(value: str) -> None:
    if value not in _ZONES:
        raise ValidationError("Not an IANA time zone name, e.g. Europe/London.")


def _check_overrides(value: dict[str, Any]) -> None:
    from backend.clinical.thresholds import DEFAULT_THRESHOLDS

    try:
        DEFAULT_THRESHOLDS.merged(value)
    except (ValueError, TypeError) as exc:
        raise ValidationError(str(exc)) from exc


class TroughTargetMixin(StrictSchema):
    @validates_schema
    def _target_order(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data.get("trough_target_low"), data.get("trough_target_high")
        if low is not None and high is not None and low >= high:
            raise ValidationError("Must be below trough_target_high.", "trough_target_low")


class PatientCreateSchema(TroughTargetMixin):
    care_team_id = fields.String(required=True, validate=validate.Length(equal=36))
    external_ref = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64))
    sex_at_birth = fields.String(required=True, validate=validate.OneOf(["female", "male"]))
    date_of_birth = fields.Date(required=True)
    height_cm = fields.Float(required=True, validate=validate.Range(min=100, max=230))
    lam_type = fields.String(required=True, validate=validate.OneOf(LAM_TYPES))
    timezone = fields.String(required=True, validate=_check_zone)
    treatment_status = fields.String(load_default="untreated", validate=validate.OneOf(TREATMENT_STATUSES))
    trough_target_low = fields.Float(load_default=5.0, validate=validate.Range(min=0.5, max=50))
    trough_target_high = fields.Float(load_default=15.0, validate=validate.Range(min=0.5, max=50))
    expected_sessions_per_week = fields.Integer(load_default=7, validate=validate.Range(min=1, max=21))
    rule_overrides = fields.Dict(keys=fields.String(), load_default=dict, validate=_check_overrides)

    @validates("date_of_birth")
    def _dob(self, value: date, **_: Any) -> None:
        today = date.today()  # noqa: DTZ011 - a calendar date, plausibility only
        if not (date(1900, 1, 1) <= value <= today):
            raise ValidationError("Must be a past date.")


class PatientUpdateSchema(TroughTargetMixin):
    external_ref = fields.String(allow_none=True, validate=validate.Length(max=64))
    height_cm = fields.Float(validate=validate.Range(min=100, max=230))
    lam_type = fields.String(validate=validate.OneOf(LAM_TYPES))
    timezone = fields.String(validate=_check_zone)
    treatment_status = fields.String(validate=validate.OneOf(TREATMENT_STATUSES))
    trough_target_low = fields.Float(validate=validate.Range(min=0.5, max=50))
    trough_target_high = fields.Float(validate=validate.Range(min=0.5, max=50))
    expected_sessions_per_week = fields.Integer(validate=validate.Range(min=1, max=21))
    rule_overrides = fields.Dict(keys=fields.String(), validate=_check_overrides)


PATIENT_EDITABLE_BY_PATIENT = frozenset({"timezone"})


class OpenAlertCountsSchema(StrictSchema):
    urgent = fields.Integer(required=True)
    review = fields.Integer(required=True)
    digest = fields.Integer(required=True)


class PatientSummarySchema(StrictSchema):
    open_alerts = fields.Nested(OpenAlertCountsSchema, required=True)
    last_session_at = fields.AwareDateTime(allow_none=True)
    latest_fev1_l = fields.Float(allow_none=True)
    latest_fev1_pct_predicted = fields.Float(allow_none=True)


class PatientSchema(StrictSchema):
    id = fields.String(required=True)
    care_team_id = fields.String(required=True)
    external_ref = fields.String(allow_none=True)
    registered = fields.Boolean(required=True)
    sex_at_birth = fields.String(required=True)
    date_of_birth = fields.Date(required=True)
    height_cm = fields.Float(required=True)
    lam_type = fields.String(required=True)
    timezone = fields.String(required=True)
    treatment_status = fields.String(required=True)
    trough_target_low = fields.Float(required=True)
    trough_target_high = fields.Float(required=True)
    expected_sessions_per_week = fields.Integer(required=True)
    rule_overrides = fields.Dict(required=True)
    created_at = fields.AwareDateTime(required=True)
    summary = fields.Nested(PatientSummarySchema, allow_none=True)


class PatientCreatedSchema(PatientSchema):
    invite_code = fields.String(required=True)
    invite_expires_at = fields.AwareDateTime(required=True)


class InviteSchema(StrictSchema):
    invite_code = fields.String(required=True)
    invite_expires_at = fields.AwareDateTime(required=True)


class PatientPageSchema(PageSchema):
    items = fields.List(fields.Nested(PatientSchema), required=True)


class PatientListArgs(PageArgs):
    care_team_id = fields.String(validate=validate.Length(equal=36))


class TeamSettingsSchema(StrictSchema):
    rule_overrides = fields.Dict(keys=fields.String(), validate=_check_overrides)
    email_include_details = fields.Boolean()
    email_hourly_cap = fields.Integer(validate=validate.Range(min=1, max=10000))
    email_digest = fields.Boolean(metadata={"description": "Send the weekly digest"})
    email_patient_reminders = fields.Boolean(
        metadata={"description": "Email patients when a trough draw is due or overdue"}
    )


class TeamSchema(StrictSchema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    settings = fields.Nested(TeamSettingsSchema, required=True)


class TeamUpdateSchema(StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    settings = fields.Nested(TeamSettingsSchema)


class RuleThresholdSchema(StrictSchema):
    name = fields.String(required=True)
    default = fields.Raw(required=True, metadata={"description": "number, boolean, text or list"})
    source = fields.String(required=True)
