"""What the patient page shows, read in a few queries and computed by the
existing evaluation (load_history, evaluate_patient); the charts are drawn by
`charts`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.alerts.models import Alert
from backend.auth.models import User
from backend.clinical import model as cm
from backend.clinical.catalog import side_effect_label
from backend.clinical.evaluate import evaluate_patient, segment_trend, treatment_segments
from backend.clinical.gli import age_on, fev1_reference
from backend.clinical.series import home_series
from backend.evaluation.loading import load_history
from backend.patients.models import Patient
from backend.patients.services import thresholds_for
from backend.reminders.services import Reminder, patient_reminders
from backend.streams.events.models import LamEvent
from backend.streams.medication.models import RegimenEvent
from backend.streams.side_effects.models import SideEffectReport
from backend.streams.spirometry.models import SpirometrySession
from backend.streams.troughs.models import TroughResult
from backend.webui import charts

CHART_DAYS = 730


def emails_of(session: Session, user_ids: set[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    return dict(session.execute(select(User.id, User.email).where(User.id.in_(user_ids))).all())


@dataclass
class PatientView:
    evaluation: cm.Evaluation
    fev1_chart: Markup
    trough_chart: Markup
    timeline: list[tuple[datetime, str, str]]
    reminders: list[Reminder]
    grades: list[tuple[str, int]]
    open_alerts: list[Alert]
    trend_lines: list[dict[str, Any]] = field(default_factory=list)


def patient_view(session: Session, patient: Patient, *, now: datetime) -> PatientView:
    thresholds = thresholds_for(session, patient)
    history = load_history(session, patient, as_of=now, thresholds=thresholds)
    evaluation = evaluate_patient(history, as_of=now, thresholds=thresholds)
    since = now - timedelta(days=CHART_DAYS)
    zone = ZoneInfo(patient.timezone)
    sessions = session.execute(
        select(
            SpirometrySession.measured_at,
            SpirometrySession.fev1_l,
            SpirometrySession.setting,
            SpirometrySession.fev1_grade,
            SpirometrySession.session_grade,
            SpirometrySession.pef_l_s,
        )
        .where(
            SpirometrySession.patient_id == patient.id,
            SpirometrySession.deleted_at.is_(None),
            SpirometrySession.measured_at >= since,
            SpirometrySession.measured_at <= now,
        )
        .order_by(SpirometrySession.measured_at)
    ).all()
    readings = [
        cm.SpirometryReading(
            id=str(i),
            measured_at=r.measured_at,
            fev1_l=r.fev1_l,
            grade=r.fev1_grade or r.session_grade,
            setting=r.setting,
            pef_l_s=r.pef_l_s,
        )
        for i, r in enumerate(sessions)
    ]
    daily = home_series(readings, patient.timezone, thresholds)
    clinic = [(r.measured_at.astimezone(zone).date(), r.fev1_l) for r in readings if r.setting == "clinic"]
    regimens = list(history.regimens)

    # the trend per treatment segment, as the evaluation fits it (slope, interval, level)
    as_of_day = now.astimezone(zone).date().toordinal()
    lines = []
    for seg in treatment_segments(
        [r for r in regimens if r.effective_at <= now], patient.timezone, thresholds
    ):
        ts, est = segment_trend(daily, seg, as_of_day, thresholds)
        if est is None or ts.n_readings < 2:
            continue
        lines.append(
            {
                "label": ts.label,
                "start": ts.start,
                "end": ts.end,
                "level_l": est.intercept_l,
                "slope": est.slope_ml_per_year,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "verdict": ts.verdict,
            }
        )
    today = now.astimezone(zone).date()
    ref = fev1_reference(
        sex_at_birth=patient.sex_at_birth,
        age_years=age_on(patient.date_of_birth, today),
        height_cm=patient.height_cm,
        fev1_l=max(daily.fev1_l[-1] if len(daily) else 2.0, 0.1),
    )
    fev1_chart = charts.fev1_chart(
        daily=[(d, float(v)) for d, v in zip(daily.day.tolist(), daily.fev1_l.tolist(), strict=True)],
        clinic=clinic,
        lines=lines,
        pct70=None if ref is None else 0.7 * ref.predicted_l,
        lln=None if ref is None else ref.lln_l,
        regimens=[(r.effective_at.astimezone(zone).date(), r.kind, r.daily_dose_mg) for r in regimens],
        start=(now - timedelta(days=CHART_DAYS)).astimezone(zone).date(),
        end=today,
    )
    troughs = session.scalars(
        select(TroughResult)
        .where(
            TroughResult.patient_id == patient.id,
            TroughResult.deleted_at.is_(None),
            TroughResult.drawn_at <= now,
        )
        .order_by(TroughResult.drawn_at)
    ).all()
    trough_chart = charts.trough_chart(
        troughs=[
            (t.drawn_at.astimezone(zone).date(), t.value_ng_ml, t.before_steady_state, t.not_true_trough)
            for t in troughs
        ],
        low=patient.trough_target_low,
        high=patient.trough_target_high,
        doses=[
            (r.effective_at.astimezone(zone).date(), r.daily_dose_mg)
            for r in regimens
            if r.daily_dose_mg is not None
        ],
        end=today,
    )
    timeline: list[tuple[datetime, str, str]] = []
    for se in session.scalars(
        select(SideEffectReport).where(
            SideEffectReport.patient_id == patient.id,
            SideEffectReport.deleted_at.is_(None),
            SideEffectReport.onset_at >= since,
        )
    ):
        grade = f", CTCAE grade {se.ctcae_grade}" if se.ctcae_grade is not None else ""
        what = f"{side_effect_label(se.term)} ({se.severity.replace('_', ' ')}{grade})"
        timeline.append((se.onset_at, "side effect", what))
    for ev in session.scalars(
        select(LamEvent).where(
            LamEvent.patient_id == patient.id, LamEvent.deleted_at.is_(None), LamEvent.occurred_at >= since
        )
    ):
        timeline.append((ev.occurred_at, "LAM event", ev.kind.replace("_", " ")))
    for rg in session.scalars(
        select(RegimenEvent).where(RegimenEvent.patient_id == patient.id, RegimenEvent.deleted_at.is_(None))
    ):
        dose = f" {rg.daily_dose_mg:g} mg/day" if rg.daily_dose_mg is not None else ""
        drug = f" {rg.drug_name}" if rg.drug_name else ""
        timeline.append((rg.effective_at, "regimen", f"{rg.kind.replace('_', ' ')}{dose}{drug}"))
    timeline.sort(key=lambda item: item[0], reverse=True)
    recent = [r for r in readings if r.measured_at >= now - timedelta(days=90)]
    # a session is graded from its blows (ATS/ERS 2019); one sent without blows cannot be
    grades = sorted(Counter(r.grade or "ungraded (sent without blows)" for r in recent).items())
    open_alerts = list(
        session.scalars(
            select(Alert)
            .where(Alert.patient_id == patient.id, Alert.status != "resolved")
            .order_by(Alert.opened_at.desc())
        )
    )
    return PatientView(
        evaluation=evaluation,
        fev1_chart=fev1_chart,
        trough_chart=trough_chart,
        timeline=timeline,
        reminders=patient_reminders(session, patient, now=now),
        grades=grades,
        open_alerts=open_alerts,
        trend_lines=lines,
    )
