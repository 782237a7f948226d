"""The six streams, in one list: routes, the sync feed and tests read it."""

from __future__ import annotations

from backend.events.services import SPEC as LAM_EVENTS
from backend.medication.services import DOSES, REGIMENS
from backend.side_effects.services import SPEC as SIDE_EFFECTS
from backend.spirometry.services import SPEC as SPIROMETRY
from backend.streams import StreamSpec
from backend.troughs.services import SPEC as TROUGHS

STREAMS: list[StreamSpec] = [SPIROMETRY, DOSES, REGIMENS, SIDE_EFFECTS, TROUGHS, LAM_EVENTS]
