"""The shape every stream row shares and how a stream declares itself.

Each stream (spirometry, doses, regimens, side effects, troughs, LAM events)
declares a `StreamSpec` in its own folder under `streams/`: its model, its item
schemas and a `prepare` hook that derives stored fields (GLI values, trough
flags...). `ingest.py` applies the specs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from marshmallow import Schema
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from backend.auth.principal import Principal
from backend.config import Settings
from backend.db import new_id

if TYPE_CHECKING:
    from backend.patients.models import Patient


class StreamRecord:
    """Columns every stream row has. Times are UTC; `utc_offset_minutes` keeps
    the offset the phone sent so the time can be shown as the patient saw it."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int]
    utc_offset_minutes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(36))
    deleted_at: Mapped[datetime | None]
    deleted_by: Mapped[str | None] = mapped_column(String(36))

    @declared_attr
    def patient_id(cls) -> Mapped[str]:
        return mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))


def stream_table_args(table: str, time_column: str) -> tuple[Any, ...]:
    return (
        UniqueConstraint("patient_id", "client_id", name=f"uq_{table}_patient_client"),
        Index(f"ix_{table}_patient_seq", "patient_id", "seq"),
        Index(f"ix_{table}_patient_time", "patient_id", time_column),
    )


@dataclass(frozen=True)
class IngestContext:
    session: Session
    patient: Patient
    principal: Principal
    now: datetime
    settings: Settings


PrepareHook = Callable[[IngestContext, list[dict[str, Any]]], list[dict[str, Any]]]
AfterHook = Callable[[IngestContext, list[dict[str, Any]]], dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class StreamSpec:
    name: str  # URL segment and feed name
    model: type[Any]
    item_schema: type[Schema]  # what the app sends for one item
    out_schema: type[Schema]  # what the API returns for one item
    time_field: str  # the clinical time of the item (paging, since/until)
    time_fields: tuple[str, ...]  # every time shown back with the phone's offset
    prepare: PrepareHook | None = None
    after_insert: AfterHook | None = None  # e.g. event-driven alerts; extra result fields
    after_delete: AfterHook | None = None  # what depends on a row being gone (trough flags)
    after_duplicate: AfterHook | None = None  # a replayed item answers what its first answer had
    description: str = ""
    extra_result_fields: tuple[str, ...] = field(default_factory=tuple)
