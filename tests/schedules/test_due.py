from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schedules.due import DueState, due_state, retry_delay
from schedules.slots import scan_slot
from schedules.timing import Cron, Every, jitter_for

T0 = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)  # Monday 09:00 Asia/Taipei
H = timedelta(hours=1)
D = timedelta(days=1)
WEEK = Every(7 * D)


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(0, timedelta(0)), (1, timedelta(minutes=1)), (2, timedelta(minutes=2)), (3, timedelta(minutes=4)),
     (9, timedelta(minutes=256)), (10, timedelta(hours=6)), (1000, timedelta(hours=6))],
)
def test_retry_backoff_doubles_up_to_six_hours(attempts: int, delay: timedelta) -> None:
    assert retry_delay(attempts) == delay


@pytest.mark.parametrize(
    ("last_complete", "last_attempt", "expected"),
    [
        (None, None, T0),  # never scanned: due at once
        (T0 - D, T0 - D, T0 + 6 * D),  # a week after the last complete scan
        (T0 - 8 * D, T0 - 8 * D, T0 - D),  # overdue: due (in the past)
        (T0 - 8 * D, T0 - H, T0 + 5 * H),  # the last attempt failed an hour ago: retry after 6 h (cap)
        (None, T0 - H, T0 + 5 * H),  # never completed, attempted an hour ago
        (T0 - D, T0 - 2 * D, T0 + 6 * D),  # an older failed attempt does not delay a completed schedule
    ],
)
def test_scan_slot_every(last_complete: datetime | None, last_attempt: datetime | None, expected: datetime) -> None:
    assert scan_slot(WEEK, "www", added=T0, last_complete=last_complete, last_attempt=last_attempt, now=T0) == expected


def test_short_periods_retry_within_a_quarter_period_and_jitter_is_stable() -> None:
    every = Every(timedelta(minutes=20))
    assert scan_slot(every, "a", added=T0, last_complete=None, last_attempt=T0, now=T0) == T0 + timedelta(minutes=5)
    jittered = scan_slot(WEEK, "www", added=T0, last_complete=T0, last_attempt=T0, now=T0, jitter=timedelta(minutes=10))
    assert jittered == T0 + 7 * D + jitter_for("www", timedelta(minutes=10))
    assert T0 + 7 * D <= jittered < T0 + 7 * D + timedelta(minutes=10)
    # Jitter never exceeds a quarter of the period.
    short = scan_slot(every, "www", added=T0, last_complete=T0, last_attempt=T0, now=T0, jitter=timedelta(hours=5))
    assert short - (T0 + timedelta(minutes=20)) < timedelta(minutes=5)


def test_scan_slot_cron() -> None:
    daily = Cron("0 2 * * *", "Asia/Taipei")  # 02:00 Taipei = 18:00 UTC
    assert scan_slot(daily, "x", added=T0, last_complete=None, last_attempt=None, now=T0) == datetime(
        2026, 11, 15, 18, 0, tzinfo=UTC)  # never run: the latest firing is due now
    assert scan_slot(daily, "x", added=T0, last_complete=T0, last_attempt=T0, now=T0) == datetime(
        2026, 11, 16, 18, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "state"),
    [(None, DueState.NONE), (T0 + 30 * D, DueState.OK), (T0 + 14 * D, DueState.SOON), (T0 + H, DueState.SOON),
     (T0, DueState.SOON), (T0 - timedelta(seconds=1), DueState.OVERDUE)],
)
def test_due_state(due: datetime | None, state: DueState) -> None:
    assert due_state(due, T0) is state
