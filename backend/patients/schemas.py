from __future__ import annotations

import zoneinfo
from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from backend.clinical.catalog import LAM_TYPES, TREATMENT_STATUSES
from backend.schemas import (
    Number,
    PageArgs,
    PageSchema,
    StrictSchema,
    Text,
    Whole,
)

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


MENOPAUSAL_STATUSES = ("premenopausal", "postmenopausal", "unknown")
CHYLOUS_EFFUSIONS = ("absent", "pleural", "ascites", "both")
# Dates of the clinical profile: not in the future, not before her birth (checked
# in services.check_profile against the patient's own calendar).
PROFILE_DATES = ("diagnosis_date", "dlco_measured_on", "aml_imaging_date", "chylous_effusion_date")
PROFILE_FIELDS = (
    "menopausal_status",
    "diagnosis_date",
    "dlco_ml_min_mmhg",
    "dlco_percent_predicted",
    "dlco_measured_on",
    "aml_largest_cm",
    "aml_imaging_date",
    "chylous_effusion",
    "chylous_effusion_symptomatic",
    "chylous_effusion_date",
)


class ClinicalProfileMixin(StrictSchema):
    """The clinical profile a care team keeps (start criteria, cohort report)."""

    menopausal_status = Text(
        validate=validate.OneOf(MENOPAUSAL_STATUSES),
        metadata={"description": "Sets the untreated FEV1 decline expected (NHLBI registry)"},
    )
    diagnosis_date = fields.Date(allow_none=True, metadata={"description": "Date LAM was diagnosed"})
    dlco_ml_min_mmhg = Number(
        allow_none=True,
        validate=validate.Range(min=0.5, max=80),
        metadata={"description": "Latest DLCO (diffusing capacity), mL/min/mmHg"},
    )
    dlco_percent_predicted = Number(
        allow_none=True,
        validate=validate.Range(min=1, max=250),
        metadata={"description": "Latest DLCO, % predicted"},
    )
    dlco_measured_on = fields.Date(
        allow_none=True, metadata={"description": "Date of that DLCO; needed with a DLCO value"}
    )
    aml_largest_cm = Number(
        allow_none=True,
        validate=validate.Range(min=0, max=50),
        metadata={"description": "Largest renal angiomyolipoma diameter, cm (0 = none seen)"},
    )
    aml_imaging_date = fields.Date(allow_none=True, metadata={"description": "Date of that imaging"})
    chylous_effusion = Text(validate=validate.OneOf(CHYLOUS_EFFUSIONS))
    chylous_effusion_symptomatic = fields.Boolean(
        metadata={"description": "The chylous effusion causes symptoms (needs an effusion)"}
    )
    chylous_effusion_date = fields.Date(allow_none=True, metadata={"description": "Date it was found"})


class TroughTargetMixin(ClinicalProfileMixin):
    @validates_schema
    def _target_order(self, data: dict[str, Any], **_: Any) -> None:
        low, high = data.get("trough_target_low"), data.get("trough_target_high")
        if low is not None and high is not None and low >= high:
            raise ValidationError("Must be below trough_target_high.", "trough_target_low")


class PatientCreateSchema(TroughTargetMixin):
    care_team_id = Text(required=True, validate=validate.Length(equal=36))
    external_ref = Text(load_default=None, allow_none=True, validate=validate.Length(max=64))
    sex_at_birth = Text(required=True, validate=validate.OneOf(["female", "male"]))
    date_of_birth = fields.Date(required=True)
    height_cm = Number(required=True, validate=validate.Range(min=100, max=230))
    lam_type = Text(required=True, validate=validate.OneOf(LAM_TYPES))
    timezone = Text(required=True, validate=_check_zone)
    treatment_status = Text(load_default="untreated", validate=validate.OneOf(TREATMENT_STATUSES))
    trough_target_low = Number(load_default=5.0, validate=validate.Range(min=0.5, max=50))
    trough_target_high = Number(load_default=15.0, validate=validate.Range(min=0.5, max=50))
    expected_sessions_per_week = Whole(load_default=7, validate=validate.Range(min=1, max=21))
    rule_overrides = fields.Dict(keys=Text(), load_default=dict, validate=_check_overrides)
    menopausal_status = Text(load_default="unknown", validate=validate.OneOf(MENOPAUSAL_STATUSES))
    chylous_effusion = Text(load_default="absent", validate=validate.OneOf(CHYLOUS_EFFUSIONS))
    chylous_effusion_symptomatic = fields.Boolean(load_default=False)

    @validates("date_of_birth")
    def _dob(self, value: date, **_: Any) -> None:
        today = date.today()  # noqa: DTZ011 - a calendar date, plausibility only
        if not (date(1900, 1, 1) <= value <= today):
            raise ValidationError("Must be a past date.")


