"""The compliance calendar: periodic duties by the firm's tier, and the declaration windows.

Pure functions of recorded dates and a clock. Sources (``/work/shared/regulation.md``,
seeds 000 and 002; CC-19000 (十五); CC-20000 (十一)):

* vulnerability scan: every half year, every tier (CC-19000.15);
* penetration test: tier 1 yearly, tiers 2 and 3 every two years;
* business-continuity drill: tier 1 yearly, tiers 2 and 3 every two years, tier 4 self-defined;
* security health check: tiers 1 and 2 every two years;
* DDoS response drill: yearly (CC-20000.11);
* the security declaration: every half year, filed 1–10 January and 1–10 July.

A period of ``None`` means the rules set none for that tier (the firm may configure one).
Dates are calendar dates in the agent's time zone: a duty done on 2026-03-15 with a
six-month period is next due on 2026-09-15 (the same day of the month, or the month's
last day when it has no such day).

The vulnerability scan is owed for every system (CC-19000.15): the ``scan`` duty is done as
of the day by which every configured asset had a complete scan (:class:`ScanCoverage`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta


class DutyKind(enum.StrEnum):
    SCAN = "scan"
    PENTEST = "pentest"
    DRILL = "drill"
    HEALTH_CHECK = "health-check"
    DDOS_DRILL = "ddos-drill"
    DECLARATION = "declaration"


class DutyState(enum.StrEnum):
    OK = "ok"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"
    NEVER = "never"  # never recorded: due from the start (shown, alerted); overdue once a due date passed
    NOT_REQUIRED = "not_required"  # no period for this tier and none configured


TIERS = (1, 2, 3, 4)

# Months between two performances, by tier; None: the rules set no period for that tier.
DEFAULT_MONTHS: Mapping[DutyKind, Mapping[int, int | None]] = {
    DutyKind.SCAN: {1: 6, 2: 6, 3: 6, 4: 6},
    DutyKind.PENTEST: {1: 12, 2: 24, 3: 24, 4: None},
    DutyKind.DRILL: {1: 12, 2: 24, 3: 24, 4: None},
    DutyKind.HEALTH_CHECK: {1: 24, 2: 24, 3: None, 4: None},
    DutyKind.DDOS_DRILL: {1: 12, 2: 12, 3: 12, 4: 12},
    DutyKind.DECLARATION: {1: 6, 2: 6, 3: 6, 4: 6},
}

SOURCES: Mapping[DutyKind, str] = {
    DutyKind.SCAN: "CC-19000.15",
    DutyKind.PENTEST: "seed 000/002 資安分級",
    DutyKind.DRILL: "seed 000/002 資安分級",
    DutyKind.HEALTH_CHECK: "seed 000/002 資安分級",
    DutyKind.DDOS_DRILL: "CC-20000.11",
    DutyKind.DECLARATION: "seed 002",
}

WINDOW_DAYS = 10  # declarations are filed on the 1st to the 10th of January and July


def default_months(kind: DutyKind, tier: int) -> int | None:
    return DEFAULT_MONTHS[kind][tier]


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months (clamped to the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = (nxt - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


@dataclass(frozen=True)
class ScanCoverage:
    """What the firm-wide ``scan`` duty rests on: each configured asset's latest scan day (a
    complete scan by posture or a registered third-party scan of that asset; None: never
    scanned) and the latest firm-wide record (``duty record scan``: a third-party scan of
    every system at once, so it counts for every asset)."""

    assets: tuple[tuple[str, date | None], ...]  # (asset name, its latest scan day), by name
    firm_wide: date | None

    def _covered(self) -> list[tuple[str, date | None]]:
        """Each asset's latest scan, the firm-wide record included."""
        f = self.firm_wide
        return [(name, f if own is None else own if f is None else max(own, f)) for name, own in self.assets]

    @property
    def done(self) -> date | None:
        """The day by which every asset had been scanned: the oldest of their latest scans (None:
        an asset never scanned). No asset configured: the firm-wide record alone."""
        covered = self._covered()
        if not covered:
            return self.firm_wide
        days = [d for _, d in covered]
        return None if None in days else min(d for d in days if d is not None)

    @property
    def held_by(self) -> str | None:
        """The asset whose scan is the oldest (or missing) and so dates the duty; None when no
        asset is configured or the firm-wide record dates it."""
        covered = self._covered()
        if not covered or (self.firm_wide is not None and self.done == self.firm_wide):
            return None
        return min(covered, key=lambda c: (c[1] is not None, c[1] or date.min, c[0]))[0]

    def last_scan(self, asset: str) -> date | None:
        """The asset's own latest scan (the firm-wide record aside)."""
        return dict(self.assets).get(asset)


