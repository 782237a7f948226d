"""The one mapping from stored rows to the clinical engine's plain data
(`backend.clinical.model`): a patient's facts and her history up to a moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.clinical import model as cm
from backend.clinical.thresholds import DEFAULT_THRESHOLDS, Thresholds
from backend.patients.models import Patient
from backend.streams.events.models import LamEvent
from backend.streams.medication.models import RegimenEvent, SirolimusDose
from backend.streams.side_effects.models import SideEffectReport
from backend.streams.spirometry.models import SpirometrySession
from backend.streams.troughs.models import TroughResult


def patient_facts(patient: Patient) -> cm.PatientFacts:
    return cm.PatientFacts(
        patient_id=patient.id,
        sex_at_birth=patient.sex_at_birth,
        date_of_birth=patient.date_of_birth,
        height_cm=patient.height_cm,
        lam_type=patient.lam_type,
        timezone=patient.timezone,
        treatment_status=patient.treatment_status,
        trough_target_low=patient.trough_target_low,
        trough_target_high=patient.trough_target_high,
        expected_sessions_per_week=patient.expected_sessions_per_week,
    )


def _rows(
    session: Session,
    model: Any,
    time_col: Any,
    patient_id: str,
    as_of: datetime,
    since: datetime | None = None,
) -> Sequence[Any]:
    stmt = (
        select(model)
        .where(model.patient_id == patient_id, model.deleted_at.is_(None), time_col <= as_of)
        .order_by(time_col)
    )
    if since is not None:
        stmt = stmt.where(time_col >= since)
    return session.scalars(stmt).all()


def load_regimens(session: Session, patient_id: str, as_of: datetime) -> list[cm.RegimenEvent]:
    return [
        cm.RegimenEvent(
            id=r.id,
            effective_at=r.effective_at,
            kind=r.kind,
            daily_dose_mg=r.daily_dose_mg,
            drug_name=r.drug_name,
        )
        for r in _rows(session, RegimenEvent, RegimenEvent.effective_at, patient_id, as_of)
    ]


def load_troughs(session: Session, patient_id: str, as_of: datetime) -> list[cm.TroughResult]:
    return [
        cm.TroughResult(id=t.id, drawn_at=t.drawn_at, value_ng_ml=t.value_ng_ml, last_dose_at=t.last_dose_at)
        for t in _rows(session, TroughResult, TroughResult.drawn_at, patient_id, as_of)
    ]


def load_history(
    session: Session,
    patient: Patient,
    *,
    as_of: datetime,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> cm.PatientHistory:
    """Everything the engine needs about one patient, measured up to `as_of`.

    Spirometry reaches back over the trend window plus the longest look-back the
    rules use; doses over the adherence windows; regimen events and troughs in
    full (the trough schedule starts at the last regimen change, however old).
    """
    pid = patient.id
    reading_days = (
        max(
            thresholds.trend_window_days, thresholds.acute_lookback_days, thresholds.start_criterion_home_days
        )
        + 60
    )
    readings = [
        cm.SpirometryReading(
            id=s.id,
            measured_at=s.measured_at,
            fev1_l=s.fev1_l,
            fvc_l=s.fvc_l,
            grade=s.fev1_grade or s.session_grade,
            setting=s.setting,
            device_id=device_id(s.device),
        )
        for s in _rows(
            session,
            SpirometrySession,
            SpirometrySession.measured_at,
            pid,
            as_of,
            since=as_of - timedelta(days=reading_days),
        )
    ]
    dose_days = max(thresholds.adherence_lookback_days, thresholds.missed_doses_window_days) + 30
    doses = [
        cm.DoseLog(id=d.id, taken_at=d.taken_at, status=d.status, dose_mg=d.dose_mg)
        for d in _rows(
            session,
            SirolimusDose,
            SirolimusDose.taken_at,
            pid,
            as_of,
            since=as_of - timedelta(days=dose_days),
        )
    ]
    side_effects = [
        cm.SideEffectReport(
            id=r.id,
            onset_at=r.onset_at,
            term=r.term,
            severity=r.severity,
            ctcae_grade=r.ctcae_grade,
            temperature_c=r.temperature_c,
            antibiotics_started=bool(r.antibiotics_started),
            sudden=bool(r.sudden),
        )
        for r in _rows(
            session,
            SideEffectReport,
            SideEffectReport.onset_at,
            pid,
            as_of,
            since=as_of
            - timedelta(days=max(thresholds.symptom_window_days, thresholds.side_effect_lookback_days) + 30),
        )
    ]
    events = [
        cm.LamEvent(id=e.id, occurred_at=e.occurred_at, kind=e.kind)
        for e in _rows(session, LamEvent, LamEvent.occurred_at, pid, as_of, since=as_of - timedelta(days=90))
    ]
    return cm.PatientHistory(
        facts=patient_facts(patient),
        readings=readings,
        doses=doses,
        regimens=load_regimens(session, pid, as_of),
        troughs=load_troughs(session, pid, as_of),
        side_effects=side_effects,
        events=events,
    )


def device_id(device: dict[str, Any] | None) -> str | None:
    if not isinstance(device, dict):
        return None
    for key in ("id", "serial", "model"):
        value = device.get(key)
        if value:
            return str(value)
    return None


def end_of_local_day(day: date, timezone: str) -> datetime:
    """The last second of a calendar day in a patient's zone (DST-aware)."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=ZoneInfo(timezone))
