"""The compliance calendar's rules (schedules.duties): periods by tier, due dates, states, windows."""

from __future__ import annotations

from datetime import date

import pytest

from schedules.duties import (
    DutyKind,
    DutyState,
    HalfYear,
    ScanCoverage,
    add_months,
    declaration_due,
    default_months,
    open_window,
    parse_half,
    reminder_day,
    scan_status,
    status,
)


def test_tier_periods_follow_the_rules() -> None:
    assert [default_months(DutyKind.PENTEST, t) for t in (1, 2, 3, 4)] == [12, 24, 24, None]
    assert [default_months(DutyKind.DRILL, t) for t in (1, 2, 3, 4)] == [12, 24, 24, None]
    assert [default_months(DutyKind.HEALTH_CHECK, t) for t in (1, 2, 3, 4)] == [24, 24, None, None]
    assert {default_months(DutyKind.DDOS_DRILL, t) for t in (1, 2, 3, 4)} == {12}
    assert {default_months(DutyKind.SCAN, t) for t in (1, 2, 3, 4)} == {6}


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2026, 1, 31), 1, date(2026, 2, 28)),
    (date(2024, 2, 29), 12, date(2025, 2, 28)),
    (date(2024, 2, 29), 48, date(2028, 2, 29)),
    (date(2026, 8, 31), 6, date(2027, 2, 28)),
    (date(2026, 12, 15), 1, date(2027, 1, 15)),
    (date(2026, 3, 15), 6, date(2026, 9, 15)),
])
def test_add_months_keeps_the_day_or_the_months_last(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_states_around_the_due_date() -> None:
    done = date(2025, 3, 1)

    def state(today: date) -> DutyState:
        return status(DutyKind.DDOS_DRILL, 12, done, today, 30).state

    assert state(date(2026, 1, 29)) is DutyState.OK
    assert state(date(2026, 1, 30)) is DutyState.DUE_SOON  # 30 days before
    assert state(date(2026, 3, 1)) is DutyState.DUE_SOON  # the due date is the last day
    assert state(date(2026, 3, 2)) is DutyState.OVERDUE
    s = status(DutyKind.DDOS_DRILL, 12, done, date(2026, 3, 4), 30)
    assert (s.next_due, s.days_left) == (date(2026, 3, 1), -3)
    assert status(DutyKind.PENTEST, 12, None, date(2026, 3, 4), 30).state is DutyState.NEVER
    assert status(DutyKind.PENTEST, None, done, date(2026, 3, 4), 30).state is DutyState.NOT_REQUIRED


def test_declaration_windows() -> None:
    assert open_window(date(2026, 7, 1)) == HalfYear(2026, 1)
    assert open_window(date(2026, 7, 10)) == HalfYear(2026, 1)
    assert open_window(date(2026, 7, 11)) is None
    assert open_window(date(2027, 1, 1)) == HalfYear(2026, 2)
    assert open_window(date(2026, 6, 30)) is None
    h = parse_half("2026h2")
    assert (h.start, h.last_day, h.window_first, h.window_last) == (
        date(2026, 7, 1), date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 10))
    assert reminder_day(HalfYear(2026, 1), 2) == date(2026, 7, 8)
    assert reminder_day(HalfYear(2026, 1), 9) == date(2026, 7, 1)
    for bad in ("2026H3", "2026", "26H1", "2026-H1", "1969H2", "2100H1", "２０２６H1"):
        with pytest.raises(ValueError):
            parse_half(bad)


def test_declaration_due_follows_the_filings() -> None:
    assert declaration_due(None, date(2026, 7, 5)) == date(2026, 7, 10)
    assert declaration_due(date(2026, 1, 8), date(2026, 7, 5)) == date(2026, 7, 10)  # January's filing
    assert declaration_due(date(2026, 7, 9), date(2026, 7, 12)) == date(2027, 1, 10)
    assert declaration_due(date(2026, 7, 9), date(2027, 1, 3)) == date(2027, 1, 10)
    assert declaration_due(date(2026, 1, 8), date(2026, 8, 1)) == date(2026, 7, 10)  # missed: overdue
    assert status(DutyKind.DECLARATION, 6, date(2026, 1, 8), date(2026, 8, 1), 30).state is DutyState.OVERDUE


def test_a_declaration_never_filed_is_overdue_once_its_window_closed() -> None:
    def of(today: date) -> tuple[DutyState, date | None, int | None]:
        s = status(DutyKind.DECLARATION, 6, None, today, 30)
        return s.state, s.next_due, s.days_left

    assert of(date(2027, 1, 5)) == (DutyState.NEVER, date(2027, 1, 10), 5)  # the window is open
    assert of(date(2027, 1, 10))[0] is DutyState.NEVER  # its last day
    assert of(date(2027, 1, 11)) == (DutyState.OVERDUE, date(2027, 1, 10), -1)
    assert of(date(2027, 6, 30)) == (DutyState.OVERDUE, date(2027, 1, 10), -171)
    assert of(date(2027, 7, 3))[:2] == (DutyState.NEVER, date(2027, 7, 10))  # the next window is open
    # The other duties never recorded have no due date: "never" (alerted as such), not overdue.
    never = status(DutyKind.PENTEST, 12, None, date(2027, 1, 11), 30)
    assert (never.state, never.next_due) == (DutyState.NEVER, None)


D1, D2, D3 = date(2026, 12, 7), date(2027, 1, 1), date(2027, 5, 26)


@pytest.mark.parametrize(("assets", "firm_wide", "done", "held_by"), [
    ((), None, None, None),
    ((), D2, D2, None),  # no asset configured: the firm-wide record alone
    ((("a", D1), ("b", D3)), None, D1, "a"),  # the oldest of the assets' latest scans
    ((("a", D3), ("b", D1)), None, D1, "b"),
    ((("a", D3), ("b", None)), None, None, "b"),  # an asset never scanned: not done
    ((("a", D3), ("b", None)), D2, D2, None),  # a firm-wide scan covers every asset
    ((("a", D1), ("b", D3)), D2, D2, None),
    ((("a", D1), ("b", D3)), date(2026, 1, 1), D1, "a"),  # older than every asset's own scan
    ((("a", D3), ("b", D3)), D2, D3, "a"),
])
def test_the_scan_duty_rests_on_every_asset(assets: tuple[tuple[str, date | None], ...], firm_wide: date | None,
                                            done: date | None, held_by: str | None) -> None:
    coverage = ScanCoverage(assets, firm_wide)
    assert (coverage.done, coverage.held_by) == (done, held_by)


def test_the_scan_duty_is_due_six_months_after_its_oldest_asset_scan() -> None:
    coverage = ScanCoverage((("a", D3), ("b", D1)), None)
    s = scan_status(6, coverage, date(2027, 6, 10), 30)
    assert (s.kind, s.last_done, s.next_due, s.state, s.days_left) == (
        DutyKind.SCAN, D1, date(2027, 6, 7), DutyState.OVERDUE, -3)
    assert s.coverage == coverage and coverage.last_scan("b") == D1
    assert scan_status(6, coverage, date(2027, 5, 1), 30).state is DutyState.OK
    assert scan_status(None, coverage, date(2027, 5, 1), 30).state is DutyState.NOT_REQUIRED
    assert scan_status(6, ScanCoverage((("a", None),), None), date(2027, 5, 1), 30).state is DutyState.NEVER
