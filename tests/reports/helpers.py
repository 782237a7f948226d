"""A small treated cohort stored through the real ingest path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from backend.auth.principal import Principal
from backend.db import session_scope, utcnow
from tests.factories import add_patient, ingest


def seed_treated(
    db_sessionmaker: sessionmaker[Session], team_id: str, *, n: int, trough: float, clinician_id: str
) -> None:
    """`n` patients who started 2 mg/day a year ago, with a trough of `trough`,
    fortnightly FEV1 falling 100 mL/yr before and 20 mL/yr on treatment, and two
    graded side effects on treatment."""
    now = utcnow()
    start = now - timedelta(days=365)
    clinician = Principal(user_id=clinician_id, role="clinician")
    with session_scope(db_sessionmaker) as session:
        for k in range(n):
            patient = add_patient(session, team_id=team_id, external_ref=f"REF-{k}")
            spirometry: list[dict[str, Any]] = []
            for day in range(-364, 365, 14):
                years = day / 365.25
                ml = 2300 + 40 * k + (-100 * years if day < 0 else -20 * years) + (15 if day % 28 else -15)
                at = start + timedelta(days=day)
                spirometry.append(
                    {
                        "measured_at": at.isoformat(),
                        "fev1_l": round(ml / 1000, 3),
                        "fvc_l": round(ml / 720, 3),
                    }
                )
            ingest(session, patient=patient, stream="spirometry", items=spirometry, now=now)
            regimen = {"effective_at": start.isoformat(), "kind": "start", "daily_dose_mg": 2.0}
            ingest(session, patient=patient, stream="regimens", items=[regimen], now=now, principal=clinician)
            drawn = start + timedelta(days=14)
            ingest(
                session,
                patient=patient,
                stream="troughs",
                items=[{"drawn_at": drawn.isoformat(), "value_ng_ml": trough}],
                now=now,
                principal=clinician,
            )
            effects = [
                {
                    "onset_at": (start + timedelta(days=40 * (j + 1))).isoformat(),
                    "term": "mucositis_oral",
                    "severity": "moderate",
                    "ctcae_grade": 2,
                }
                for j in range(2)
            ]
            ingest(session, patient=patient, stream="side-effects", items=effects, now=now)
