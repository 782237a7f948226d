from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from backend.clinical.catalog import SPIROMETRY_SETTINGS
from backend.schemas import Number, StrictSchema, Text, clinical_time


class DeviceSchema(StrictSchema):
    manufacturer = Text(validate=validate.Length(max=100))
    model = Text(validate=validate.Length(max=100))
    serial = Text(validate=validate.Length(max=100))
    firmware = Text(validate=validate.Length(max=50))
    app_version = Text(validate=validate.Length(max=50))


class BlowSchema(StrictSchema):
    fev1_l = Number(required=True, validate=validate.Range(min=0.05, max=8))
    fvc_l = Number(load_default=None, allow_none=True, validate=validate.Range(min=0.05, max=10))
    pef_l_s = Number(load_default=None, allow_none=True, validate=validate.Range(min=0, max=20))
    fev1_acceptable = fields.Boolean(required=True)
    fvc_acceptable = fields.Boolean(required=True)
    usable = fields.Boolean(load_default=True)
    flags = fields.List(
        Text(validate=validate.Length(max=40)), load_default=list, validate=validate.Length(max=20)
    )


class SpirometryItemSchema(StrictSchema):
    client_id = fields.UUID(required=True)
    measured_at = clinical_time(required=True)
    setting = Text(load_default="home", validate=validate.OneOf(SPIROMETRY_SETTINGS))
    fev1_l = Number(required=True, validate=validate.Range(min=0.1, max=8))
    fvc_l = Number(load_default=None, allow_none=True, validate=validate.Range(min=0.1, max=10))
    fev1_fvc = Number(load_default=None, allow_none=True, validate=validate.Range(min=0.1, max=1))
    pef_l_s = Number(load_default=None, allow_none=True, validate=validate.Range(min=0, max=20))
    fef2575_l_s = Number(load_default=None, allow_none=True, validate=validate.Range(min=0, max=15))
    device = fields.Nested(DeviceSchema, load_default=None, allow_none=True)
    blows = fields.List(
        fields.Nested(BlowSchema), load_default=None, allow_none=True, validate=validate.Length(min=1, max=20)
    )

    @validates_schema
    def _fev1_within_fvc(self, data: dict[str, Any], **_: Any) -> None:
        fvc = data.get("fvc_l")
        if fvc is not None and data["fev1_l"] > fvc + 0.005:
            raise ValidationError("FEV1 cannot exceed FVC.", "fev1_l")


class SpirometryOutSchema(StrictSchema):
    id = Text(required=True)
    client_id = Text(required=True)
    measured_at = fields.AwareDateTime(required=True)
    setting = Text(required=True)
    fev1_l = Number(
        required=True, metadata={"description": "With blows: the largest acceptable FEV1 (ATS/ERS 2019)."}
    )
    fvc_l = Number(allow_none=True)
    fev1_fvc = Number(allow_none=True)
    reported_fev1_l = Number(allow_none=True, metadata={"description": "The device's FEV1, as sent."})
    reported_fvc_l = Number(allow_none=True, metadata={"description": "The device's FVC, as sent."})
    pef_l_s = Number(allow_none=True)
    fef2575_l_s = Number(allow_none=True)
    device = fields.Dict(allow_none=True)
    blows = fields.List(fields.Dict(), allow_none=True)
    fev1_grade = Text(allow_none=True)
    fvc_grade = Text(allow_none=True)
    session_grade = Text(allow_none=True)
    fev1_predicted_l = Number(allow_none=True)
    fev1_lln_l = Number(allow_none=True)
    fev1_pct_predicted = Number(allow_none=True)
    fev1_z = Number(allow_none=True)
    fvc_predicted_l = Number(allow_none=True)
    fvc_lln_l = Number(allow_none=True)
    fvc_pct_predicted = Number(allow_none=True)
    fvc_z = Number(allow_none=True)
    fev1_fvc_predicted = Number(allow_none=True)
    fev1_fvc_lln = Number(allow_none=True)
    fev1_fvc_z = Number(allow_none=True)
    fev1_fvc_below_lln = fields.Boolean(
        allow_none=True, metadata={"description": "FEV1/FVC below the GLI Global LLN: obstruction."}
    )
    gli_note = Text(
        allow_none=True, metadata={"description": "Why there is no GLI reference value (age, height, sex)."}
    )
    created_at = fields.AwareDateTime(required=True)
