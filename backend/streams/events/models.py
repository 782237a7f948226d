from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base
from backend.streams.records import StreamRecord, stream_table_args


class LamEvent(StreamRecord, Base):
    """A complication or milestone: pneumothorax, chylothorax, admission, transplant listing."""

    __tablename__ = "lam_events"
    __table_args__ = stream_table_args("lam_events", "occurred_at")

    occurred_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
