"""Trough schedule day by day, across time zones and daylight-saving changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from backend.clinical.model import DoseLog, RegimenEvent, TroughResult
from backend.clinical.thresholds import DEFAULT_THRESHOLDS
from backend.clinical.troughs import current_item, trough_flags, trough_schedule

from .helpers import local

T = DEFAULT_THRESHOLDS


def ev(kind: str, at: datetime, dose: float | None = 2.0, i: str = "e") -> RegimenEvent:
    return RegimenEvent(f"{i}-{kind}-{at.isoformat()}", at, kind, dose, None)


def draw(at: datetime, value: float = 8.0, i: str = "t") -> TroughResult:
    return TroughResult(f"{i}-{at.isoformat()}", at, value, at - timedelta(hours=24))


def expected_status(today: date, ws: date, we: date, missed_after: date) -> str:
    if today < ws:
        return "upcoming"
    if today <= we:
        return "due"
    if today <= missed_after:
        return "overdue"
    return "missed"


def test_start_schedule_day_by_day() -> None:
    tz = "Europe/London"
    start = ev("start", local(2025, 3, 1, 8))
    seen = []
    for k in range(0, 40):
        today = date(2025, 3, 1) + timedelta(days=k)
        as_of = datetime.combine(today, datetime.min.time(), tzinfo=ZoneInfo(tz)) + timedelta(hours=12)
        items = trough_schedule([start], [], tz, as_of, T)
        assert len(items) == 1
        it = items[0]
        assert it.reason == "start"
        assert it.anchor_date == date(2025, 3, 1)
        assert it.due_date == date(2025, 3, 15)
        assert (it.window_start, it.window_end) == (date(2025, 3, 11), date(2025, 3, 21))
        assert it.missed_after == date(2025, 3, 28)
        seen.append(it.status)
    assert seen[:10] == ["upcoming"] * 10  # days 0-9
    assert seen[10:21] == ["due"] * 11  # days 10-20
    assert seen[21:28] == ["overdue"] * 7  # grace: 7 days after the window closes
    assert seen[28:] == ["missed"] * 12


@pytest.mark.parametrize(
    ("tz", "event_local", "anchor"),
    [
        # Europe/London: clocks go forward 30 March 2025 01:00 UTC
        ("Europe/London", (2025, 3, 30, 0, 30), date(2025, 3, 30)),
        ("Europe/London", (2025, 3, 30, 23, 30), date(2025, 3, 30)),
        # America/New_York: forward 9 March 2025, back 2 November 2025
        ("America/New_York", (2025, 3, 9, 1, 30), date(2025, 3, 9)),
        ("America/New_York", (2025, 11, 2, 23, 45), date(2025, 11, 2)),
        # Australia/Sydney: back 6 April 2025 03:00 -> 02:00
        ("Australia/Sydney", (2025, 4, 6, 2, 30), date(2025, 4, 6)),
        # Pacific/Auckland: forward 28 September 2025 02:00 -> 03:00
        ("Pacific/Auckland", (2025, 9, 28, 3, 30), date(2025, 9, 28)),
        ("Pacific/Auckland", (2025, 9, 27, 23, 59), date(2025, 9, 27)),
    ],
)
def test_dose_change_schedule_across_dst_day_by_day(
    tz: str, event_local: tuple[int, int, int, int, int], anchor: date
) -> None:
    zone = ZoneInfo(tz)
    y, m, d, hh, mm = event_local
    at = datetime(y, m, d, hh, mm, tzinfo=zone)
    # given to the engine in UTC, as the database stores it
    events = [ev("start", at - timedelta(days=200)), ev("dose_change", at.astimezone(ZoneInfo("UTC")))]
    ws, we = anchor + timedelta(days=7), anchor + timedelta(days=21)
    missed_after = we + timedelta(days=7)
    for k in range(0, 35):
        today = anchor + timedelta(days=k)
        for hour in (0, 23):  # both ends of the local day
            as_of = datetime(today.year, today.month, today.day, hour, 30, tzinfo=zone)
            if as_of < at:
                continue
            item = current_item(trough_schedule(events, [], tz, as_of, T))
            assert item is not None
            assert item.reason == "dose_change"
            assert item.anchor_date == anchor
            assert item.due_date == anchor + timedelta(days=14)
            assert item.status == expected_status(today, ws, we, missed_after), (today, hour)


def test_draw_counts_on_the_local_day_of_the_patient() -> None:
    tz = "America/New_York"
    start = ev("start", datetime(2025, 3, 8, 9, 0, tzinfo=ZoneInfo(tz)))  # window 18-28 March
    # 23:30 EDT on 17 March is 03:30 UTC on 18 March: still day 9 locally, too early
    early = draw(datetime(2025, 3, 17, 23, 30, tzinfo=ZoneInfo(tz)))
    as_of = datetime(2025, 3, 20, 12, tzinfo=ZoneInfo(tz))
    item = current_item(trough_schedule([start], [early], tz, as_of, T))
    assert item is not None and item.status == "due"
    on_time = draw(datetime(2025, 3, 18, 0, 30, tzinfo=ZoneInfo(tz)))
    items = trough_schedule([start], [early, on_time], tz, as_of, T)
    assert items[0].status == "done" and items[0].done_by == on_time.id


def test_maintenance_after_a_done_draw() -> None:
    tz = "Europe/London"
    start = ev("start", local(2025, 1, 1))
    first = draw(local(2025, 1, 15))
    items = trough_schedule([start], [first], tz, local(2025, 2, 1), T)
    assert [i.status for i in items] == ["done", "upcoming"]
    m = items[-1]
    assert m.reason == "maintenance"
    assert m.due_date == date(2025, 4, 15)  # 90 days after the result
    assert m.window_start == date(2025, 4, 1)
    assert m.missed_after == date(2025, 4, 29)  # 14 days grace for maintenance
    assert current_item(trough_schedule([start], [first], tz, local(2025, 4, 29), T)).status == "overdue"  # type: ignore[union-attr]
    assert current_item(trough_schedule([start], [first], tz, local(2025, 4, 30), T)).status == "missed"  # type: ignore[union-attr]
    later = draw(local(2025, 4, 10))
    items = trough_schedule([start], [first, later], tz, local(2025, 4, 30), T)
    assert items[-1].reason == "maintenance" and items[-1].due_date == date(2025, 7, 9)
    assert items[-1].status == "upcoming"


def test_change_before_the_draw_supersedes_and_missed_items_stay_missed() -> None:
    tz = "Europe/London"
    start = ev("start", local(2025, 1, 1))
    change = ev("dose_change", local(2025, 1, 6))
    items = trough_schedule([start, change], [], tz, local(2025, 1, 10), T)
    assert [i.reason for i in items] == ["dose_change"]
    late_change = ev("dose_change", local(2025, 2, 20))  # start draw missed after 28 Jan
    items = trough_schedule([start, late_change], [], tz, local(2025, 2, 21), T)
    assert [(i.reason, i.status) for i in items] == [("start", "missed"), ("dose_change", "upcoming")]


def test_interacting_drug_and_stop() -> None:
    tz = "Europe/London"
    start = ev("start", local(2025, 1, 1))
    first = draw(local(2025, 1, 14))
    inter = RegimenEvent("i", local(2025, 3, 1), "interacting_drug_start", None, "clarithromycin")
    item = current_item(trough_schedule([start, inter], [first], tz, local(2025, 3, 9), T))
    assert item is not None
    assert (item.reason, item.due_date, item.status) == ("interacting_drug", date(2025, 3, 15), "due")
    stop = ev("stop", local(2025, 3, 3), None)
    assert current_item(trough_schedule([start, inter, stop], [first], tz, local(2025, 5, 1), T)) is None
    # untreated: nothing is scheduled
    assert trough_schedule([], [], tz, local(2025, 5, 1), T) == ()


def test_future_events_are_ignored() -> None:
    tz = "Europe/London"
    start = ev("start", local(2025, 6, 1))
    assert trough_schedule([start], [], tz, local(2025, 5, 1), T) == ()


def test_flags_true_trough_and_steady_state() -> None:
    drawn = local(2025, 5, 10, 8)
    change = ev("dose_change", drawn - timedelta(days=5))
    tr = TroughResult("t", drawn, 4.0, drawn - timedelta(hours=24))
    f = trough_flags(tr, [], [change], T)
    assert f.hours_since_last_dose == 24.0
    assert not f.not_true_trough
    assert f.before_steady_state and f.days_since_regimen_change == 5.0
    f2 = trough_flags(
        TroughResult("t", drawn, 4.0, drawn - timedelta(hours=12)),
        [],
        [ev("dose_change", drawn - timedelta(days=8))],
        T,
    )
    assert f2.not_true_trough and not f2.before_steady_state
    # last dose from the dose log: the last *taken* dose before the draw
    doses = [
        DoseLog("a", drawn - timedelta(hours=48), "taken", 2.0),
        DoseLog("b", drawn - timedelta(hours=22), "taken", 2.0),
        DoseLog("c", drawn - timedelta(hours=2), "missed", None),
        DoseLog("d", drawn + timedelta(hours=1), "taken", 2.0),
    ]
    f3 = trough_flags(TroughResult("t", drawn, 4.0, None), doses, [], T)
    assert f3.hours_since_last_dose == 22.0 and not f3.not_true_trough
    assert f3.days_since_regimen_change is None and not f3.before_steady_state
    f4 = trough_flags(TroughResult("t", drawn, 4.0, None), [], [], T)
    assert f4.hours_since_last_dose is None and not f4.not_true_trough
    assert f4.last_dose_unknown
    assert not f3.last_dose_unknown and not f.last_dose_unknown


def test_late_draw_satisfies_the_item_and_maintenance_follows_it() -> None:
    tz = "Europe/London"
    start = ev("start", local(2025, 1, 1))  # window 11-21 Jan, missed after 28 Jan
    assert current_item(trough_schedule([start], [], tz, local(2025, 2, 3), T)).status == "missed"  # type: ignore[union-attr]
    late = draw(local(2025, 2, 3, 8))
    items = trough_schedule([start], [late], tz, local(2025, 2, 4), T)
    assert [(i.reason, i.status) for i in items] == [("start", "done"), ("maintenance", "upcoming")]
    assert items[0].done_by == late.id and items[0].late
    assert items[-1].anchor_date == date(2025, 2, 3)
    assert items[-1].due_date == date(2025, 5, 4)  # 90 days after the late draw
    # a draw in the grace period after the window is late too; one in the window is not
    grace = draw(local(2025, 1, 25))
    assert trough_schedule([start], [grace], tz, local(2025, 2, 4), T)[0].late
    on_time = draw(local(2025, 1, 15))
    assert not trough_schedule([start], [on_time], tz, local(2025, 2, 4), T)[0].late


def test_interacting_drug_start_then_stop_keeps_the_on_drug_draw() -> None:
    tz = "Europe/London"
    start = ev("start", local(2025, 1, 1))
    first = draw(local(2025, 1, 14))
    on = RegimenEvent("i1", local(2025, 3, 1), "interacting_drug_start", None, "Clarithromycin")
    off = RegimenEvent("i2", local(2025, 3, 6), "interacting_drug_stop", None, "Biaxin")  # same drug
    # stopped on day 5, no draw while on it: the on-drug item stays, 'missed'
    items = trough_schedule([start, on, off], [first], tz, local(2025, 3, 8), T)
    assert [(i.reason, i.anchor_date, i.status) for i in items] == [
        ("start", date(2025, 1, 1), "done"),
        ("interacting_drug", date(2025, 3, 1), "missed"),
        ("interacting_drug", date(2025, 3, 6), "upcoming"),
    ]
    # a level drawn on day 4 while on the drug does it (before the window)
    on_drug = draw(local(2025, 3, 5, 8), 19.0)
    items = trough_schedule([start, on, off], [first, on_drug], tz, local(2025, 3, 8), T)
    assert (items[1].status, items[1].done_by) == ("done", on_drug.id)
    assert items[-1].status == "upcoming"  # the stop still needs its own draw


def test_profile_on_sirolimus_without_logged_start_gets_a_first_draw() -> None:
    tz = "Europe/London"
    since = date(2025, 4, 1)
    items = trough_schedule(
        [], [], tz, local(2025, 4, 2), T, assume_on_treatment=True, monitoring_since=since
    )
    assert len(items) == 1
    m = items[0]
    assert (m.reason, m.anchor_date, m.window_start, m.due_date) == (
        "maintenance",
        since,
        since,
        date(2025, 4, 15),
    )
    assert m.status == "due" and m.missed_after == date(2025, 4, 29)
    # not on sirolimus by profile: nothing
    assert trough_schedule([], [], tz, local(2025, 4, 2), T, monitoring_since=since) == ()
    # an interacting drug logged without a start still anchors a draw for her
    inter = RegimenEvent("i", local(2025, 4, 3), "interacting_drug_start", None, "fluconazole")
    items = trough_schedule(
        [inter], [], tz, local(2025, 4, 12), T, assume_on_treatment=True, monitoring_since=since
    )
    assert [(i.reason, i.status) for i in items] == [("interacting_drug", "due")]
    # once a trough arrives, maintenance runs from it
    got = draw(local(2025, 4, 10))
    items = trough_schedule(
        [], [got], tz, local(2025, 4, 12), T, assume_on_treatment=True, monitoring_since=since
    )
    assert [(i.reason, i.due_date) for i in items] == [("maintenance", date(2025, 7, 9))]
