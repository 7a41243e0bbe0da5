"""The compliance calendar as of a day: each duty's period (tier default or configured),
last done (from the duty records and the third-party scans), next due and state."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from schedules.duties import DutyKind, DutyStatus, default_months, status

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
    from datetime import timedelta

    from state.duty_records import last_done

    last = last_done(store, cfg.agent.timezone, until=today + timedelta(days=1))
    return [status(k, months_for(cfg, k), last.get(k.value), today, cfg.firm_settings().warn_days) for k in DutyKind]


def status_json(s: DutyStatus) -> dict[str, Any]:
    return {"kind": s.kind.value, "period_months": s.months,
            "last_done": None if s.last_done is None else s.last_done.isoformat(),
            "next_due": None if s.next_due is None else s.next_due.isoformat(),
            "state": s.state.value, "days_left": s.days_left}
