from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base
from backend.streams.records import StreamRecord, stream_table_args


class SideEffectReport(StreamRecord, Base):
    """A side effect the patient reports (PRO-CTCAE style) or a clinician grades (CTCAE)."""

    __tablename__ = "side_effect_reports"
    __table_args__ = stream_table_args("side_effect_reports", "onset_at")

    onset_at: Mapped[datetime]
    term: Mapped[str] = mapped_column(String(40))
    severity: Mapped[str] = mapped_column(String(16))
    ctcae_grade: Mapped[int | None]
    temperature_c: Mapped[float | None]
    antibiotics_started: Mapped[bool] = mapped_column(default=False)
    sudden: Mapped[bool] = mapped_column(default=False, server_default=false())
    free_text: Mapped[str | None] = mapped_column(Text)
