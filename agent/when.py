"""Dates and times people type on the command line (``--until``, ``--date``, ``--older-than``)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.errors import UsageError

_AGE = re.compile(r"^\s*(\d+)\s*([ywdhms])\s*$")


def parse_when(text: str, tz: str, option: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or date-time; a bare date is the start of that day in ``tz`` (or, with
    ``end_of_day``, the start of the next: "accepted until 2026-06-30" covers the 30th)."""
    raw = text.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = date.fromisoformat(raw)
            if end_of_day:
                day += timedelta(days=1)
            return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 date (2026-06-30) or date-time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


def before(now: datetime, text: str, option: str) -> datetime:
    """``now`` minus an age such as ``3y``, ``400d``, ``52w``, ``12h`` (years are calendar years)."""
    m = _AGE.match(text)
    if not m or len(m.group(1)) > 18 or int(m.group(1)) == 0:
        raise UsageError(f"{option} {text!r} is not an age like 3y, 400d, 52w or 12h")
    n, unit = int(m.group(1)), m.group(2)
    try:
        if unit == "y":
            return years_before(now, n)
        seconds = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
        return now - timedelta(seconds=n * seconds)
    except (OverflowError, ValueError):
        raise UsageError(f"{option} {text!r} reaches before the year 1") from None


def years_before(now: datetime, years: int) -> datetime:
    try:
        return now.replace(year=now.year - years)
    except ValueError:  # 29 February in a year that has none
        return now.replace(year=now.year - years, day=28)


def who(by: str | None) -> str:
    """Who made a decision: ``--by``, else the (sudo) user running posture."""
    import getpass
    import os

    if by and by.strip():
        return by.strip()
    user = os.environ.get("SUDO_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): say so rather than guess
        return "unknown"
