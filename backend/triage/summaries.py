"""What a clinician scans a list of patients for, across features: the latest
reading and the open alerts by severity.

Patient routes show it through the app's `lamtrack.patient_summaries` hook
(set by `create_app`), so that the patient record does not depend on the
features that depend on it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.alerts.models import Alert
from backend.streams.medication.models import SirolimusDose as D
from backend.streams.spirometry.models import SpirometrySession as S
from backend.triage.models import PatientReview


def latest_sessions(session: Session, patient_ids: list[str]) -> dict[str, Any]:
    """Latest home or clinic session per patient, in one query."""
    if not patient_ids:
        return {}
    ranked = (
        select(
            S.patient_id,
            S.measured_at,
            S.fev1_l,
            S.fev1_pct_predicted,
            func.row_number()
            .over(partition_by=S.patient_id, order_by=(S.measured_at.desc(), S.id.desc()))
            .label("rn"),
        )
        .where(S.patient_id.in_(patient_ids), S.deleted_at.is_(None))
        .subquery()
    )
    rows = session.execute(select(ranked).where(ranked.c.rn == 1)).all()
    return {
        r.patient_id: {
            "last_session_at": r.measured_at,
            "latest_fev1_l": r.fev1_l,
            "latest_fev1_pct_predicted": r.fev1_pct_predicted,
        }
        for r in rows
    }


def patient_summaries(session: Session, patient_ids: list[str]) -> dict[str, dict[str, Any]]:
    """What a clinician scans a list for: the latest reading and the open alerts
    by severity, for a page of patients in two queries."""
    latest = latest_sessions(session, patient_ids)
    counts: dict[str, dict[str, int]] = {}
    if patient_ids:
        for pid, severity, n in session.execute(
            select(Alert.patient_id, Alert.severity, func.count(Alert.id))
            .where(Alert.patient_id.in_(patient_ids), Alert.status != "resolved")
            .group_by(Alert.patient_id, Alert.severity)
        ).all():
            counts.setdefault(pid, {})[severity] = n
    empty = {"last_session_at": None, "latest_fev1_l": None, "latest_fev1_pct_predicted": None}
    return {
        pid: {
            **latest.get(pid, empty),
            "open_alerts": {s: counts.get(pid, {}).get(s, 0) for s in ("urgent", "review", "digest")},
        }
        for pid in patient_ids
    }


TROUGH_RULES = ("trough_draw_due", "trough_draw_missed")
ADHERENCE_DAYS = 30


def triage_summaries(session: Session, patient_ids: list[str], *, now: datetime) -> dict[str, dict[str, Any]]:
    """`patient_summaries` plus what the care team's triage list shows: dose
    adherence over the last 30 days, whether a trough draw is due (an unresolved
    trough alert) and when a clinician last marked the patient reviewed."""
    out = patient_summaries(session, patient_ids)
    if not patient_ids:
        return out
    since = now - timedelta(days=ADHERENCE_DAYS)
    doses: dict[str, dict[str, int]] = {}
    for pid, status, n in session.execute(
        select(D.patient_id, D.status, func.count(D.id))
        .where(D.patient_id.in_(patient_ids), D.deleted_at.is_(None), D.taken_at >= since, D.taken_at <= now)
        .group_by(D.patient_id, D.status)
    ).all():
        doses.setdefault(pid, {})[status] = n
    trough_due = set(
        session.scalars(
            select(Alert.patient_id).where(
                Alert.patient_id.in_(patient_ids), Alert.rule.in_(TROUGH_RULES), Alert.status != "resolved"
            )
        )
    )
    reviewed = dict(
        session.execute(
            select(PatientReview.patient_id, func.max(PatientReview.reviewed_at))
            .where(PatientReview.patient_id.in_(patient_ids))
            .group_by(PatientReview.patient_id)
        ).all()
    )
    for pid in patient_ids:
        counts = doses.get(pid, {})
        logged = counts.get("taken", 0) + counts.get("missed", 0)
        out[pid]["adherence_pct"] = round(100.0 * counts.get("taken", 0) / logged) if logged else None
        out[pid]["trough_due"] = pid in trough_due
        out[pid]["last_reviewed_at"] = reviewed.get(pid)
    return out


def mark_reviewed(session: Session, *, patient_id: str, reviewer_id: str, now: datetime) -> PatientReview:
    review = PatientReview(patient_id=patient_id, reviewer_id=reviewer_id, reviewed_at=now)
    session.add(review)
    return review
