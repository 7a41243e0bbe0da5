"""Which stretch of time a report covers.

Firms declare every half year, on 1–10 January and 1–10 July. The default period is
the declaration half-year in progress at ``now`` in the agent's time zone (1 January–30
June or 1 July–31 December), its states as of ``now``: run on 20 March 2026 it covers
1 January–30 June 2026 so far. The half-year just ended, for the declaration itself,
is asked for by its dates (``--from 2025-07-01 --to 2025-12-31``); any period that is
exactly a calendar half-year counts as a declaration period. ``--from``/``--to`` are
calendar dates in the agent's time zone, both days included; a full ISO time is taken
as it is.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent.errors import UsageError
from agent.report.model import Period
from agent.when import EARLIEST, LATEST, RANGE_TEXT, in_range


def declaration_period(now: datetime, tz: str) -> Period:
    """The calendar half-year ``now`` falls in (local calendar)."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    start = datetime(local.year, 1 if local.month < 7 else 7, 1, tzinfo=zone)
    end = datetime(local.year, 7, 1, tzinfo=zone) if start.month == 1 else datetime(local.year + 1, 1, 1, tzinfo=zone)
    return Period(start.astimezone(UTC), end.astimezone(UTC), tz, declaration=True)


def _months_back(moment: datetime, months: int, zone: ZoneInfo) -> datetime:
    local = moment.astimezone(zone)
    index = local.year * 12 + (local.month - 1) - months
    year, month = divmod(index, 12)
    day = min(local.day, 28)  # every month has a 28th: no overflow into the next month
    return local.replace(year=year, month=month + 1, day=day).astimezone(UTC)


def _parse(text: str, option: str, zone: ZoneInfo, *, end: bool) -> datetime:
    """A date (a whole day: its start, or for --to the start of the next day) or a full time."""
    try:
        if "T" in text or " " in text.strip():
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            return in_range((value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC), option, text)
        day = date.fromisoformat(text.strip())
        if not EARLIEST.date() <= day < LATEST.date():
            raise OverflowError(text)
        if end:
            day += timedelta(days=1)
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    except OverflowError:
        raise UsageError(f"{option} {text!r} is out of range: posture takes dates from {RANGE_TEXT}") from None
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None


def resolve_period(since: str | None, until: str | None, now: datetime, tz: str) -> Period:
    """The period from the options; ``now`` is the invocation's clock (--now)."""
    if since is None and until is None:
        return declaration_period(now, tz)
    zone = ZoneInfo(tz)
    hi = _parse(until, "--to", zone, end=True) if until is not None else now
    lo = _parse(since, "--from", zone, end=False) if since is not None else _months_back(hi, 6, zone)
    if lo >= now:
        raise UsageError("the report period starts after now: nothing can have been scanned in it yet")
    if lo >= hi:
        raise UsageError("the report period is empty: --from must come before --to")
    half = declaration_period(lo, tz)
    return Period(lo, hi, tz, declaration=(half.since, half.until) == (lo, hi))
