from __future__ import annotations

from typing import Any

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
    description="Treatment changes; who recorded each (patient or clinician) is kept. Known "
    "CYP3A4/P-gp interacting drugs are classified (Rapamune label section 7.2; international "
    "and brand names are recognised); an interacting-drug event naming a drug not in the "
    "catalog gets `interaction: unknown`. Starting or stopping an interacting drug opens a "
    "review alert for the care team.",
)
