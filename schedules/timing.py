"""When things are due: scan periods and digests, as durations or cron expressions.

Pure: every function takes the clock reading it needs. Formats (users' config
files depend on them): a duration is a whole number with a unit s, m, h, d or
w (``"7d"``, ``"12h"``, ``"30m"``, ``"20s"``); a cron expression has five
fields (``"0 9 * * 1"``), evaluated in the agent's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from vocab import InputError

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=3660)  # ten years and then some: longer is a typo, and dates past it overflow


class ScheduleError(InputError):
    """A schedule string that is neither a duration nor a 5-field cron expression."""


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text)
    if not m or len(m.group(1)) > 12 or int(m.group(1)) == 0:
        raise ScheduleError(f"{text!r} is not a duration like '7d', '12h', '30m' or '20s'")
    if int(m.group(1)) * _UNITS[m.group(2)] > MAX_DURATION.total_seconds():
        raise ScheduleError(f"{text.strip()!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


@dataclass(frozen=True)
class Every:
    """A fixed period: due ``period`` after the last run."""

    period: timedelta

    def next_after(self, last: datetime | None, now: datetime) -> datetime:
        return now if last is None else last + self.period

    @property
    def nominal(self) -> timedelta:
        return self.period


@dataclass(frozen=True)
class Cron:
    """A 5-field cron expression in a time zone: due at each firing time."""

    expression: str
    tz: str = "Asia/Taipei"

    def next_after(self, last: datetime | None, now: datetime) -> datetime:
        """The first firing after ``last`` (or the latest firing at or before ``now`` when never run)."""
        if last is None:
            prev = self.previous(now)
            return prev if prev is not None else self._next(now)
        return self._next(last)

    def _next(self, after: datetime) -> datetime:
        from cronsim import CronSim

        local = after.astimezone(ZoneInfo(self.tz))
        it = CronSim(self.expression, local)
        return next(it).astimezone(UTC)

    def previous(self, at: datetime) -> datetime | None:
        """The latest firing at or before ``at`` (within the last 400 days)."""
        from cronsim import CronSim

        local = at.astimezone(ZoneInfo(self.tz))
        it = CronSim(self.expression, local + timedelta(seconds=1), reverse=True)
        fired = next(it, None)
        if fired is None or local - fired > timedelta(days=400):
            return None
        return fired.astimezone(UTC)

    @property
    def nominal(self) -> timedelta:
        """The typical gap between firings (for dead-man timing)."""
        from cronsim import CronSim

        start = datetime(2026, 1, 5, tzinfo=ZoneInfo(self.tz))
        it = CronSim(self.expression, start)
        a, b = next(it), next(it)
        return b - a


Schedule = Every | Cron


def parse_schedule(text: str, tz: str = "Asia/Taipei") -> Schedule:
    text = text.strip()
    if _DURATION.match(text):
        return Every(parse_duration(text))
    if len(text.split()) == 5:
        from cronsim import CronSim, CronSimError

        try:
            CronSim(text, datetime(2026, 1, 1))
        except CronSimError as exc:
            raise ScheduleError(f"{text!r} is not a valid cron expression: {exc}") from None
        return Cron(text, tz)
    raise ScheduleError(f"{text!r} is neither a duration (7d, 12h, 30m, 20s) nor a 5-field cron expression")


WEEKLY_DIGEST = "0 9 * * 1"  # Monday 09:00 in the agent's time zone


def parse_digest(text: str, tz: str = "Asia/Taipei") -> Cron | None:
    """``"weekly"``, a 5-field cron expression, or ``"off"`` (None)."""
    text = text.strip()
    if text == "off":
        return None
    if text == "weekly":
        return Cron(WEEKLY_DIGEST, tz)
    schedule = parse_schedule(text, tz)
    if not isinstance(schedule, Cron):
        raise ScheduleError(f"digest must be 'weekly', 'off' or a cron expression, not {text!r}")
    return schedule


def due_firing(schedule: Cron, last_sent: datetime | None, now: datetime) -> datetime | None:
    """The firing that is due now and not yet served, or None.

    After downtime only the latest missed firing is due: a digest or job runs
    once, not once per missed period.
    """
    latest = schedule.previous(now)
    if latest is None:
        return None
    if last_sent is not None and last_sent >= latest:
        return None
    return latest


def jitter_for(name: str, span: timedelta) -> timedelta:
    """A stable per-asset offset in [0, span) so assets do not all start at once."""
    import hashlib

    if span <= timedelta(0):
        return timedelta(0)
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return timedelta(seconds=h % max(int(span.total_seconds()), 1))
