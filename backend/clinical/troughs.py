"""Sirolimus trough levels: ingest flags and the draw schedule.

Schedule (Rapamune label section 2; domain.md §2; every number in `Thresholds`):
- start (or resume) -> due day 14, window days 10-20;
- dose change -> due day 14, window days 7-21;
- start or stop of an interacting drug (CYP3A4 / P-gp, label section 7) -> due
  day 14, window days 7-21 (window unconfirmed: as for a dose change);
- maintenance -> due 90 days after the last result, window opens 14 days early;
- a patient on sirolimus by her profile with no logged start and no trough ->
  a first (maintenance) draw from the day monitoring began, window 14 days;
- 'missed' after a grace period: 7 days after the window closes, 14 days after a
  maintenance due date. A draw after the window still satisfies the item (marked
  late) and the next maintenance draw is counted from it.
- a draw while on an interacting drug is kept when the drug is stopped before it:
  the on-drug item stays in the list, done by any draw while on the drug, else
  'missed'; the stop opens its own item.

Days are calendar days in the patient's IANA time zone (zoneinfo): the anchor is
the local date of the regimen event, so a daylight-saving change never moves a
due date and a draw at 23:30 local time counts on that local day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from backend.clinical.catalog import match_interacting_drug, normalise_drug_name
from backend.clinical.model import (
    DoseLog,
    RegimenEvent,
    TroughFlags,
    TroughResult,
    TroughScheduleItem,
)
from backend.clinical.thresholds import Thresholds

# Regimen events after which a new trough is needed, and the schedule they use.
ANCHOR_REASONS: dict[str, str] = {
    "start": "start",
    "resume": "resume",
    "dose_change": "dose_change",
    "interacting_drug_start": "interacting_drug",
    "interacting_drug_stop": "interacting_drug",
}
ON_KINDS = frozenset({"start", "resume"})
OFF_KINDS = frozenset({"stop", "interruption"})


def last_taken_dose(doses: Iterable[DoseLog], before: datetime) -> datetime | None:
    last: datetime | None = None
    for d in doses:
        if d.status == "taken" and d.taken_at <= before and (last is None or d.taken_at > last):
            last = d.taken_at
    return last


def last_regimen_change(regimens: Iterable[RegimenEvent], before: datetime) -> RegimenEvent | None:
    """Latest event that changes exposure (start, resume, dose or interacting drug)."""
    last: RegimenEvent | None = None
    for r in regimens:
        if (
            r.kind in ANCHOR_REASONS
            and r.effective_at <= before
            and (last is None or r.effective_at > last.effective_at)
        ):
            last = r
    return last


def trough_flags(
    trough: TroughResult,
    doses: Iterable[DoseLog],
    regimens: Iterable[RegimenEvent],
    thresholds: Thresholds,
) -> TroughFlags:
    """Flags stored with a trough result at ingest.

    - not a true trough: hours since the last dose outside 20-28 h (label: drawn
      just before the next once-daily dose). The last dose is `last_dose_at` when
      recorded, else the last 'taken' dose log before the draw.
    - last dose unknown: neither is there, so whether it is a true trough is not
      known (`not_true_trough` stays False: nothing shows it is not one).
    - before steady state: drawn < `steady_state_days` (7) days after the last
      start, resume, dose change or interacting-drug change.
    """
    last_dose = trough.last_dose_at or last_taken_dose(doses, trough.drawn_at)
    hours = None
    if last_dose is not None and last_dose <= trough.drawn_at:
        hours = (trough.drawn_at - last_dose).total_seconds() / 3600.0
    change = last_regimen_change(regimens, trough.drawn_at)
    days = None
    if change is not None:
        days = (trough.drawn_at - change.effective_at).total_seconds() / 86400.0
    not_true = hours is not None and not (
        thresholds.true_trough_min_hours <= hours <= thresholds.true_trough_max_hours
    )
    before_ss = days is not None and days < thresholds.steady_state_days
    return TroughFlags(
        hours_since_last_dose=None if hours is None else round(hours, 2),
        days_since_regimen_change=None if days is None else round(days, 2),
        not_true_trough=not_true,
        before_steady_state=before_ss,
        last_dose_unknown=hours is None,
    )


@dataclass(frozen=True, slots=True)
class _Window:
    due: int
    start: int
    end: int
    grace: int


def _window(reason: str, t: Thresholds) -> _Window:
    if reason in ("start", "resume"):
        return _Window(t.start_due_day, t.start_window_start_day, t.start_window_end_day, t.draw_grace_days)
    if reason == "dose_change":
        return _Window(
            t.dose_change_due_day,
            t.dose_change_window_start_day,
            t.dose_change_window_end_day,
            t.draw_grace_days,
        )
    return _Window(
        t.interacting_drug_due_day,
        t.interacting_drug_window_start_day,
        t.interacting_drug_window_end_day,
        t.draw_grace_days,
    )


def status_on(today: date, window_start: date, window_end: date, missed_after: date) -> str:
    if today < window_start:
        return "upcoming"
    if today <= window_end:
        return "due"
    if today <= missed_after:
        return "overdue"
    return "missed"


def on_treatment(regimens: Sequence[RegimenEvent], as_of: datetime) -> bool:
    state = False
    for r in sorted(regimens, key=lambda e: e.effective_at):
        if r.effective_at > as_of:
            break
        if r.kind in ON_KINDS:
            state = True
        elif r.kind in OFF_KINDS:
            state = False
    return state


def trough_schedule(
    regimens: Sequence[RegimenEvent],
    troughs: Sequence[TroughResult],
    timezone: str,
    as_of: datetime,
    thresholds: Thresholds,
    *,
    assume_on_treatment: bool = False,
    monitoring_since: date | None = None,
) -> tuple[TroughScheduleItem, ...]:
    """Draws needed after each regimen change, then the current maintenance draw.

    An item is 'done' by the first trough drawn (local date) on or after its
    window start, after the event and before the next one; a draw after the
    window closed still does it, marked `late`. An item replaced by a later
    change before it was done is dropped (superseded); one already missed before
    the change stays in the list as 'missed', and so does an interacting-drug
    item whose drug was stopped before any draw (done by any draw while on the
    drug). Only the last item of the list is current. Data after `as_of` are
    ignored.

    `assume_on_treatment` (the profile says on sirolimus) counts her as treated
    until a logged start, resume, stop or interruption says otherwise; with no
    start logged and no trough, a first draw is due from `monitoring_since`.
    """
    zone = ZoneInfo(timezone)
    today = as_of.astimezone(zone).date()
    events = sorted((r for r in regimens if r.effective_at <= as_of), key=lambda e: e.effective_at)
    draws = sorted((x for x in troughs if x.drawn_at <= as_of), key=lambda x: x.drawn_at)
    draw_days = [(x.drawn_at, x.drawn_at.astimezone(zone).date(), x) for x in draws]

    items: list[TroughScheduleItem] = []
    state = assume_on_treatment and not any(ev.kind in ON_KINDS for ev in events)
    anchors: list[tuple[RegimenEvent, str]] = []
    boundaries: list[datetime] = []  # any event that ends the previous item
    for ev in events:
        if ev.kind in ON_KINDS:
            state = True
        elif ev.kind in OFF_KINDS:
            state = False
            boundaries.append(ev.effective_at)
            continue
        if ev.kind in ANCHOR_REASONS and state:
            anchors.append((ev, ANCHOR_REASONS[ev.kind]))
            boundaries.append(ev.effective_at)
    treated_now = state

    last_item_done_at: datetime | None = None
    pending = False
    for ev, reason in anchors:
        w = _window(reason, thresholds)
        anchor = ev.effective_at.astimezone(zone).date()
        ws = anchor + timedelta(days=w.start)
        we = anchor + timedelta(days=w.end)
        due = anchor + timedelta(days=w.due)
        missed_after = we + timedelta(days=w.grace)
        nxt = next((b for b in boundaries if b > ev.effective_at), None)
        stopped_drug = ev.kind == "interacting_drug_start" and _stops_drug(events, ev, nxt)
        done = next(
            (
                (x, d)
                for at, d, x in draw_days
                if at > ev.effective_at and (nxt is None or at < nxt) and (ws <= d or stopped_drug)
            ),
            None,
        )
        if done is not None:
            x, d = done
            items.append(
                TroughScheduleItem(reason, anchor, due, ws, we, missed_after, "done", x.id, late=d > we)
            )
            last_item_done_at = x.drawn_at
            pending = False
            continue
        if nxt is not None:
            if stopped_drug or nxt.astimezone(zone).date() > missed_after:
                items.append(TroughScheduleItem(reason, anchor, due, ws, we, missed_after, "missed"))
            pending = False
            continue
        items.append(
            TroughScheduleItem(
                reason, anchor, due, ws, we, missed_after, status_on(today, ws, we, missed_after)
            )
        )
        pending = True

    if treated_now and not pending:
        later = [x for at, _, x in draw_days if last_item_done_at is None or at >= last_item_done_at]
        if (not anchors or last_item_done_at is not None) and later:
            base = later[-1].drawn_at.astimezone(zone).date()
            due = base + timedelta(days=thresholds.maintenance_interval_days)
            ws = due - timedelta(days=thresholds.maintenance_window_before_days)
            missed_after = due + timedelta(days=thresholds.maintenance_grace_days)
            items.append(
                TroughScheduleItem(
                    "maintenance",
                    base,
                    due,
                    ws,
                    due,
                    missed_after,
                    status_on(today, ws, due, missed_after),
                )
            )
        elif not anchors and not later and monitoring_since is not None:
            # On sirolimus by profile, nothing logged: no level is known yet.
            base = monitoring_since
            due = base + timedelta(days=thresholds.maintenance_window_before_days)
            missed_after = due + timedelta(days=thresholds.maintenance_grace_days)
            items.append(
                TroughScheduleItem(
                    "maintenance",
                    base,
                    due,
                    base,
                    due,
                    missed_after,
                    status_on(today, base, due, missed_after),
                )
            )
    return tuple(items)


def _stops_drug(events: Sequence[RegimenEvent], start: RegimenEvent, nxt: datetime | None) -> bool:
    """Whether the event ending `start`'s item is the stop of the same drug (by
    catalog name when known: 'Biaxin' and 'clarithromycin' are one drug)."""
    if nxt is None:
        return False
    name = _drug_key(start.drug_name)
    return any(
        e.effective_at == nxt and e.kind == "interacting_drug_stop" and _drug_key(e.drug_name) == name
        for e in events
    )


def _drug_key(name: str | None) -> str:
    match = match_interacting_drug(name)
    return match[0] if match else normalise_drug_name(name or "")


def current_item(schedule: Sequence[TroughScheduleItem]) -> TroughScheduleItem | None:
    """The item the care team should act on now (the last one, unless done)."""
    if not schedule:
        return None
    last = schedule[-1]
    return None if last.status == "done" else last
