from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, new_id, utcnow


class CareTeam(Base):
    __tablename__ = "care_teams"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    # Team-wide settings: rule threshold overrides, email options (see alerts/notify).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Patient(Base):
    """A patient's clinical profile: only what the rules need, no name."""

    __tablename__ = "patients"
    __table_args__ = (Index("ix_patients_dirty", "data_changed_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    care_team_id: Mapped[str] = mapped_column(ForeignKey("care_teams.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), unique=True)
    # A team's own reference for the patient (e.g. a study or clinic number).
    external_ref: Mapped[str | None] = mapped_column(String(64))
    sex_at_birth: Mapped[str] = mapped_column(String(8))
    date_of_birth: Mapped[date]
    height_cm: Mapped[float]
    lam_type: Mapped[str] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64))
    treatment_status: Mapped[str] = mapped_column(String(16))
    # Clinical profile kept by the care team (the treatment start criteria, the
    # expected untreated decline and the cohort report read it).
    menopausal_status: Mapped[str] = mapped_column(String(16), default="unknown")
    diagnosis_date: Mapped[date | None]
    dlco_ml_min_mmhg: Mapped[float | None]
    dlco_percent_predicted: Mapped[float | None]
    dlco_measured_on: Mapped[date | None]
    aml_largest_cm: Mapped[float | None]  # largest renal angiomyolipoma diameter
    aml_imaging_date: Mapped[date | None]
    chylous_effusion: Mapped[str] = mapped_column(String(16), default="absent")
    chylous_effusion_symptomatic: Mapped[bool] = mapped_column(default=False)
    chylous_effusion_date: Mapped[date | None]
    trough_target_low: Mapped[float] = mapped_column(default=5.0)
    trough_target_high: Mapped[float] = mapped_column(default=15.0)
    expected_sessions_per_week: Mapped[int] = mapped_column(default=7)
    rule_overrides: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Per-patient sequence of data changes; feeds the /changes cursor and
    # serialises concurrent writers of one patient's data (row lock).
    change_seq: Mapped[int] = mapped_column(default=0)
    data_changed_at: Mapped[datetime | None]
    evaluated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
