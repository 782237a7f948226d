from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base
from backend.streams.records import StreamRecord, stream_table_args


class SirolimusDose(StreamRecord, Base):
    """A dose the patient logged as taken, or as missed."""

    __tablename__ = "sirolimus_doses"
    __table_args__ = stream_table_args("sirolimus_doses", "taken_at")

    taken_at: Mapped[datetime]  # for a missed dose: when it was due
    status: Mapped[str] = mapped_column(String(8))  # taken | missed
    dose_mg: Mapped[float | None]


class RegimenEvent(StreamRecord, Base):
    """A change of treatment: start, dose change, interruption, resume, stop, or
    start/stop of a drug that interacts with sirolimus."""

    __tablename__ = "regimen_events"
    __table_args__ = stream_table_args("regimen_events", "effective_at")

    effective_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    daily_dose_mg: Mapped[float | None]
    drug_name: Mapped[str | None] = mapped_column(String(100))
    interaction: Mapped[str | None] = mapped_column(String(16))  # inhibitor | inducer | warning
    recorded_by_role: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(500))