class PatientUpdateSchema(TroughTargetMixin):
    external_ref = Text(allow_none=True, validate=validate.Length(max=64))
    height_cm = Number(validate=validate.Range(min=100, max=230))
    lam_type = Text(validate=validate.OneOf(LAM_TYPES))
    timezone = Text(validate=_check_zone)
    treatment_status = Text(validate=validate.OneOf(TREATMENT_STATUSES))
    trough_target_low = Number(validate=validate.Range(min=0.5, max=50))
    trough_target_high = Number(validate=validate.Range(min=0.5, max=50))
    expected_sessions_per_week = Whole(validate=validate.Range(min=1, max=21))
    rule_overrides = fields.Dict(keys=Text(), validate=_check_overrides)


PATIENT_EDITABLE_BY_PATIENT = frozenset({"timezone"})


class OpenAlertCountsSchema(StrictSchema):
    urgent = fields.Integer(required=True)
    review = fields.Integer(required=True)
    digest = fields.Integer(required=True)


class PatientSummarySchema(StrictSchema):
    open_alerts = fields.Nested(OpenAlertCountsSchema, required=True)
    last_session_at = fields.AwareDateTime(allow_none=True)
    latest_fev1_l = Number(allow_none=True)
    latest_fev1_pct_predicted = Number(allow_none=True)


class PatientSchema(StrictSchema):
    id = Text(required=True)
    care_team_id = Text(required=True)
    external_ref = Text(allow_none=True)
    registered = fields.Boolean(required=True)
    sex_at_birth = Text(required=True)
    date_of_birth = fields.Date(required=True)
    height_cm = Number(required=True)
    lam_type = Text(required=True)
    timezone = Text(required=True)
    treatment_status = Text(required=True)
    trough_target_low = Number(required=True)
    trough_target_high = Number(required=True)
    expected_sessions_per_week = fields.Integer(required=True)
    rule_overrides = fields.Dict(required=True)
    menopausal_status = Text(required=True)
    diagnosis_date = fields.Date(required=True, allow_none=True)
    dlco_ml_min_mmhg = Number(required=True, allow_none=True)
    dlco_percent_predicted = Number(required=True, allow_none=True)
    dlco_measured_on = fields.Date(required=True, allow_none=True)
    aml_largest_cm = Number(required=True, allow_none=True)
    aml_imaging_date = fields.Date(required=True, allow_none=True)
    chylous_effusion = Text(required=True)
    chylous_effusion_symptomatic = fields.Boolean(required=True)
    chylous_effusion_date = fields.Date(required=True, allow_none=True)
    created_at = fields.AwareDateTime(required=True)
    summary = fields.Nested(PatientSummarySchema, allow_none=True)


class PatientCreatedSchema(PatientSchema):
    invite_code = Text(required=True)
    invite_expires_at = fields.AwareDateTime(required=True)


class InviteSchema(StrictSchema):
    invite_code = Text(required=True)
    invite_expires_at = fields.AwareDateTime(required=True)


class PatientPageSchema(PageSchema):
    items = fields.List(fields.Nested(PatientSchema), required=True)


class PatientListArgs(PageArgs):
    care_team_id = Text(validate=validate.Length(equal=36))


class TeamSettingsSchema(StrictSchema):
    rule_overrides = fields.Dict(keys=Text(), validate=_check_overrides)
    email_include_details = fields.Boolean()
    email_hourly_cap = Whole(validate=validate.Range(min=1, max=10000))
    email_digest = fields.Boolean(metadata={"description": "Send the weekly digest"})
    email_patient_reminders = fields.Boolean(
        metadata={"description": "Email patients when a trough draw is due or overdue"}
    )


class TeamSchema(StrictSchema):
    id = Text(required=True)
    name = Text(required=True)
    settings = fields.Nested(TeamSettingsSchema, required=True)


class TeamUpdateSchema(StrictSchema):
    name = Text(validate=validate.Length(min=1, max=200))
    settings = fields.Nested(TeamSettingsSchema)


class RuleThresholdSchema(StrictSchema):
    name = Text(required=True)
    default = fields.Raw(required=True, metadata={"description": "number, boolean, text or list"})
    source = Text(required=True)
