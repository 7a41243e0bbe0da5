from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schedules.timing import (
    Cron,
    Every,
    ScheduleError,
    due_firing,
    jitter_for,
    parse_digest,
    parse_duration,
    parse_schedule,
)

T0 = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)  # Monday 09:00 Asia/Taipei


@pytest.mark.parametrize(
    ("text", "seconds"), [("20s", 20), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_schedule(text) == Every(timedelta(seconds=seconds))


@pytest.mark.parametrize("text", ["7", "0d", "7 days", "1y", "-1d", "* * *", "61 * * * *", ""])
def test_bad_schedules(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(text)


def test_every_is_due_a_period_after_the_last_run() -> None:
    every = Every(timedelta(days=7))
    assert every.next_after(None, T0) == T0
    assert every.next_after(T0, T0) == T0 + timedelta(days=7)


def test_cron_in_taipei() -> None:
    cron = parse_schedule("0 9 * * 1")
    assert isinstance(cron, Cron)
    assert cron.next_after(T0, T0) == T0 + timedelta(days=7)
    assert cron.previous(T0 + timedelta(hours=1)) == T0
    assert cron.nominal == timedelta(days=7)


def test_digest_forms() -> None:
    assert parse_digest("off") is None
    weekly = parse_digest("weekly")
    assert weekly == Cron("0 9 * * 1", "Asia/Taipei")
    assert parse_digest("0 8 * * 5") == Cron("0 8 * * 5", "Asia/Taipei")
    with pytest.raises(ScheduleError):
        parse_digest("7d")


def test_due_firing_runs_once_after_downtime() -> None:
    weekly = Cron("0 9 * * 1")
    # Down for three weeks: only the latest missed Monday is due, once.
    now = T0 + timedelta(days=21, hours=3)
    due = due_firing(weekly, T0 - timedelta(days=7), now)
    assert due == T0 + timedelta(days=21)
    assert due_firing(weekly, due, now) is None
    # Before Monday 09:00 the previous week's digest is not due again.
    assert due_firing(weekly, T0, T0 + timedelta(days=6)) is None


def test_jitter_is_stable_and_bounded() -> None:
    span = timedelta(minutes=10)
    a = jitter_for("www", span)
    assert a == jitter_for("www", span)
    assert timedelta(0) <= a < span
    assert jitter_for("www", timedelta(0)) == timedelta(0)
