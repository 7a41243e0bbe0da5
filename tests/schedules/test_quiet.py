from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from schedules.quiet import QuietError, active_window, parse_holidays, parse_windows, quiet_until

TPE = ZoneInfo("Asia/Taipei")


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TPE)


TWSE = parse_windows(["twse"])
TAIFEX = parse_windows(["taifex"])


@pytest.mark.parametrize(
    ("when", "quiet"),
    [
        (at(2026, 11, 23, 8, 29), False),  # Monday before the pre-open
        (at(2026, 11, 23, 8, 30), True),
        (at(2026, 11, 23, 13, 30), True),
        (at(2026, 11, 23, 13, 59), True),
        (at(2026, 11, 23, 14, 0), False),
        (at(2026, 11, 21, 10, 0), False),  # Saturday
    ],
)
def test_twse(when: datetime, quiet: bool) -> None:
    assert (active_window(when, TWSE, "Asia/Taipei") is not None) is quiet


def test_taifex_night_session_crosses_midnight() -> None:
    assert active_window(at(2026, 11, 23, 23, 0), TAIFEX, "Asia/Taipei") is not None
    assert active_window(at(2026, 11, 24, 4, 59), TAIFEX, "Asia/Taipei") is not None
    assert active_window(at(2026, 11, 24, 5, 0), TAIFEX, "Asia/Taipei") is None
    # Friday's night session runs into Saturday morning.
    assert active_window(at(2026, 11, 28, 2, 0), TAIFEX, "Asia/Taipei") is not None
    # Between the day and night sessions.
    assert active_window(at(2026, 11, 23, 14, 30), TAIFEX, "Asia/Taipei") is None


def test_quiet_until_is_the_window_end() -> None:
    assert quiet_until(at(2026, 11, 23, 10, 0), TWSE, "Asia/Taipei") == at(2026, 11, 23, 14, 0)
    assert quiet_until(at(2026, 11, 23, 15, 0), TWSE, "Asia/Taipei") is None
    chained = parse_windows(["mon 08:00-10:00", "mon 10:00-12:00"])
    assert quiet_until(at(2026, 11, 23, 9, 0), chained, "Asia/Taipei") == at(2026, 11, 23, 12, 0)


def test_holidays_lift_the_window() -> None:
    holidays = parse_holidays("# 2026 closures\n2026-11-23  market holiday\n\n")
    assert holidays == frozenset({date(2026, 11, 23)})
    assert active_window(at(2026, 11, 23, 10, 0), TWSE, "Asia/Taipei", holidays) is None
    with pytest.raises(QuietError, match="line 1"):
        parse_holidays("23/11/2026")


@pytest.mark.parametrize("spec", ["weekdays 08:00-09:00", "mon-fri 8-9", "mon 25:00-26:00", "funday 01:00-02:00"])
def test_bad_windows(spec: str) -> None:
    with pytest.raises(QuietError):
        parse_windows([spec])


def test_custom_windows() -> None:
    w = parse_windows(["sat,sun 00:00-24:00", "fri-mon 22:00-23:00"])
    assert active_window(at(2026, 11, 22, 12, 0), w, "Asia/Taipei") is not None
    assert active_window(at(2026, 11, 23, 22, 30), w, "Asia/Taipei") is not None
    assert active_window(at(2026, 11, 24, 22, 30), w, "Asia/Taipei") is None
