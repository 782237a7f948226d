"""When a clinician last reviewed a patient (the triage list's "last reviewed")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, new_id, utcnow


class PatientReview(Base):
    """One "reviewed" mark: who looked at the patient's record, and when."""

    __tablename__ = "patient_reviews"
    __table_args__ = (Index("ix_patient_reviews_patient_at", "patient_id", "reviewed_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    patient_id: Mapped[str] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    reviewer_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    reviewed_at: Mapped[datetime] = mapped_column(default=utcnow)
