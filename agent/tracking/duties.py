"""The compliance calendar as of a day: each duty's period (tier default or configured),
last done (from the duty records), next due and state.

The ``scan`` duty is owed for every system: it is done as of the day by which every
configured asset had a complete scan, posture's own or a third-party one registered with
``record-scan``; a firm-wide ``duty record scan`` counts for every asset.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from schedules.duties import DutyKind, DutyStatus, ScanCoverage, default_months, scan_status, status

if TYPE_CHECKING:
    from agent.config import Config
    from state.store import Store


def months_for(cfg: Config, kind: DutyKind) -> int | None:
    """The configured period in months (0: none), else the tier's default."""
    given = cfg.firm_settings().periods.get(kind.value)  # type: ignore[call-overload]
    if given is not None:
        return None if given == 0 else int(given)
    return default_months(kind, cfg.firm_settings().tier)


def local_day(moment: datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date()


def calendar(cfg: Config, store: Store, today: date) -> list[DutyStatus]:
    """Every duty's status on ``today`` (records dated after ``today`` are not seen)."""
    from state.duty_records import last_done

    tz, warn = cfg.agent.timezone, cfg.firm_settings().warn_days
    last = last_done(store, tz, until=today + timedelta(days=1))
    return [scan_status(months_for(cfg, k), scan_coverage(cfg, store, today, last.get(k.value)), today, warn)
            if k is DutyKind.SCAN else status(k, months_for(cfg, k), last.get(k.value), today, warn)
            for k in DutyKind]


def scan_coverage(cfg: Config, store: Store, today: date, firm_wide: date | None) -> ScanCoverage:
    """Each configured asset's latest scan day up to ``today``: a complete full scan by posture
    (the day it started) or a registered third-party scan, whichever is newer."""
    from state import external_scans
    from state.evidence import last_complete_before

    tz = cfg.agent.timezone
    end = datetime.combine(today + timedelta(days=1), time(0), ZoneInfo(tz))
    own = last_complete_before(store, end)
    other = external_scans.latest(store, until=end)
    days: list[tuple[str, date | None]] = []
    for name in sorted({s.name for s in cfg.asset_specs()}):
        seen = [local_day(t, tz) for t in (own.get(name), other.get(name)) if t is not None]
        days.append((name, max(seen, default=None)))
    return ScanCoverage(tuple(days), firm_wide)


def _day(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


def status_json(s: DutyStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": s.kind.value, "period_months": s.months, "last_done": _day(s.last_done),
                           "next_due": _day(s.next_due), "state": s.state.value, "days_left": s.days_left}
    if s.coverage is not None:  # the scan duty: which asset dates it, and every asset's latest scan
        out["held_back_by"] = s.coverage.held_by
        out["coverage"] = {"firm_wide": _day(s.coverage.firm_wide),
                           "assets": [{"asset": a, "last_scan": _day(d)} for a, d in s.coverage.assets]}
    return out


def held_back_line(s: DutyStatus) -> str | None:
    """For people: the asset that dates the scan duty, and its latest scan; None when no asset does."""
    held = None if s.coverage is None else s.coverage.held_by
    if s.coverage is None or held is None:
        return None
    last = s.coverage.last_scan(held)
    seen = "never had a complete or third-party scan" if last is None else f"last scanned {last.isoformat()}"
    return f"{s.kind.value}: held back by asset {held} ({seen})"
