"""The six streams, in one list: routes, the sync feed and tests read it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from backend.streams.events.services import SPEC as LAM_EVENTS
from backend.streams.medication.services import DOSES, REGIMENS, sync_treatment_status
from backend.streams.records import AfterHook, IngestContext, StreamSpec
from backend.streams.side_effects.services import SPEC as SIDE_EFFECTS
from backend.streams.spirometry.services import SPEC as SPIROMETRY
from backend.streams.troughs.services import SPEC as TROUGHS
from backend.streams.troughs.services import after_doses, after_regimens, after_regimens_inserted


def _chain(*hooks: AfterHook) -> AfterHook:
    """Run several hooks in order; their extra result fields are merged."""

    def run(ctx: IngestContext, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        extras: dict[str, dict[str, Any]] = {}
        for hook in hooks:
            for key, value in (hook(ctx, rows) or {}).items():
                extras.setdefault(key, {}).update(value)
        return extras

    return run


# A regimen start, interruption, resume or stop sets the patient's treatment status.
# A logged dose or a regimen change alters what a stored trough means (true
# trough, pre-steady-state): the trough stream re-flags what they touch. Troughs
# read medication, never the other way, so the hooks are attached here.
STREAMS: list[StreamSpec] = [
    SPIROMETRY,
    replace(DOSES, after_insert=after_doses, after_delete=after_doses),
    replace(
        REGIMENS,
        after_insert=_chain(sync_treatment_status, after_regimens_inserted),
        after_delete=_chain(sync_treatment_status, after_regimens),
    ),
    SIDE_EFFECTS,
    TROUGHS,
    LAM_EVENTS,
]
