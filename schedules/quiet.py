"""Quiet hours: when active probes must not touch trading endpoints.

A window is ``"DAYS HH:MM-HH:MM"`` in the agent's time zone, where DAYS is
``daily``, a range ``mon-fri`` or a list ``sat,sun``; an end at or before the
start runs past midnight (the TAIFEX night session). Presets:

* ``twse``: weekdays 08:30–14:00 (the TWSE trades 09:00–13:30; half an hour
  either side covers pre-opening orders and closing auctions);
* ``taifex``: weekdays 08:30–13:45 and the night session 15:00–05:00.

A holiday (a date on which the market is closed) lifts the windows that start
on it. Pure functions: the clock and the holiday list are arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from vocab import AssetKind, InputError

PRESETS: dict[str, tuple[str, ...]] = {
    "twse": ("mon-fri 08:30-14:00",),
    "taifex": ("mon-fri 08:30-13:45", "mon-fri 15:00-05:00"),
}
DEFAULT_FOR_KIND: dict[str, tuple[str, ...]] = {AssetKind.TRADING: ("twse",)}

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"^\s*(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class QuietError(InputError):
    pass


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    label: str

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def spans(self, day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
        start = datetime.combine(day, self.start, tz)
        end_day = day + timedelta(days=1) if self.overnight else day
        return start, datetime.combine(end_day, self.end, tz)


def _days(text: str) -> frozenset[int]:
    text = text.lower()
    if text in ("daily", "*"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, _, b = part.partition("-")
            if a not in _DAYS or b not in _DAYS:
                raise QuietError(f"unknown day range {part!r}")
            i, j = _DAYS.index(a), _DAYS.index(b)
            out.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)])
        elif part in _DAYS:
            out.add(_DAYS.index(part))
        else:
            raise QuietError(f"unknown day {part!r}")
    return frozenset(out)


def parse_window(spec: str) -> Window:
    m = _SPEC.match(spec)
    if not m:
        raise QuietError(f"quiet window {spec!r} is not 'DAYS HH:MM-HH:MM' (e.g. 'mon-fri 08:30-14:00')")
    h1, m1, h2, m2 = (int(m.group(i)) for i in range(2, 6))
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59:
        raise QuietError(f"quiet window {spec!r} has an impossible time")
    end = time(0, 0) if h2 == 24 else time(h2, m2)
    return Window(_days(m.group(1)), time(h1, m1), end, spec.strip())


def parse_windows(specs: Iterable[str]) -> tuple[Window, ...]:
    """Expand presets and parse windows; QuietError names the bad entry."""
    out: list[Window] = []
    for spec in specs:
        if spec.strip().lower() in PRESETS:
            out.extend(parse_window(s) for s in PRESETS[spec.strip().lower()])
        else:
            out.append(parse_window(spec))
    return tuple(out)


def parse_holidays(text: str) -> frozenset[date]:
    """One ISO date per line; '#' starts a comment; blank lines ignored."""
    days: set[date] = set()
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            days.add(date.fromisoformat(line.split()[0]))
        except ValueError:
            raise QuietError(f"holiday file line {n}: {line!r} is not a YYYY-MM-DD date") from None
    return frozenset(days)


def active_window(
    now: datetime, windows: Sequence[Window], tz: str, holidays: frozenset[date] = frozenset()
) -> tuple[Window, datetime] | None:
    """The window ``now`` falls in and when it ends, or None when probes may run."""
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    for w in windows:
        for day in (local.date() - timedelta(days=1), local.date()):
            if day.weekday() not in w.days or day in holidays:
                continue
            start, end = w.spans(day, zone)
            if start <= local < end:
                return w, end
    return None


def quiet_until(
    now: datetime, windows: Sequence[Window], tz: str, holidays: frozenset[date] = frozenset()
) -> datetime | None:
    """When active probing may start again (following back-to-back windows), or None if now."""
    end: datetime | None = None
    at = now
    for _ in range(16):  # windows chain at most a few times; bounded anyway
        hit = active_window(at, windows, tz, holidays)
        if hit is None:
            break
        end = hit[1]
        at = end
    return end
