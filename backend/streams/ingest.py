"""What the six patient-data streams share: stored shape, idempotent batch
ingest, paged reads, tombstones and the /changes sync feed.

Each stream (spirometry, doses, regimens, side effects, troughs, LAM events)
declares a `StreamSpec` in its own feature folder: its model, its item schemas
and a `prepare` hook that derives stored fields (GLI values, trough flags...).

Ingest of one batch is one transaction. The patient's row is locked first
(`SELECT ... FOR UPDATE`; SQLite takes its write lock at BEGIN), so batches for
one patient are applied one after another: a replay, or the same batch sent by
several threads at once, finds the earlier rows and answers `duplicate`. The
unique key (patient_id, client_id) backs this up. A tombstoned row keeps its
client_id, so replaying the batch that created it answers `duplicate` and does
not bring it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError
from sqlalchemy import BindParameter, bindparam, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from backend.audit import record_audit
from backend.auth.principal import Principal
from backend.config import Settings
from backend.db import new_id
from backend.errors import NotFound, Unprocessable
from backend.patients.access import record_denied
from backend.patients.models import Patient
from backend.schemas import cursor_time
from backend.streams.records import IngestContext, StreamSpec

# ---------------------------------------------------------------- ingest


@cache
def item_schema(schema_cls: type[Schema]) -> Schema:
    """One instance per item schema, shared by every request (a loaded schema
    keeps no state between `load` calls)."""
    return schema_cls()


def _known_ids(session: Session, model: Any, patient_id: str, client_ids: list[str]) -> dict[str, str]:
    # The client ids of a batch are sent as literal constants (they are validated
    # UUIDs), not as 500 bind parameters: PostgreSQL then evaluates the list with a
    # hash and plans with the real values. As parameters of a prepared statement the
    # list was compared one by one against every row of the patient whenever the
    # planner chose the (patient, time) index, which grew to 300 ms per batch for a
    # patient with 20,000 sessions.
    ids: BindParameter[str] = bindparam("client_ids", client_ids, expanding=True, literal_execute=True)
    query = select(model.client_id, model.id).where(model.patient_id == patient_id, model.client_id.in_(ids))
    return {str(c): str(i) for c, i in session.execute(query).all()}


def _check_dates(
    spec: StreamSpec, data: dict[str, Any], patient: Patient, now: datetime, settings: Settings
) -> None:
    """A record dated after now (beyond `max_clock_skew_minutes` of clock skew) or
    before the patient's date of birth is refused: it would enter trends, schedules
    and alerts as a reading that cannot have happened. The date of birth is a
    calendar date where she lives: a moment is compared by its date in her time
    zone, not in UTC."""
    latest = now + timedelta(minutes=settings.max_clock_skew_minutes)
    zone = ZoneInfo(patient.timezone)
    errors: dict[str, list[str]] = {}
    for name in spec.time_fields:
        moment = data.get(name)
        if not isinstance(moment, datetime):
            continue
        if moment > latest:
            errors[name] = [
                f"Must not be in the future (server time {now.isoformat(timespec='seconds')}; "
                f"{settings.max_clock_skew_minutes} minutes of clock skew allowed)."
            ]
        elif moment.astimezone(zone).date() < patient.date_of_birth:
            errors[name] = [
                f"Must not be before the patient's date of birth ({patient.date_of_birth.isoformat()})."
            ]
    if errors:
        raise ValidationError(errors)


def ingest_batch(
    session: Session,
    *,
    spec: StreamSpec,
    patient: Patient,
    principal: Principal,
    items: Sequence[Any],
    now: datetime,
    settings: Settings,
) -> list[dict[str, Any]]:
    """Store new items, answer `duplicate` for known client ids, `invalid` for
    items that do not validate. The caller holds the patient's row lock."""
    schema = item_schema(spec.item_schema)
    results: list[dict[str, Any]] = []
    valid: list[tuple[int, dict[str, Any]]] = []
    for item in items:
        client_id = item.get("client_id") if isinstance(item, dict) else None
        try:
            if not isinstance(item, dict):
                raise ValidationError({"_schema": ["Each item must be an object."]})
            data = schema.load(item)
            _check_dates(spec, data, patient, now, settings)
        except ValidationError as exc:
            results.append(
                {
                    "client_id": client_id if isinstance(client_id, str) else None,
                    "status": "invalid",
                    "id": None,
                    "errors": exc.normalized_messages(),  # type: ignore[no-untyped-call]
                }
            )
            continue
        data["client_id"] = str(data["client_id"])
        results.append({"client_id": data["client_id"], "status": None, "id": None, "errors": None})
        valid.append((len(results) - 1, data))

    model = spec.model
    client_ids = list({d["client_id"] for _, d in valid})
    known: dict[str, str] = {}
    for start in range(0, len(client_ids), 500):
        chunk = client_ids[start : start + 500]
        known.update(_known_ids(session, model, patient.id, chunk))

    stored = dict(known)  # stored before this batch, not repeats inside it
    fresh: list[tuple[int, dict[str, Any]]] = []
    replayed: list[int] = []
    for index, data in valid:
        if data["client_id"] in known:
            results[index].update(status="duplicate", id=known[data["client_id"]])
            if data["client_id"] in stored:
                replayed.append(index)
            continue
        data["id"] = new_id()
        known[data["client_id"]] = data["id"]  # a repeat inside the same batch is a duplicate
        results[index].update(status="created", id=data["id"])
        fresh.append((index, data))

    if fresh:
        rows = [d for _, d in fresh]
        ctx = IngestContext(session=session, patient=patient, principal=principal, now=now, settings=settings)
        for row in rows:
            moment = row[spec.time_field]
            row["utc_offset_minutes"] = int(moment.utcoffset().total_seconds() // 60)
        if spec.prepare is not None:
            rows = spec.prepare(ctx, rows)
        seq = patient.change_seq
        for row in rows:
            seq += 1
            row.update(patient_id=patient.id, seq=seq, created_at=now, created_by=principal.user_id)
        _advance_patient(session, patient, seq=seq, now=now)
        session.execute(insert(model.__table__), rows)
        if spec.after_insert is not None:
            extras = spec.after_insert(ctx, rows)
            for index, data in fresh:
                results[index].update(extras.get(data["id"], {}))
    if replayed and spec.after_duplicate is not None:
        ctx = IngestContext(session=session, patient=patient, principal=principal, now=now, settings=settings)
        ids = [results[index]["id"] for index in replayed]
        columns = model.__table__.columns
        earlier = [
            {c.key: getattr(row, c.key) for c in columns}
            for row in session.scalars(select(model).where(model.id.in_(ids)))
        ]
        extras = spec.after_duplicate(ctx, earlier)
        for index in replayed:
            results[index].update(extras.get(results[index]["id"], {}))
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "duplicate", "invalid")}
    record_audit(
        session,
        actor_id=principal.user_id,
        actor_role=principal.role,
        action=f"{spec.name}.create",
        patient_id=patient.id,
        resource_type=spec.name,
        outcome="success" if counts["invalid"] == 0 else "partial",
        detail=" ".join(f"{k}={v}" for k, v in counts.items()),
    )
    return results