@dataclass(frozen=True)
class DutyStatus:
    kind: DutyKind
    months: int | None
    last_done: date | None
    next_due: date | None
    state: DutyState
    days_left: int | None  # negative when overdue
    coverage: ScanCoverage | None = None  # the scan duty: what its last_done rests on


def status(kind: DutyKind, months: int | None, last_done: date | None, today: date, warn_days: int) -> DutyStatus:
    """The duty's state on ``today``.

    ``warn_days`` before the due date (and on it: the last day to do it) the state is
    due_soon; the day after, overdue. Never recorded: ``never`` (no next due date, except
    the declaration, owed by the end of the window open now or last opened: once that
    window has closed unfiled, it is overdue like any other duty past its date).
    """
    if months is None:
        return DutyStatus(kind, None, last_done, None, DutyState.NOT_REQUIRED, None)
    if kind is DutyKind.DECLARATION:
        due: date | None = declaration_due(last_done, today)
    else:
        due = None if last_done is None else add_months(last_done, months)
    left = None if due is None else (due - today).days
    if left is not None and left < 0:
        state = DutyState.OVERDUE
    elif last_done is None:
        state = DutyState.NEVER
    elif left is not None and left <= warn_days:
        state = DutyState.DUE_SOON
    else:
        state = DutyState.OK
    return DutyStatus(kind, months, last_done, due, state, left)


def scan_status(months: int | None, coverage: ScanCoverage, today: date, warn_days: int) -> DutyStatus:
    """The ``scan`` duty's state on ``today``: done as of ``coverage.done``."""
    return replace(status(DutyKind.SCAN, months, coverage.done, today, warn_days), coverage=coverage)


# ---------------------------------------------------------------- declaration windows


@dataclass(frozen=True)
class HalfYear:
    year: int
    half: int  # 1: January–June, 2: July–December

    @property
    def label(self) -> str:
        return f"{self.year}H{self.half}"

    @property
    def start(self) -> date:
        return date(self.year, 1 if self.half == 1 else 7, 1)

    @property
    def end(self) -> date:
        """The first day after the half year."""
        return date(self.year, 7, 1) if self.half == 1 else date(self.year + 1, 1, 1)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def window_first(self) -> date:
        """The first day of the declaration window for this half year (right after it ends)."""
        return self.end

    @property
    def window_last(self) -> date:
        return self.end + timedelta(days=WINDOW_DAYS - 1)

    def previous(self) -> HalfYear:
        return HalfYear(self.year - 1, 2) if self.half == 1 else HalfYear(self.year, 1)


def parse_half(text: str) -> HalfYear:
    """``2026H1`` or ``2026H2`` (case-insensitive); ValueError otherwise."""
    raw = text.strip().upper()
    if len(raw) != 6 or not raw.isascii() or raw[4] != "H" or not raw[:4].isdigit() or raw[5] not in "12":
        raise ValueError(f"{text!r} is not a half year like 2026H1 or 2026H2")
    year = int(raw[:4])
    if not 1970 <= year <= 2099:
        raise ValueError(f"{text!r} is out of range (1970H1 to 2099H2)")
    return HalfYear(year, int(raw[5]))


def half_of(day: date) -> HalfYear:
    return HalfYear(day.year, 1 if day.month < 7 else 2)


def open_window(today: date) -> HalfYear | None:
    """The half year whose declaration window (1–10 January/July) contains ``today``."""
    if today.month in (1, 7) and today.day <= WINDOW_DAYS:
        return half_of(today).previous()
    return None


def declaration_due(last_filed: date | None, today: date) -> date:
    """The last day to file the declaration owed at ``today``: the newest window that has opened
    (its half year just ended), unless a filing was recorded on or after that window's first
    day; then the next window's last day."""
    current = half_of(today).previous()
    if last_filed is not None and last_filed >= current.window_first:
        following = HalfYear(current.year + (current.half == 2), 1 if current.half == 2 else 2)
        return following.window_last
    return current.window_last


def reminder_day(half: HalfYear, lead_days: int) -> date:
    """When to remind an unfiled declaration: ``lead_days`` before the window's last day (not before its first)."""
    return max(half.window_last - timedelta(days=lead_days), half.window_first)
