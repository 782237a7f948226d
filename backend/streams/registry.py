"""The six streams, in one list: routes, the sync feed and tests read it."""

from __future__ import annotations

from dataclasses import replace

from backend.streams.events.services import SPEC as LAM_EVENTS
from backend.streams.medication.services import DOSES, REGIMENS
from backend.streams.records import StreamSpec
from backend.streams.side_effects.services import SPEC as SIDE_EFFECTS
from backend.streams.spirometry.services import SPEC as SPIROMETRY
from backend.streams.troughs.services import SPEC as TROUGHS
from backend.streams.troughs.services import after_doses, after_regimens, after_regimens_inserted

# A logged dose or a regimen change alters what a stored trough means (true
# trough, pre-steady-state): the trough stream re-flags what they touch. Troughs
# read medication, never the other way, so the hooks are attached here.
STREAMS: list[StreamSpec] = [
    SPIROMETRY,
    replace(DOSES, after_insert=after_doses, after_delete=after_doses),
    replace(REGIMENS, after_insert=after_regimens_inserted, after_delete=after_regimens),
    SIDE_EFFECTS,
    TROUGHS,
    LAM_EVENTS,
]
