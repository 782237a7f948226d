"""The floor for the ingest benchmarks: a bare Flask endpoint that stores the
posted spirometry sessions with one SQLAlchemy Core executemany, no auth, no
validation beyond parsing, no idempotency, no derived values, no audit.

Served by the same kind of server (gunicorn) against the same database as the
real API, so the ratio isolates what the product adds per row.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, jsonify, request
from sqlalchemy import insert

from backend.db import make_engine
from backend.streams.spirometry.models import SpirometrySession

app = Flask(__name__)
engine = make_engine(os.environ["DATABASE_URL"])
table = SpirometrySession.__table__
_seq = [0]


@app.get("/api/v1/healthz")
def healthz() -> Any:
    return {"status": "ok"}


@app.post("/floor/patients/<pid>/spirometry")
def store(pid: str) -> Any:
    items = request.get_json()["items"]
    now = datetime.now(UTC)
    rows = []
    for item in items:
        measured_at = datetime.fromisoformat(item["measured_at"])
        _seq[0] += 1
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "client_id": item["client_id"],
                "patient_id": pid,
                "seq": _seq[0],
                "created_at": now,
                "measured_at": measured_at,
                "utc_offset_minutes": int(measured_at.utcoffset().total_seconds() // 60),  # type: ignore[union-attr]
                "setting": item.get("setting", "home"),
                "fev1_l": item["fev1_l"],
                "fvc_l": item.get("fvc_l"),
                "pef_l_s": item.get("pef_l_s"),
                "device": item.get("device"),
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(table), rows)
    return jsonify({"stored": len(rows)})
