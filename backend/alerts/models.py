"""Alerts raised for a care team, and the history of what happened to each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, new_id, utcnow

ALERT_STATUSES = ("open", "acknowledged", "snoozed", "resolved")
ALERT_SEVERITIES = ("urgent", "review", "digest")


class Alert(Base):
    """One episode of one rule for one patient.

    `open_episode_key` equals `episode_key` while the alert is not resolved and
    is NULL once it is: the unique constraint over (patient, rule,
    open_episode_key) makes a second unresolved alert for the same episode
    impossible on SQLite and PostgreSQL alike (NULLs are distinct on both),
    whichever process or request raises it.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("patient_id", "rule", "open_episode_key"),
        Index("ix_alerts_team_status_opened", "care_team_id", "status", "opened_at"),
        Index("ix_alerts_patient_rule_episode", "patient_id", "rule", "episode_key"),
        Index("ix_alerts_status_snoozed_until", "status", "snoozed_until"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    care_team_id: Mapped[str] = mapped_column(ForeignKey("care_teams.id"))
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    episode_key: Mapped[str] = mapped_column(String(200))
    open_episode_key: Mapped[str | None] = mapped_column(String(200))
    # 'evaluation' alerts are resolved automatically when their condition clears;
    # 'event' alerts (a reported side effect, a LAM event) only by a clinician.
    source: Mapped[str] = mapped_column(String(16), default="evaluation")
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime]  # the as-of time of the evaluation that raised it
    last_seen_at: Mapped[datetime]  # last evaluation in which the condition held
    numbers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    explanation: Mapped[str] = mapped_column(Text)
    patient_message: Mapped[str | None] = mapped_column(Text)
    acknowledged_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    resolved_at: Mapped[datetime | None]
    resolution_note: Mapped[str | None] = mapped_column(Text)
    last_notified_at: Mapped[datetime | None]
    notify_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AlertEvent(Base):
    """Append-only history of an alert: opened, acknowledged, snoozed, ..."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert_at", "alert_id", "at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"))  # None: the system
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
