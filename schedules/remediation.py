"""Remediation deadlines and the half-yearly scan cadence (CC-19000 (十五)).

Pure functions of stored facts and a clock. Deadlines are computed, not
stored, so a changed policy applies to every open finding at once.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from vocab import Severity

DEFAULT_DAYS: Mapping[str, int | None] = {
    Severity.CRITICAL: 7, Severity.HIGH: 30, Severity.MEDIUM: 90, Severity.LOW: 180, Severity.INFO: None,
}


@dataclass(frozen=True)
class DeadlinePolicy:
    days: Mapping[str, int | None] = field(default_factory=lambda: dict(DEFAULT_DAYS))
    per_kind: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    reopened_keeps_deadline: bool = True
    timezone: str = "UTC"  # the agent's: an end-of-life *date* ends at its start there

    def zone(self) -> tzinfo:
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    def days_for(self, severity: str, kind: str | None = None) -> int | None:
        if kind and severity in self.per_kind.get(kind, {}):
            return self.per_kind[kind][severity]
        return self.days.get(severity)


# Evidence fields that name when a finding's condition breaks something for good: a
# certificate's notAfter (tls.cert.*), an end-of-life date (software.eol).
BREAKS_AT_FIELDS = ("not_after", "end_date")


def breaks_at(evidence: Mapping[str, object], tz: tzinfo = UTC) -> datetime | None:
    """The earliest known end date in a finding's evidence (a bare date: its start in ``tz``)."""
    found: list[datetime] = []
    for name in BREAKS_AT_FIELDS:
        text = evidence.get(name)
        if not isinstance(text, str) or not text:
            continue
        try:
            if len(text) == 10:
                found.append(datetime.combine(date.fromisoformat(text), time(0), tz).astimezone(UTC))
            else:
                value = datetime.fromisoformat(text.replace("Z", "+00:00"))
                found.append(value if value.tzinfo else value.replace(tzinfo=UTC))
        except (ValueError, OverflowError):
            continue
    return min(found, default=None)


def deadline(
    policy: DeadlinePolicy,
    severity: str,
    first_seen: datetime,
    *,
    kind: str | None = None,
    reopened_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> datetime | None:
    """first_seen + days for the severity (None when the severity has no deadline), but never
    later than ``ends_at``, when the condition breaks for good (a certificate's notAfter, an
    end-of-life date) and that is after first_seen: a deadline after the outage is no deadline.

    A reopened finding keeps its original deadline unless the policy says the
    clock restarts when it comes back.
    """
    days = policy.days_for(severity, kind)
    if days is None:
        return None  # a severity without a deadline (info) gets none from an end date either
    start = first_seen
    if reopened_at is not None and not policy.reopened_keeps_deadline:
        start = reopened_at
    due = start + timedelta(days=days)
    if ends_at is not None and ends_at > first_seen and ends_at < due:
        return ends_at
    return due


def is_overdue(due: datetime | None, now: datetime) -> bool:
    return due is not None and now > due


class CadenceState(enum.StrEnum):
    OK = "ok"
    NEVER_SCANNED = "never_scanned"  # no complete scan yet; counted from when the asset was added
    WARNING = "warning"  # due within cadence_warn_days
    OVERDUE = "overdue"


@dataclass(frozen=True)
class Cadence:
    state: CadenceState
    last_complete: datetime | None
    due: datetime
    days_left: int  # negative when overdue


def cadence(
    last_complete: datetime | None,
    added_at: datetime,
    now: datetime,
    *,
    cadence_days: int = 183,
    warn_days: int = 14,
) -> Cadence:
    """Whether an asset's last complete scan is young enough.

    An asset never scanned counts from when it was added, and is never "ok": it is
    "never scanned" until its warning period, then warning and overdue like any other.
    """
    start = last_complete or added_at
    due = start + timedelta(days=cadence_days)
    left = due - now
    days_left = int(left.total_seconds() // 86400)
    if now >= due:
        state = CadenceState.OVERDUE
    elif left <= timedelta(days=warn_days):
        state = CadenceState.WARNING
    elif last_complete is None:
        state = CadenceState.NEVER_SCANNED
    else:
        state = CadenceState.OK
    return Cadence(state, last_complete, due, days_left)