def _advance_patient(session: Session, patient: Patient, *, seq: int, now: datetime) -> None:
    """Record the patient's new change sequence and data time: one UPDATE sent
    now, with the loaded row kept in step, instead of a unit-of-work flush (the
    patient is locked by this transaction, so nobody else changes these columns)."""
    session.execute(
        update(Patient)
        .where(Patient.id == patient.id)
        .values(change_seq=seq, data_changed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    for name, value in (("change_seq", seq), ("data_changed_at", now), ("updated_at", now)):
        set_committed_value(patient, name, value)


# ---------------------------------------------------------------- reads


def to_output(spec: StreamSpec, row: Any) -> dict[str, Any]:
    """A stored row as the API shows it: times back in the phone's offset."""
    tz = timezone(timedelta(minutes=row.utc_offset_minutes or 0))
    out: dict[str, Any] = {}
    for name in spec.out_schema._declared_fields:
        value = getattr(row, name, None)
        if name in spec.time_fields and value is not None:
            value = value.astimezone(tz)
        out[name] = value
    return out


def list_records(
    session: Session,
    *,
    spec: StreamSpec,
    patient: Patient,
    since: datetime | None,
    until: datetime | None,
    after: list[Any] | None,
    limit: int,
) -> tuple[list[Any], list[Any] | None]:
    """Live rows in time order, keyset-paged on (time, id)."""
    model = spec.model
    time_col = getattr(model, spec.time_field)
    stmt = select(model).where(model.patient_id == patient.id, model.deleted_at.is_(None))
    if since is not None:
        stmt = stmt.where(time_col >= since)
    if until is not None:
        stmt = stmt.where(time_col < until)
    if after is not None:
        try:
            after_time = cursor_time(after[0])
        except ValidationError as exc:
            raise Unprocessable("The cursor is not valid.", errors={"cursor": ["Not valid."]}) from exc
        stmt = stmt.where((time_col > after_time) | ((time_col == after_time) & (model.id > str(after[1]))))
    rows = list(session.scalars(stmt.order_by(time_col, model.id).limit(limit + 1)))
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        return rows, [getattr(last, spec.time_field).isoformat(), last.id]
    return rows, None


def tombstone(
    session: Session,
    *,
    spec: StreamSpec,
    patient: Patient,
    principal: Principal,
    record_id: str,
    now: datetime,
    settings: Settings,
) -> None:
    model = spec.model
    row = session.scalars(
        select(model).where(model.patient_id == patient.id, model.id == record_id)
    ).one_or_none()
    if row is None:
        record_denied(
            session, principal, action=f"{spec.name}.access", resource_type=spec.name, resource_id=record_id
        )
        raise NotFound("No such record.")
    if row.deleted_at is None:
        patient.change_seq += 1
        row.seq = patient.change_seq
        row.deleted_at = now
        row.deleted_by = principal.user_id
        patient.data_changed_at = now
        if spec.after_delete is not None:
            ctx = IngestContext(
                session=session, patient=patient, principal=principal, now=now, settings=settings
            )
            spec.after_delete(ctx, [{spec.time_field: getattr(row, spec.time_field)}])
    record_audit(
        session,
        actor_id=principal.user_id,
        actor_role=principal.role,
        action=f"{spec.name}.delete",
        patient_id=patient.id,
        resource_type=spec.name,
        resource_id=record_id,
    )


def changes_since(
    session: Session, *, specs: Sequence[StreamSpec], patient: Patient, after_seq: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Every change to the patient's data after `after_seq`, in order, tombstones
    included. Sequence numbers are allocated under the patient's row lock, so a
    reader never sees a later number commit before an earlier one."""
    merged: list[tuple[int, StreamSpec, Any]] = []
    for spec in specs:
        model = spec.model
        rows = session.scalars(
            select(model)
            .where(model.patient_id == patient.id, model.seq > after_seq)
            .order_by(model.seq)
            .limit(limit)
        )
        merged.extend((row.seq, spec, row) for row in rows)
    merged.sort(key=lambda t: t[0])
    merged = merged[:limit]
    items = []
    for seq, spec, row in merged:
        deleted = row.deleted_at is not None
        items.append(
            {
                "seq": seq,
                "stream": spec.name,
                "id": row.id,
                "client_id": row.client_id,
                "op": "delete" if deleted else "upsert",
                "data": None if deleted else to_output(spec, row),
            }
        )
    return items, (merged[-1][0] if merged else after_seq)
