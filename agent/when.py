"""Dates and times people type on the command line (``--until``, ``--date``, ``--older-than``)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.errors import UsageError

_AGE = re.compile(r"^\s*(\d+)\s*([ywdhms])\s*$")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# Every moment a person gives posture (--until, --date, --from, --since, --now, an age)
# must fall in this range: outside it is a typo, and it keeps the arithmetic (the day
# after, a year back) and both databases far from their limits.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive: 2099-12-31 is the last day
RANGE_TEXT = "1970-01-01 to 2099-12-31"
# Row ids are 32-bit integers on both databases.
MAX_ID = 2**31 - 1


def in_range(value: datetime, option: str, text: str) -> datetime:
    """``value`` unchanged when posture can keep it; else a one-line usage error naming ``text``."""
    if not EARLIEST <= value < LATEST:
        raise UsageError(f"{option} {text!r} is out of range: posture takes dates from {RANGE_TEXT}")
    return value


def record_id(text: str) -> int:
    """An argparse ``type`` for ids: a whole number a row id can be (exit 2 naming it otherwise)."""
    raw = text.strip()
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise argparse.ArgumentTypeError(f"{text!r} is not an id (a whole number from 1 to {MAX_ID})")
    return int(raw)


@dataclass(frozen=True)
class Entered:
    """A date or time as a person typed it, and the instant posture computes from it.

    ``text`` is what every output shows (never a shifted UTC rendering of a calendar
    date); ``at`` is what comparisons use. ``day`` is set when a bare date was typed.
    """

    text: str
    at: datetime
    day: date | None = None


def parse_entered(text: str, tz: str, option: str, *, end_of_day: bool = False) -> Entered:
    """An ISO 8601 date or date-time; a bare date is a calendar day in ``tz``: its start (or,
    with ``end_of_day``, the start of the next: "accepted until 2026-06-30" covers the 30th)."""
    raw = text.strip()
    day: date | None = None
    try:
        if _DATE.fullmatch(raw):
            day = date.fromisoformat(raw)
            if not EARLIEST.date() <= day < LATEST.date():
                raise OverflowError(raw)
            start = day + timedelta(days=1) if end_of_day else day
            value = datetime.combine(start, time(0), ZoneInfo(tz))
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
            if value.tzinfo is None:
                value = value.replace(tzinfo=ZoneInfo(tz))
        at = value.astimezone(UTC)
    except OverflowError:
        raise UsageError(f"{option} {text!r} is out of range: posture takes dates from {RANGE_TEXT}") from None
    except ValueError:
        raise UsageError(f"{option} {text!r} is not an ISO 8601 date (2026-06-30) or date-time") from None
    # A calendar day in range stands as typed (its end may pass midnight UTC of 2100-01-01).
    return Entered(raw, at if day is not None else in_range(at, option, text), day)


def parse_when(text: str, tz: str, option: str, *, end_of_day: bool = False) -> datetime:
    """The instant of :func:`parse_entered`."""
    return parse_entered(text, tz, option, end_of_day=end_of_day).at


def before(now: datetime, text: str, option: str) -> datetime:
    """``now`` minus an age such as ``3y``, ``400d``, ``52w``, ``12h`` (years are calendar years)."""
    m = _AGE.match(text)
    if not m or len(m.group(1)) > 18 or int(m.group(1)) == 0:
        raise UsageError(f"{option} {text!r} is not an age like 3y, 400d, 52w or 12h")
    n, unit = int(m.group(1)), m.group(2)
    try:
        if unit == "y":
            value = years_before(now, n)
        else:
            seconds = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
            value = now - timedelta(seconds=n * seconds)
    except (OverflowError, ValueError):
        value = EARLIEST - timedelta(days=1)  # further back than any date posture takes
    if not EARLIEST <= value < LATEST:
        raise UsageError(f"{option} {text!r} is out of range: it reaches before {EARLIEST.date().isoformat()}")
    return value


def years_before(now: datetime, years: int) -> datetime:
    year = now.year - years
    if not 1 <= year <= 9999:
        raise ValueError(f"year {year} is out of range")
    try:
        return now.replace(year=year)
    except ValueError:  # 29 February in a year that has none
        return now.replace(year=year, day=28)

