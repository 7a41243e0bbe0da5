"""What is due now: notification retries, deadline and cadence states (scans: :mod:`schedules.slots`).

Pure functions of stored times and a clock; the agent reads history and acts.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
DUE_SOON = timedelta(days=14)


def retry_delay(attempts: int, base: timedelta = RETRY_BASE, cap: timedelta = RETRY_CAP) -> timedelta:
    """Exponential backoff after ``attempts`` failed deliveries: 1 min, 2, 4 ... capped at 6 h."""
    if attempts <= 0:
        return timedelta(0)
    return min(base * (1 << min(attempts - 1, 30)), cap)


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
