"""Scan slots: stable while nothing happens, one per missed stretch, after quiet windows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from schedules.quiet import parse_windows
from schedules.slots import JITTER, Start, grid_slot, plan_slot, room_before, scan_slot, start_time
from schedules.timing import jitter_for, parse_schedule

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Monday 08:00 Asia/Taipei
H = timedelta(hours=1)
DAY = timedelta(days=1)
EVERY_DAY = parse_schedule("1d")
NIGHTLY = parse_schedule("0 2 * * *")  # 02:00 Asia/Taipei = 18:00 UTC


@pytest.mark.parametrize(
    ("schedule", "complete", "attempt", "now", "expected"),
    [
        # never scanned: due when the asset was added (T0), whatever the clock says
        (EVERY_DAY, None, None, T0, T0),
        (EVERY_DAY, None, None, T0 + 30 * DAY, T0),
        # a complete scan restarts the period
        (EVERY_DAY, T0 + H, None, T0 + 2 * H, T0 + H + DAY),
        # overdue after downtime: still the one slot, not one per missed day
        (EVERY_DAY, T0 + H, None, T0 + 10 * DAY, T0 + H + DAY),
        # an attempt that did not complete waits a quarter period (never completed, too)
        (EVERY_DAY, T0 + H, T0 + DAY + 2 * H, T0 + DAY + 3 * H, T0 + DAY + 2 * H + DAY / 4),
        (EVERY_DAY, None, T0 + 2 * H, T0 + 3 * H, T0 + 2 * H + DAY / 4),
        # an attempt older than the last complete scan changes nothing
        (EVERY_DAY, T0 + 5 * H, T0 + H, T0 + 6 * H, T0 + 5 * H + DAY),
        # cron: the first firing after the last complete scan; never scanned: the latest firing
        (NIGHTLY, T0 + H, None, T0 + 2 * H, datetime(2026, 3, 2, 18, 0, tzinfo=UTC)),
        (NIGHTLY, T0 + H, None, T0 + 9 * DAY, datetime(2026, 3, 2, 18, 0, tzinfo=UTC)),
        (NIGHTLY, None, None, T0 + 2 * H, datetime(2026, 3, 1, 18, 0, tzinfo=UTC)),
        # the clock went back (stored times in its future): the schedule goes on from now, not
        # from a month ahead (no scan, silently, until the clock catches up)
        (EVERY_DAY, T0 + 30 * DAY, None, T0, T0 + DAY),
        (EVERY_DAY, T0 + 20 * DAY, T0 + 30 * DAY, T0, T0 + DAY),
        (EVERY_DAY, T0 + 2 * DAY, None, T0 + 2 * DAY - 4 * 60 * 1000 * timedelta(milliseconds=1),
         T0 + 3 * DAY),  # within the tolerance: as stored
    ],
)
def test_scan_slot(schedule: object, complete: datetime | None, attempt: datetime | None, now: datetime,
                   expected: datetime) -> None:
    assert scan_slot(schedule, "www", last_complete=complete, last_attempt=attempt, added=T0, now=now) == expected  # type: ignore[arg-type]


def test_slot_is_stable_until_a_scan_moves_it() -> None:
    slots = {scan_slot(EVERY_DAY, "www", last_complete=None, last_attempt=None, added=T0, now=T0 + i * H)
             for i in range(48)}
    assert slots == {T0}


def test_first_scan_is_never_jittered_later_ones_spread_within_a_quarter_period() -> None:
    jitter = timedelta(hours=12)
    names = ("a", "b", "c", "d", "e")
    firsts = {name: scan_slot(EVERY_DAY, name, last_complete=None, last_attempt=None, added=T0, now=T0,
                              jitter=jitter) for name in names}
    assert set(firsts.values()) == {T0}  # the first run scans every asset never scanned
    after = {name: scan_slot(EVERY_DAY, name, last_complete=T0, last_attempt=None, added=T0, now=T0, jitter=jitter)
             for name in names}
    assert len(set(after.values())) > 1
    assert all(T0 + DAY <= at < T0 + DAY + DAY / 4 for at in after.values())
    assert after["a"] == T0 + DAY + jitter_for("a", DAY / 4)
    slot = plan_slot(EVERY_DAY, "a", last_complete=T0, last_attempt=None, added=T0, now=T0, jitter=jitter)
    assert slot.nominal == T0 + DAY and slot.delay == JITTER


def test_room_before_a_deadline_outside_quiet_windows() -> None:
    always = parse_windows(["daily 00:00-24:00"])
    assert room_before(T0, T0 + 30 * DAY, always, "Asia/Taipei") is None
    office = parse_windows(["daily 08:00-18:00"])  # T0 is 08:00 Taipei: free again at 18:00
    assert room_before(T0, T0 + DAY, office, "Asia/Taipei") == T0 + 10 * H
    assert room_before(T0, T0 + 5 * H, office, "Asia/Taipei") is None


TWSE = parse_windows(["twse"])
TZ = "Asia/Taipei"


@pytest.mark.parametrize(
    ("due", "now", "windows", "holidays", "expected"),
    [
        # Monday 07:00 local, due now, no window yet
        (T0 - H, T0 - H, TWSE, frozenset(), Start(T0 - H)),
        # Monday 08:00 local, before the 08:30 window
        (T0, T0, TWSE, frozenset(), Start(T0)),
        # due 09:00 local, inside twse: waits for 14:00 local (06:00 UTC)
        (T0 + H, T0, TWSE, frozenset(), Start(datetime(2026, 3, 2, 6, 0, tzinfo=UTC), "mon-fri 08:30-14:00")),
        # overdue, seen at 10:00 local: also waits
        (T0 - DAY, T0 + 2 * H, TWSE, frozenset(), Start(datetime(2026, 3, 2, 6, 0, tzinfo=UTC), "mon-fri 08:30-14:00")),
        # a market holiday lifts the window
        (T0 + H, T0, TWSE, frozenset({date(2026, 3, 2)}), Start(T0 + H)),
        # Saturday: no window
        (T0 + 5 * DAY + H, T0, TWSE, frozenset(), Start(T0 + 5 * DAY + H)),
        # back-to-back windows: waits for the end of the last one
        (T0 + H, T0, parse_windows(["mon 08:00-10:00", "mon 10:00-11:00"]), frozenset(),
         Start(T0 + 3 * H, "mon 08:00-10:00")),
        # no windows at all
        (T0 + H, T0, (), frozenset(), Start(T0 + H)),
    ],
)
def test_start_time(due: datetime, now: datetime, windows: tuple[object, ...], holidays: frozenset[date],
                    expected: Start) -> None:
    assert start_time(due, now, windows, TZ, holidays) == expected  # type: ignore[arg-type]


def test_grid_slot() -> None:
    assert grid_slot(T0 + timedelta(minutes=7, seconds=3), timedelta(minutes=15)) == T0
    assert grid_slot(T0 + timedelta(minutes=15), timedelta(minutes=15)) == T0 + timedelta(minutes=15)
    assert grid_slot(T0 + timedelta(seconds=3.5), timedelta(seconds=2)) == T0 + timedelta(seconds=2)
    assert grid_slot(T0 + timedelta(milliseconds=10), timedelta(milliseconds=1)) == T0  # at least a second
