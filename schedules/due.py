"""What is due now: scheduled scans, notification retries, deadline and cadence states.

Pure functions of stored times and a clock; the agent reads history and acts.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from schedules.remediation import Cadence, CadenceState
from schedules.timing import Schedule, jitter_for

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
SCAN_RETRY_CAP = timedelta(hours=6)
DUE_SOON = timedelta(days=14)


def retry_delay(attempts: int, base: timedelta = RETRY_BASE, cap: timedelta = RETRY_CAP) -> timedelta:
    """Exponential backoff after ``attempts`` failed deliveries: 1 min, 2, 4 ... capped at 6 h."""
    if attempts <= 0:
        return timedelta(0)
    return min(base * (1 << min(attempts - 1, 30)), cap)


def next_scan(
    schedule: Schedule,
    name: str,
    *,
    last_complete: datetime | None,
    last_attempt: datetime | None,
    now: datetime,
    jitter: timedelta = timedelta(0),
) -> datetime:
    """When the asset's next full scan is due.

    A complete scan (manual or scheduled) restarts the period, offset by a stable
    per-asset jitter (at most a quarter period) so assets do not all start at once. An
    asset never completed is due at once; after an attempt that did not complete, the
    next waits a while (a quarter period, at most six hours) rather than hammering a
    host that is down.
    """
    period = schedule.nominal
    due = schedule.next_after(last_complete, now)
    if last_complete is not None:
        due += jitter_for(name, min(jitter, period / 4))
    if last_attempt is not None and (last_complete is None or last_attempt > last_complete):
        due = max(due, last_attempt + min(period / 4, SCAN_RETRY_CAP))
    return due


class DueState(enum.StrEnum):
    NONE = "none"  # no deadline (info findings)
    OK = "ok"
    SOON = "soon"  # due within the warning period
    OVERDUE = "overdue"


def due_state(due: datetime | None, now: datetime, soon: timedelta = DUE_SOON) -> DueState:
    if due is None:
        return DueState.NONE
    if now > due:
        return DueState.OVERDUE
    if due - now <= soon:
        return DueState.SOON
    return DueState.OK


def cadence_alert(c: Cadence) -> CadenceState | None:
    """The one cadence state worth an alert: overdue replaces the warning; OK and never scanned
    (before its warning period) need none."""
    return None if c.state in (CadenceState.OK, CadenceState.NEVER_SCANNED) else c.state
