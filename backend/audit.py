"""Append-only audit trail: who touched which patient's data, and every auth event.

Rows carry identifiers and outcomes, never the measured values themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

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


def _values(
    *,
    actor_id: str | None,
    actor_role: str | None,
    action: str,
    outcome: str,
    patient_id: str | None,
    resource_type: str | None,
    resource_id: str | None,
    detail: str | None,
    request_id: str | None,
    ip: str | None,
) -> dict[str, Any]:
    """The columns of one audit row. Inside a request, request id and address
    are filled from the request when not given, so services need not pass them
    around."""
    if request_id is None or ip is None:
        from flask import g, has_request_context, request

        if has_request_context():
            request_id = request_id or g.get("request_id")
            ip = ip or request.remote_addr
    return {"actor_id": actor_id, "actor_role": actor_role, "action": action, "outcome": outcome,
            "patient_id": patient_id, "resource_type": resource_type, "resource_id": resource_id,
            "detail": detail, "request_id": request_id, "ip": ip}


def audit_row(
    *,
    actor_id: str | None,
    actor_role: str | None,
    action: str,
    outcome: str = "success",
    patient_id: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    detail: str | None = None,
    request_id: str | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """The audit row `record_audit` writes, as an object not yet added to any session."""
    return AuditEvent(**_values(actor_id=actor_id, actor_role=actor_role, action=action,
                                outcome=outcome, patient_id=patient_id, resource_type=resource_type,
                                resource_id=resource_id, detail=detail, request_id=request_id, ip=ip))


def record_audit(
    session: Session,
    *,
    actor_id: str | None,
    actor_role: str | None,
    action: str,
    outcome: str = "success",
    patient_id: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    detail: str | None = None,
    request_id: str | None = None,
    ip: str | None = None,
) -> None:
    """Write an audit row in the caller's transaction: one INSERT sent now
    (every request writes one, so it skips the unit-of-work flush)."""
    values = _values(actor_id=actor_id, actor_role=actor_role, action=action, outcome=outcome,
                     patient_id=patient_id, resource_type=resource_type, resource_id=resource_id,
                     detail=detail, request_id=request_id, ip=ip)
    values["at"] = utcnow()
    session.execute(_INSERT, [values])
