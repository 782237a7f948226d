"""A batch of 16 rows or more, stored around SQLAlchemy's statement execution
(COPY on PostgreSQL, the driver's executemany on SQLite), is stored exactly as
the same items sent one by one through SQLAlchemy, column by column, JSON nulls
and time zones included."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Text, cast, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from backend.bulk_insert import DIRECT_MIN_ROWS
from backend.streams.spirometry.models import SpirometrySession

BASE = "/api/v1/patients/me/spirometry"
IGNORED = {"id", "client_id", "patient_id", "seq", "created_at", "created_by"}


def _items(n: int) -> list[dict[str, Any]]:
    items = []
    for i in range(n):
        fev1 = 1.5 + (i % 7) / 10
        item: dict[str, Any] = {
            "client_id": str(uuid.uuid4()),
            "measured_at": f"2025-0{1 + i % 9}-1{i % 10}T0{i % 10}:1{i % 6}:00"
            f"{['+01:00', 'Z', '-05:30'][i % 3]}",
            "fev1_l": round(fev1, 3),
        }
        if i % 2:
            item["fvc_l"] = round(fev1 / 0.7, 3)
            item["device"] = {"manufacturer": "Acme", "serial": f"SN-{i}", "model": "ü-2"}
        if i % 3 == 0:
            item["blows"] = [
                {
                    "fev1_l": fev1,
                    "fvc_l": fev1 / 0.7,
                    "fev1_acceptable": True,
                    "fvc_acceptable": True,
                    "flags": ["cough"] if i % 2 else [],
                }
            ] * 3
        if i % 5 == 0:
            item.update(setting="clinic", pef_l_s=None, fef2575_l_s=2.5, device=None)
        items.append(item)
    return items


def _stored(factory: sessionmaker[Session], patient_id: str) -> list[dict[str, Any]]:
    table = SpirometrySession.__table__
    cols = [c for c in table.columns if c.name not in IGNORED]
    raw_json = [
        cast(table.c.device, Text).label("device_text"),
        cast(table.c.blows, Text).label("blows_text"),
    ]
    with factory() as session:
        rows = (
            session.execute(
                select(*cols, *raw_json).where(table.c.patient_id == patient_id).order_by(table.c.measured_at)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def test_direct_batch_stores_what_single_inserts_store(
    make_patient: Any, clinician: Any, db_sessionmaker: sessionmaker[Session]
) -> None:
    batch_patient = make_patient(clinician)
    single_patient = make_patient(clinician)
    items = _items(3 * DIRECT_MIN_ROWS)
    inserts: list[int] = []

    def count_inserts(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO spirometry_sessions"):
            inserts.append(1)

    event.listen(Engine, "before_cursor_execute", count_inserts)  # the app's engine too
    try:
        resp = batch_patient.post(BASE, json={"items": items})
        batch_inserts = len(inserts)
        for item in items:
            single = single_patient.post(BASE, json={"items": [item]})
            assert single.get_json()["results"][0]["status"] == "created"
    finally:
        event.remove(Engine, "before_cursor_execute", count_inserts)
    assert resp.status_code == 200
    assert all(r["status"] == "created" for r in resp.get_json()["results"])
    # the batch took the direct path (no INSERT through SQLAlchemy), the singles did not
    assert batch_inserts == 0
    assert len(inserts) == batch_inserts + len(items)

    copied = _stored(db_sessionmaker, batch_patient.patient_id)
    inserted = _stored(db_sessionmaker, single_patient.patient_id)
    assert len(copied) == len(inserted) == len(items)
    assert copied == inserted
    assert any(r["blows_text"] is not None for r in copied)
    assert any(r["fvc_pct_predicted"] is not None for r in copied)
