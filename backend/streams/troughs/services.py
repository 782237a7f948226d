"""Troughs: derived at ingest are the hours since the last logged dose, the days
since the last regimen change, and the flags "not a true trough" (drawn outside
20-28 h after the dose), "before steady state" (< 7 days after a change) and
"last dose unknown" (no dose time sent or logged: whether it is a true trough is
not known), with the thresholds of the patient (clinical.troughs)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from backend.alerts.on_ingest import alert_on_insert
from backend.clinical import model as clinical
from backend.clinical.rules import interacting_drug_alert
from backend.clinical.troughs import trough_flags
from backend.patients.services import thresholds_for
from backend.streams.medication.models import RegimenEvent, SirolimusDose
from backend.streams.records import IngestContext, StreamSpec
from backend.streams.troughs.models import TroughResult
from backend.streams.troughs.schemas import TroughItemSchema, TroughOutSchema

DOSE_LOOKBACK = timedelta(days=8)


def derive_trough_flags(ctx: IngestContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    session, patient = ctx.session, ctx.patient
    first = min(r["drawn_at"] for r in rows)
    last = max(r["drawn_at"] for r in rows)
    doses = [
        clinical.DoseLog(id=d.id, taken_at=d.taken_at, status=d.status, dose_mg=d.dose_mg)
        for d in session.scalars(
            select(SirolimusDose).where(
                SirolimusDose.patient_id == patient.id,
                SirolimusDose.deleted_at.is_(None),
                SirolimusDose.taken_at >= first - DOSE_LOOKBACK,
                SirolimusDose.taken_at <= last,
            )
        )
    ]
    regimens = [
        clinical.RegimenEvent(
            id=r.id,
            effective_at=r.effective_at,
            kind=r.kind,
            daily_dose_mg=r.daily_dose_mg,
            drug_name=r.drug_name,
        )
        for r in session.scalars(
            select(RegimenEvent).where(
                RegimenEvent.patient_id == patient.id,
                RegimenEvent.deleted_at.is_(None),
                RegimenEvent.effective_at <= last,
            )
        )
    ]
    thresholds = thresholds_for(session, patient)
    for row in rows:
        flags = trough_flags(
            clinical.TroughResult(
                id=row["id"],
                drawn_at=row["drawn_at"],
                value_ng_ml=row["value_ng_ml"],
                last_dose_at=row["last_dose_at"],
            ),
            doses,
            regimens,
            thresholds,
        )
        row.update(
            hours_since_last_dose=flags.hours_since_last_dose,
            days_since_regimen_change=flags.days_since_regimen_change,
            not_true_trough=flags.not_true_trough,
            before_steady_state=flags.before_steady_state,
            last_dose_unknown=flags.last_dose_unknown,
        )
    return rows


FLAG_FIELDS = (
    "hours_since_last_dose",
    "days_since_regimen_change",
    "not_true_trough",
    "before_steady_state",
    "last_dose_unknown",
)


def refresh_trough_flags(
    ctx: IngestContext, *, drawn_from: datetime, drawn_until: datetime | None = None
) -> int:
    """Derive again the flags of stored troughs that a dose or regimen change,
    newly logged or deleted, can alter. Phones sync streams in any order, so a trough often
    arrives before the dose taken the evening before it. A trough whose flags
    change gets a new sequence number, so the app's /changes feed shows it."""
    stmt = select(TroughResult).where(
        TroughResult.patient_id == ctx.patient.id,
        TroughResult.deleted_at.is_(None),
        TroughResult.drawn_at >= drawn_from,
    )
    if drawn_until is not None:
        stmt = stmt.where(TroughResult.drawn_at <= drawn_until)
    troughs = list(ctx.session.scalars(stmt))
    if not troughs:
        return 0
    rows = derive_trough_flags(
        ctx,
        [
            {"id": t.id, "drawn_at": t.drawn_at, "value_ng_ml": t.value_ng_ml, "last_dose_at": t.last_dose_at}
            for t in troughs
        ],
    )
    changed = 0
    for trough, row in zip(troughs, rows, strict=True):
        if all(getattr(trough, f) == row[f] for f in FLAG_FIELDS):
            continue
        for f in FLAG_FIELDS:
            setattr(trough, f, row[f])
        ctx.patient.change_seq += 1
        trough.seq = ctx.patient.change_seq
        changed += 1
    return changed


def after_doses(ctx: IngestContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    taken = [r["taken_at"] for r in rows]
    refresh_trough_flags(ctx, drawn_from=min(taken), drawn_until=max(taken) + DOSE_LOOKBACK)
    return {}


def after_regimens(ctx: IngestContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    refresh_trough_flags(ctx, drawn_from=min(r["effective_at"] for r in rows))
    return {}


def _regimen_to_clinical(row: dict[str, Any]) -> clinical.RegimenEvent:
    return clinical.RegimenEvent(
        id=row["id"],
        effective_at=row["effective_at"],
        kind=row["kind"],
        daily_dose_mg=row.get("daily_dose_mg"),
        drug_name=row.get("drug_name"),
    )


_alert_interacting_drug = alert_on_insert(_regimen_to_clinical, interacting_drug_alert)


def after_regimens_inserted(ctx: IngestContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Flags of the troughs a change can alter; and a review alert for the care team
    when an interacting drug is started or stopped (Rapamune label 7.2)."""
    after_regimens(ctx, rows)
    return _alert_interacting_drug(ctx, rows)


SPEC = StreamSpec(
    name="troughs",
    model=TroughResult,
    item_schema=TroughItemSchema,
    out_schema=TroughOutSchema,
    time_field="drawn_at",
    time_fields=("drawn_at", "last_dose_at"),
    prepare=derive_trough_flags,
    description="Whole-blood sirolimus troughs. Log the dose before the draw (or send "
    "`last_dose_at`) so the result can be told apart as a true trough.",
)
