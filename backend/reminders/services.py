"""Reminders for the patient: a trough draw coming up or overdue, home
readings overdue. Computed in the patient's own time zone from the clinical
trough schedule, for `GET /patients/{pid}/reminders` and for reminder emails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from backend.auth.models import User
from backend.clinical.troughs import ON_KINDS, current_item, on_treatment, trough_schedule
from backend.config import Settings
from backend.evaluation.loading import load_regimens, load_troughs
from backend.notify.outbox import queue_email, reminder_message_id, render, team_email_options
from backend.patients.models import CareTeam, Patient
from backend.patients.services import thresholds_for
from backend.streams.spirometry.models import SpirometrySession

# A draw window opening within this many days is shown as "coming up".
UPCOMING_DAYS = 7

TROUGH_TEXT = {
    "upcoming": "A sirolimus blood level (trough) test is coming up. Draw it just before "
    "your next dose, between {start} and {end}.",
    "due": "Your sirolimus blood level (trough) test is due now: draw it just before your "
    "next dose, by {end}.",
    "overdue": "Your sirolimus blood level (trough) test is overdue. Please arrange it soon "
    "and draw it just before your next dose.",
    "missed": "Your sirolimus blood level (trough) test was missed. Please contact your care "
    "team to arrange it.",
}
READINGS_TEXT = "No home spirometry reading has arrived since {last}. Please do a reading when you can."
NO_READINGS_TEXT = "No home spirometry reading has arrived yet. Please do your first reading."


@dataclass(frozen=True)
class Reminder:
    kind: str  # trough_draw | readings
    status: str  # upcoming | due | overdue | missed
    key: str  # stable per reminder episode: emails are sent once per key
    message: str
    due_date: date | None = None
    window_start: date | None = None
    window_end: date | None = None
    reason: str | None = None


def patient_reminders(session: Session, patient: Patient, *, now: datetime) -> list[Reminder]:
    zone = ZoneInfo(patient.timezone)
    today = now.astimezone(zone).date()
    thresholds = thresholds_for(session, patient)
    regimens = load_regimens(session, patient.id, now)
    troughs = load_troughs(session, patient.id, now)
    reminders: list[Reminder] = []
    schedule = trough_schedule(
        regimens,
        troughs,
        patient.timezone,
        now,
        thresholds,
        assume_on_treatment=patient.treatment_status == "on_sirolimus",
        monitoring_since=patient.created_at.astimezone(zone).date(),
    )
    item = current_item(schedule)
    treated = on_treatment(regimens, now) or (
        patient.treatment_status == "on_sirolimus" and not any(r.kind in ON_KINDS for r in regimens)
    )
    if item is not None and treated:
        show = item.status != "upcoming" or (item.window_start - today).days <= UPCOMING_DAYS
        if show:
            reminders.append(
                Reminder(
                    kind="trough_draw",
                    status=item.status,
                    key=f"trough:{item.reason}:{item.anchor_date.isoformat()}:{item.status}",
                    message=TROUGH_TEXT[item.status].format(
                        start=item.window_start.isoformat(), end=item.window_end.isoformat()
                    ),
                    due_date=item.due_date,
                    window_start=item.window_start,
                    window_end=item.window_end,
                    reason=item.reason,
                )
            )
    expected = max(1, patient.expected_sessions_per_week)
    interval_days = math.ceil(7 / expected)
    last = session.scalar(
        select(func.max(SpirometrySession.measured_at)).where(
            SpirometrySession.patient_id == patient.id,
            SpirometrySession.deleted_at.is_(None),
            SpirometrySession.measured_at <= now,
        )
    )
    if last is None:
        started = patient.created_at.astimezone(zone).date()
        if (today - started).days > interval_days:
            reminders.append(
                Reminder(
                    kind="readings",
                    status="overdue",
                    key=f"readings:none:{started.isoformat()}",
                    message=NO_READINGS_TEXT,
                    due_date=started + timedelta(days=interval_days),
                )
            )
    else:
        last_day = last.astimezone(zone).date()
        due = last_day + timedelta(days=interval_days)
        if today > due:
            reminders.append(
                Reminder(
                    kind="readings",
                    status="overdue",
                    key=f"readings:{last_day.isoformat()}",
                    message=READINGS_TEXT.format(last=last_day.isoformat()),
                    due_date=due,
                )
            )
    return reminders


def queue_reminder_emails(
    session_factory: sessionmaker[Session], *, settings: Settings, now: datetime
) -> dict[str, int]:
    """Email patients their due and overdue trough draws, once per reminder.

    Only trough draws are emailed (they need planning: a lab visit before a
    dose); overdue readings are shown in the app only. A team can turn the emails
    off with its setting `email_patient_reminders: false`.
    """
    if not settings.patient_reminder_emails:
        return {"patients": 0, "queued": 0}
    after = ""
    patients = queued = 0
    while True:
        with session_factory() as session:
            chunk = list(
                session.scalars(
                    select(Patient.id)
                    .where(
                        Patient.id > after,
                        Patient.user_id.is_not(None),
                        Patient.treatment_status == "on_sirolimus",
                    )
                    .order_by(Patient.id)
                    .limit(200)
                )
            )
        if not chunk:
            break
        after = chunk[-1]
        for pid in chunk:
            with session_factory.begin() as session:
                patient = session.get(Patient, pid)
                if patient is None or patient.user_id is None:
                    continue
                team = session.get(CareTeam, patient.care_team_id)
                if not team_email_options(team.settings if team else None).patient_reminders:
                    continue
                user = session.get(User, patient.user_id)
                if user is None or not user.is_active:
                    continue
                patients += 1
                for reminder in patient_reminders(session, patient, now=now):
                    if reminder.kind != "trough_draw" or reminder.status not in ("due", "overdue"):
                        continue
                    body_text, body_html = render(
                        "reminder",
                        text=reminder.message,
                        link=settings.public_base_url.rstrip("/"),
                    )
                    queued += queue_email(
                        session,
                        message_id=reminder_message_id(patient.id, reminder.key, user.email),
                        kind="reminder",
                        recipient=user.email,
                        recipient_user_id=user.id,
                        subject="[LAMtrack] Reminder: sirolimus blood level test",
                        body_text=body_text,
                        body_html=body_html,
                        now=now,
                        care_team_id=patient.care_team_id,
                    )
    return {"patients": patients, "queued": queued}
