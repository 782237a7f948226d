"""The cohort report's one reading of the database: a team's patients, each as
the plain data `backend.reports.cohort` computes on (no identifiers)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.clinical import model as cm
from backend.evaluation.loading import load_regimens, load_troughs
from backend.patients.models import Patient
from backend.reports.cohort import CohortPatient, Reading
from backend.streams.side_effects.models import SideEffectReport
from backend.streams.spirometry.models import SpirometrySession


def _readings(session: Session, patient_id: str, as_of: datetime) -> list[Reading]:
    rows = session.execute(
        select(SpirometrySession.measured_at, SpirometrySession.fev1_l, SpirometrySession.fev1_pct_predicted)
        .where(
            SpirometrySession.patient_id == patient_id,
            SpirometrySession.deleted_at.is_(None),
            SpirometrySession.measured_at <= as_of,
        )
        .order_by(SpirometrySession.measured_at)
    ).all()
    return [Reading(measured_at=m, fev1_l=f, fev1_pct_predicted=p) for m, f, p in rows]


def _side_effects(session: Session, patient_id: str, as_of: datetime) -> list[cm.SideEffectReport]:
    rows = session.scalars(
        select(SideEffectReport)
        .where(
            SideEffectReport.patient_id == patient_id,
            SideEffectReport.deleted_at.is_(None),
            SideEffectReport.onset_at <= as_of,
        )
        .order_by(SideEffectReport.onset_at)
    ).all()
    return [
        cm.SideEffectReport(
            id=r.id,
            onset_at=r.onset_at,
            term=r.term,
            severity=r.severity,
            ctcae_grade=r.ctcae_grade,
            temperature_c=r.temperature_c,
            antibiotics_started=bool(r.antibiotics_started),
        )
        for r in rows
    ]


def load_team_cohort(session: Session, team_id: str, *, as_of: datetime) -> list[CohortPatient]:
    """Every patient of the team with her whole history up to `as_of`.

    Menopausal status and diagnosis date come from her clinical profile (a
    patient whose status is "unknown" is grouped so; one without a diagnosis date
    is left out of the time-from-diagnosis grouping).
    """
    patients = session.scalars(
        select(Patient).where(Patient.care_team_id == team_id).order_by(Patient.id)
    ).all()
    return [
        CohortPatient(
            readings=_readings(session, p.id, as_of),
            regimens=load_regimens(session, p.id, as_of),
            troughs=load_troughs(session, p.id, as_of),
            side_effects=_side_effects(session, p.id, as_of),
            end=as_of,
            menopausal_status=p.menopausal_status,
            diagnosis_date=p.diagnosis_date,
        )
        for p in patients
    ]
