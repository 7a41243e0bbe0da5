"""Scheduled scans as slots: a due moment that names the job, and when it may start.

Pure: stored times and the clock are arguments. When a scan is due follows
:func:`schedules.due.next_scan` (the rule ``run --once`` uses: a complete scan,
manual or scheduled, restarts the period plus a stable per-asset jitter; an attempt
that did not complete waits a quarter period). The daemon's job key is the due
moment, so it must not move while nothing happens: where that rule would answer
"now" (an asset never completed under a duration schedule) the slot is anchored
on stored times instead, the moment the asset was added (plus its jitter, so a
fresh install does not start every asset at once) or the last attempt's retry time.

A missed slot stays the same slot however long the agent was down, so after
downtime it runs once, not once per missed period; it moves on only when a scan
has completed or been attempted after it. A slot inside a quiet window starts
when the window (and any window straight after it) ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from schedules.due import SCAN_RETRY_CAP, next_scan
from schedules.quiet import Window, active_window, quiet_until
from schedules.timing import Every, Schedule, jitter_for

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def scan_slot(schedule: Schedule, name: str, *, last_complete: datetime | None, last_attempt: datetime | None,
              added: datetime, now: datetime, jitter: timedelta = timedelta(0)) -> datetime:
    """The due moment of the asset's next scheduled scan (in the past when overdue)."""
    if last_complete is None and isinstance(schedule, Every):
        first = added + jitter_for(name, min(jitter, schedule.period / 4))
        if last_attempt is None:
            return first
        return max(first, last_attempt + min(schedule.period / 4, SCAN_RETRY_CAP))
    return next_scan(schedule, name, last_complete=last_complete, last_attempt=last_attempt, now=now,
                     jitter=jitter)


@dataclass(frozen=True)
class Start:
    at: datetime  # when the scan may start
    quiet: str | None = None  # the window it waits for, if any


def start_time(due: datetime, now: datetime, windows: Sequence[Window], tz: str,
               holidays: frozenset[date] = frozenset()) -> Start:
    """When a scan due at ``due`` may start, seen at ``now``: after any quiet window."""
    at = max(due, now)
    hit = active_window(at, windows, tz, holidays)
    if hit is None:
        return Start(at)
    end = quiet_until(at, windows, tz, holidays)
    return Start(end or hit[1], hit[0].label)


def grid_slot(now: datetime, period: timedelta) -> datetime:
    """The start of the fixed-period slot ``now`` falls in (a grid from the epoch, UTC)."""
    step = max(int(period.total_seconds()), 1)
    seconds = int((now - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step)
