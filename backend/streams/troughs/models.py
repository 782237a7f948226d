from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, false
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base
from backend.streams.records import StreamRecord, stream_table_args


class TroughResult(StreamRecord, Base):
    """A whole-blood sirolimus trough level, with what makes it interpretable."""

    __tablename__ = "trough_results"
    __table_args__ = stream_table_args("trough_results", "drawn_at")

    drawn_at: Mapped[datetime]
    value_ng_ml: Mapped[float]
    last_dose_at: Mapped[datetime | None]
    assay_method: Mapped[str] = mapped_column(String(16))
    lab_name: Mapped[str | None] = mapped_column(String(200))
    # Derived at ingest from the dose log and the regimen history.
    hours_since_last_dose: Mapped[float | None]
    days_since_regimen_change: Mapped[float | None]
    not_true_trough: Mapped[bool] = mapped_column(default=False)
    before_steady_state: Mapped[bool] = mapped_column(default=False)
    # No last-dose time sent or logged: whether it is a true trough is unknown.
    last_dose_unknown: Mapped[bool] = mapped_column(default=False, server_default=false())
