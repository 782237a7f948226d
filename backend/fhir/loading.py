"""The FHIR export's one reading of the database: one patient's whole record."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.fhir.bundle import PatientRecord
from backend.patients.models import Patient
from backend.streams.medication.models import RegimenEvent, SirolimusDose
from backend.streams.side_effects.models import SideEffectReport
from backend.streams.spirometry.models import SpirometrySession
from backend.streams.troughs.models import TroughResult


def _all(session: Session, model: Any, time_col: Any, patient_id: str) -> list[Any]:
    stmt = (
        select(model)
        .where(model.patient_id == patient_id, model.deleted_at.is_(None))
        .order_by(time_col, model.id)
    )
    return list(session.scalars(stmt).all())


def load_patient_record(session: Session, patient: Patient) -> PatientRecord:
    pid = patient.id
    return PatientRecord(
        patient=patient,
        spirometry=_all(session, SpirometrySession, SpirometrySession.measured_at, pid),
        troughs=_all(session, TroughResult, TroughResult.drawn_at, pid),
        regimens=_all(session, RegimenEvent, RegimenEvent.effective_at, pid),
        doses=_all(session, SirolimusDose, SirolimusDose.taken_at, pid),
        side_effects=_all(session, SideEffectReport, SideEffectReport.onset_at, pid),
    )
