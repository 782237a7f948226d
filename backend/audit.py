"""Append-only audit trail: who touched which patient's data, and every auth event.

Rows carry identifiers and outcomes, never the measured values themselves.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import Any, Required, TypedDict, Unpack, cast

from sqlalchemy import BigInteger, Index, Integer, String, Table, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from backend.db import Base, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_patient_at", "patient_id", "at"),
        Index("ix_audit_events_actor_at", "actor_id", "at"),
    )

    # SQLite only autoincrements an INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[str | None] = mapped_column(String(36))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str | None] = mapped_column(String(36))
    resource_type: Mapped[str | None] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(200))
    request_id: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(64))


_INSERT = insert(cast(Table, AuditEvent.__table__))


class AuditFields(TypedDict, total=False):
    """What a caller says of one audit row (the keyword arguments of
    `audit_row` and `record_audit`); `actor_id`, `actor_role` and `action`
    are required."""

    actor_id: Required[str | None]
    actor_role: Required[str | None]
    action: Required[str]
    outcome: str  # "success" when not given
    patient_id: str | None
    resource_type: str | None
    resource_id: str | None
    detail: str | None
    request_id: str | None
    ip: str | None


_OPTIONAL = ("patient_id", "resource_type", "resource_id", "detail")

# (request id, client address) of the request being served; the web layer sets
# it for each request, so that services need not pass them around.
REQUEST_CONTEXT: ContextVar[tuple[str | None, str | None] | None] = ContextVar(
    "audit_request_context", default=None
)


def _values(fields: AuditFields) -> dict[str, Any]:
    """The columns of one audit row. Inside a request, request id and address
    are filled from the request when not given, so services need not pass them
    around."""
    request_id, ip = fields.get("request_id"), fields.get("ip")
    if request_id is None or ip is None:
        context = REQUEST_CONTEXT.get()
        if context is not None:
            request_id = request_id or context[0]
            ip = ip or context[1]
    values: dict[str, Any] = {name: fields.get(name) for name in _OPTIONAL}
    values.update(
        actor_id=fields["actor_id"],
        actor_role=fields["actor_role"],
        action=fields["action"],
        outcome=fields.get("outcome", "success"),
        request_id=request_id,
        ip=ip,
    )
    return values


def audit_row(**fields: Unpack[AuditFields]) -> AuditEvent:
    """The audit row `record_audit` writes, as an object not yet added to any session."""
    return AuditEvent(**_values(fields))


def record_audit(session: Session, **fields: Unpack[AuditFields]) -> None:
    """Write an audit row in the caller's transaction: one INSERT sent now
    (every request writes one, so it skips the unit-of-work flush)."""
    values = _values(fields)
    values["at"] = utcnow()
    session.execute(_INSERT, [values])
