from __future__ import annotations

from typing import Any

from sqlalchemy import select

from backend.clinical.catalog import match_interacting_drug
from backend.streams.medication.models import RegimenEvent, SirolimusDose
from backend.streams.medication.schemas import (
    DoseItemSchema,
    DoseOutSchema,
    RegimenItemSchema,
    RegimenOutSchema,
)
from backend.streams.records import IngestContext, StreamSpec


def _regimen_provenance(ctx: IngestContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["recorded_by_role"] = ctx.principal.role
        match = match_interacting_drug(row.get("drug_name"))
        if match is not None:
            row["interaction"] = match[1]
        elif str(row.get("kind", "")).startswith("interacting_drug"):
            # Not in the catalog is not "no interaction": a clinician reviews it.
            row["interaction"] = "unknown"
        else:
            row["interaction"] = None
    return rows


# The regimen event that sets where a patient stands on sirolimus.
STATUS_OF_EVENT = {
    "start": "on_sirolimus",
    "resume": "on_sirolimus",
    "interruption": "interrupted",
    "stop": "stopped",
}


def sync_treatment_status(ctx: IngestContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The patient's treatment status follows her latest start, interruption, resume
    or stop in effect now (the rules read it: a patient who started sirolimus is no
    longer screened against the start criteria). Without such an event it is left
    as the profile says."""
    del rows
    latest = ctx.session.scalars(
        select(RegimenEvent.kind)
        .where(
            RegimenEvent.patient_id == ctx.patient.id,
            RegimenEvent.deleted_at.is_(None),
            RegimenEvent.kind.in_(list(STATUS_OF_EVENT)),
            RegimenEvent.effective_at <= ctx.now,
        )
        .order_by(RegimenEvent.effective_at.desc(), RegimenEvent.seq.desc())
        .limit(1)
    ).first()
    if latest is not None and ctx.patient.treatment_status != STATUS_OF_EVENT[latest]:
        ctx.patient.treatment_status = STATUS_OF_EVENT[latest]
    return {}


DOSES = StreamSpec(
    name="doses",
    model=SirolimusDose,
    item_schema=DoseItemSchema,
    out_schema=DoseOutSchema,
    time_field="taken_at",
    time_fields=("taken_at",),
    description="Doses logged as taken or missed (for a missed dose, `taken_at` is when it was due).",
)

REGIMENS = StreamSpec(
    name="regimens",
    model=RegimenEvent,
    item_schema=RegimenItemSchema,
    out_schema=RegimenOutSchema,
    time_field="effective_at",
    time_fields=("effective_at",),
    prepare=_regimen_provenance,
    description="Treatment changes; who recorded each (patient or clinician) is kept; the latest "
    "start, interruption, resume or stop sets the patient's `treatment_status`. Known "
    "CYP3A4/P-gp interacting drugs are classified (Rapamune label section 7.2; international "
    "and brand names are recognised); an interacting-drug event naming a drug not in the "
    "catalog gets `interaction: unknown`. Starting or stopping an interacting drug opens a "
    "review alert for the care team.",
)
