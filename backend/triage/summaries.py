"""What a clinician scans a list of patients for, across features: the latest
reading and the open alerts by severity.

Patient routes show it through the app's `lamtrack.patient_summaries` hook
(set by `create_app`), so that the patient record does not depend on the
features that depend on it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.alerts.models import Alert
from backend.streams.spirometry.models import SpirometrySession as S


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
