"""Scheduled scans as slots: a due moment that names the job, and when it may start.

Pure: stored times and the clock are arguments. This is the one scan planner; the
daemon and ``posture run --once`` both plan through it (:class:`agent.scheduling.scan_jobs.ScanPlanner`).

* An asset never scanned (no attempt at all) is due when it was added: the first run
  scans it. Jitter never delays a first scan.
* A complete scan (manual or scheduled) restarts the period; the next slot is the
  schedule's next moment plus a stable per-asset jitter (at most a quarter period),
  so assets scanned together spread out afterwards.
* After an attempt that did not complete (partial, failed, interrupted) the next one
  waits a quarter period, at most six hours, rather than hammering a host that is down.

The daemon's job key is the due moment, so it must not move while nothing happens;
a missed slot stays the same slot however long the agent was down, so after downtime
it runs once, not once per missed period. A slot inside a quiet window starts when the
window (and any window straight after it) ends: the whole scan, active part included,
runs in the next allowed window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from schedules.quiet import Window, active_window, quiet_until
from schedules.timing import Every, Schedule, jitter_for

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SCAN_RETRY_CAP = timedelta(hours=6)
JITTER = "jitter"
RETRY = "retry after an incomplete scan"


#: A stored scan time later than this past the clock is taken as "now": the clock went back
#: (NTP correcting a host that ran ahead, a VM restored from a snapshot).
FUTURE_TOLERANCE = timedelta(minutes=5)


def in_future(at: datetime | None, now: datetime) -> bool:
    """Whether a stored time ``at`` lies in the future of ``now`` (beyond the tolerance)."""
    return at is not None and at > now + FUTURE_TOLERANCE


@dataclass(frozen=True)
class Slot:
    due: datetime  # names the job; the scan may start then (after quiet windows)
    nominal: datetime  # when the schedule alone makes it due
    delay: str | None = None  # why ``due`` is later than ``nominal``: JITTER or RETRY


def plan_slot(schedule: Schedule, name: str, *, last_complete: datetime | None, last_attempt: datetime | None,
              added: datetime, now: datetime, jitter: timedelta = timedelta(0)) -> Slot:
    """The asset's next scheduled scan (its due moment is in the past when overdue).

    Stored times in the future of ``now`` (the clock went back) count as ``now``: the schedule
    goes on from today instead of waiting, silently, until the clock catches up."""
    if in_future(last_complete, now):
        last_complete = now
    if in_future(last_attempt, now):
        last_attempt = now
    period = schedule.nominal
    if last_complete is None:
        nominal = added if isinstance(schedule, Every) else schedule.next_after(None, now)
        slot = Slot(nominal, nominal)
    else:
        nominal = schedule.next_after(last_complete, now)
        offset = jitter_for(name, min(jitter, period / 4))
        slot = Slot(nominal + offset, nominal, JITTER if offset else None)
    if last_attempt is not None and (last_complete is None or last_attempt > last_complete):
        retry = last_attempt + min(period / 4, SCAN_RETRY_CAP)
        if retry > slot.due:
            slot = Slot(retry, nominal, RETRY)
    return slot


def scan_slot(schedule: Schedule, name: str, *, last_complete: datetime | None, last_attempt: datetime | None,
              added: datetime, now: datetime, jitter: timedelta = timedelta(0)) -> datetime:
    """The due moment of the asset's next scheduled scan (in the past when overdue)."""
    return plan_slot(schedule, name, last_complete=last_complete, last_attempt=last_attempt, added=added,
                     now=now, jitter=jitter).due


def room_before(start: datetime, deadline: datetime, windows: Sequence[Window], tz: str,
                holidays: frozenset[date] = frozenset()) -> datetime | None:
    """The first moment in [start, deadline) outside every quiet window, or None when there is none."""
    at = start
    for _ in range(1000):  # a window per day for years is still bounded
        if at >= deadline:
            return None
        hit = active_window(at, windows, tz, holidays)
        if hit is None:
            return at
        at = hit[1]
    return None


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
