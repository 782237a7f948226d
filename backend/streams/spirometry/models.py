from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base
from backend.streams.records import StreamRecord, stream_table_args


class SpirometrySession(StreamRecord, Base):
    """One spirometry session (home or clinic) with the values derived at ingest."""

    __tablename__ = "spirometry_sessions"
    __table_args__ = stream_table_args("spirometry_sessions", "measured_at")

    measured_at: Mapped[datetime]
    setting: Mapped[str] = mapped_column(String(8))  # home | clinic
    fev1_l: Mapped[float]  # with blows: the largest acceptable blow (ATS/ERS 2019)
    fvc_l: Mapped[float | None]
    reported_fev1_l: Mapped[float | None]  # the device's figures, as sent
    reported_fvc_l: Mapped[float | None]
    fev1_fvc: Mapped[float | None]
    pef_l_s: Mapped[float | None]
    fef2575_l_s: Mapped[float | None]
    device: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    blows: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # ATS/ERS 2019 grades, when blows were sent.
    fev1_grade: Mapped[str | None] = mapped_column(String(1))
    fvc_grade: Mapped[str | None] = mapped_column(String(1))
    session_grade: Mapped[str | None] = mapped_column(String(1))
    # GLI Global at the measurement date.
    fev1_predicted_l: Mapped[float | None]
    fev1_lln_l: Mapped[float | None]
    fev1_pct_predicted: Mapped[float | None]
    fev1_z: Mapped[float | None]
    fvc_predicted_l: Mapped[float | None]
    fvc_lln_l: Mapped[float | None]
    fvc_pct_predicted: Mapped[float | None]
    fvc_z: Mapped[float | None]
    fev1_fvc_predicted: Mapped[float | None]
    fev1_fvc_lln: Mapped[float | None]
    fev1_fvc_z: Mapped[float | None]
    fev1_fvc_below_lln: Mapped[bool | None]  # obstruction (GLI LLN, Stanojevic et al. 2022)
    gli_note: Mapped[str | None] = mapped_column(String(200))  # why there is no reference value
