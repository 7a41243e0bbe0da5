"""The report's pure parts: periods, event replay, cadence gaps, chart scales (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.errors import UsageError
from agent.report.model import CertificateEntry, SeriesPoint
from agent.report.period import declaration_period, resolve_period
from agent.report.svg import _nice_max, certificate_chart, open_findings_chart
from agent.report.timeline import FOREVER, cadence_record, open_intervals, replay, step_series
from schedules.remediation import CadenceState
from state.records import FindingState
from state.views import EventInfo, EventKind

TPE = ZoneInfo("Asia/Taipei")


def tpe(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=TPE).astimezone(UTC)


@pytest.mark.parametrize(
    ("now", "since", "until"),
    [
        (tpe(2026, 1, 5, 10), tpe(2026, 1, 1), tpe(2026, 7, 1)),  # the half-year in progress, days old
        (tpe(2026, 3, 20), tpe(2026, 1, 1), tpe(2026, 7, 1)),
        (tpe(2026, 7, 1), tpe(2026, 7, 1), tpe(2027, 1, 1)),  # midnight 1 July: the second half begins
        (tpe(2026, 6, 30, 23, 59), tpe(2026, 1, 1), tpe(2026, 7, 1)),
        (tpe(2026, 12, 31, 23, 59), tpe(2026, 7, 1), tpe(2027, 1, 1)),
        # 2025-12-31 17:00 UTC is already 1 January in Taipei: the local calendar decides.
        (datetime(2025, 12, 31, 17, tzinfo=UTC), tpe(2026, 1, 1), tpe(2026, 7, 1)),
        (datetime(2025, 12, 31, 15, 59, tzinfo=UTC), tpe(2025, 7, 1), tpe(2026, 1, 1)),
    ],
)
def test_default_period_is_the_declaration_half_year_in_progress(now: datetime, since: datetime,
                                                                 until: datetime) -> None:
    period = declaration_period(now, "Asia/Taipei")
    assert (period.since, period.until, period.declaration) == (since, until, True)
    assert resolve_period(None, None, now, "Asia/Taipei") == period
    assert period.since <= now < period.until


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        ("2025-07-01", "2025-12-31", (tpe(2025, 7, 1), tpe(2026, 1, 1))),
        ("2025-10-01", None, (tpe(2025, 10, 1), tpe(2026, 1, 5, 10))),  # up to now
        (None, "2025-12-31", (tpe(2025, 7, 1), tpe(2026, 1, 1))),  # six months back from the end
        ("2025-10-01T12:00:00+00:00", "2025-10-02T00:00:00Z",
         (datetime(2025, 10, 1, 12, tzinfo=UTC), datetime(2025, 10, 2, tzinfo=UTC))),
    ],
)
def test_explicit_periods(since: str | None, until: str | None, expected: tuple[datetime, datetime]) -> None:
    period = resolve_period(since, until, tpe(2026, 1, 5, 10), "Asia/Taipei")
    assert (period.since, period.until) == expected
    # Exactly a calendar half-year is a declaration period, however it was asked for.
    assert period.declaration is (expected == (tpe(2025, 7, 1), tpe(2026, 1, 1)))


@pytest.mark.parametrize(("since", "until"), [("2025-02-30", None), ("x", None), ("2025-09-02", "2025-09-01")])
def test_bad_periods(since: str, until: str | None) -> None:
    with pytest.raises(UsageError):
        resolve_period(since, until, tpe(2026, 1, 5), "Asia/Taipei")


def ev(at: datetime, kind: EventKind, to: FindingState, **detail: object) -> EventInfo:
    return EventInfo(id=0, finding_id=1, asset="www", check_id="edge.waf.absent", key="k", scan_id=None, at=at,
                     kind=kind, from_state=None, to_state=to, detail=dict(detail))


T = datetime(2025, 1, 1, tzinfo=UTC)
D = timedelta(days=1)
STORY = [
    ev(T, EventKind.OPENED, FindingState.OPEN, severity="high"),
    ev(T + 10 * D, EventKind.FIXED, FindingState.FIXED),
    ev(T + 20 * D, EventKind.REOPENED, FindingState.REOPENED, severity="critical"),
    ev(T + 25 * D, EventKind.ACCEPTED, FindingState.ACCEPTED, reason="vendor patch", by="ciso",
       until="2025-03-01T00:00:00+00:00"),
    ev(T + 30 * D, EventKind.NOTE, FindingState.ACCEPTED, text="checked", by="ops"),
    ev(T + 59 * D, EventKind.ACCEPTANCE_EXPIRED, FindingState.OPEN),
]


@pytest.mark.parametrize(
    ("day", "state", "severity", "fixed", "reopened", "reason"),
    [
        (-1, None, None, None, 0, None),
        (0, FindingState.OPEN, "high", None, 0, None),
        (15, FindingState.FIXED, "high", T + 10 * D, 0, None),
        (21, FindingState.REOPENED, "critical", None, 1, None),
        (31, FindingState.ACCEPTED, "critical", None, 1, "vendor patch"),
        (60, FindingState.OPEN, "critical", None, 1, None),
    ],
)
def test_replay_tells_the_state_at_any_moment(day: int, state: FindingState | None, severity: str | None,
                                              fixed: datetime | None, reopened: int, reason: str | None) -> None:
    got = replay(STORY, T + day * D)
    if state is None:
        assert got is None
        return
    assert got is not None
    assert (got.state, got.severity, got.fixed_at, got.reopened_count, got.decision_reason) == (
        state, severity, fixed, reopened, reason)


def test_replay_notes_only_real_changes_in_a_window() -> None:
    quiet = replay(STORY[:5], T + 40 * D, window_start=T + 28 * D)  # only a note in the window
    busy = replay(STORY, T + 40 * D, window_start=T + 24 * D)
    assert quiet is not None and busy is not None
    assert quiet.changed_between is False and busy.changed_between is True


def test_open_intervals_and_step_series() -> None:
    stretches = open_intervals(STORY, T + 90 * D)
    assert stretches[0] == (T, T + 10 * D)
    assert stretches[1] == (T + 20 * D, T + 25 * D)
    assert stretches[2][0] == T + 59 * D and len(stretches) == 3
    other = [(T - 5 * D, T + 30 * D)]  # opened before the window, fixed inside it
    points = step_series([("high", stretches), ("low", other)], T + 5 * D, T + 90 * D)
    got = [(p.at, p.counts["high"], p.counts["low"]) for p in points]
    assert got == [
        (T + 5 * D, 1, 1),
        (T + 10 * D, 0, 1),
        (T + 20 * D, 1, 1),
        (T + 25 * D, 0, 1),
        (T + 30 * D, 0, 0),
        (T + 59 * D, 1, 0),
        (T + 90 * D, 1, 0),  # the end, still open
    ]
    empty = step_series([], T, T + D)
    assert [(p.at, p.total) for p in empty] == [(T, 0), (T + D, 0)]


def test_an_acceptance_lapses_at_its_end_even_before_its_expiry_is_written() -> None:
    # The expiry event came three weeks late (no cycle ran); the acceptance ended on T + 59 days.
    late = [*STORY[:5], ev(T + 80 * D, EventKind.ACCEPTANCE_EXPIRED, FindingState.OPEN)]
    at_70 = replay(late, T + 70 * D, window_start=T + 65 * D)
    assert at_70 is not None
    assert (at_70.state, at_70.decision_reason, at_70.accepted_until) == (FindingState.OPEN, None, None)
    assert at_70.changed_between is False  # it lapsed before the window
    lapsed_in_window = replay(late[:5], T + 70 * D, window_start=T + 50 * D)
    assert lapsed_in_window is not None and lapsed_in_window.changed_between is True
    still = replay(late, T + 58 * D)
    assert still is not None and still.state is FindingState.ACCEPTED
    assert open_intervals(late, T + 90 * D)[-1] == (T + 59 * D, FOREVER)
    assert open_intervals(late[:5], T + 90 * D)[-1] == (T + 59 * D, FOREVER)  # never written at all
    assert open_intervals(late[:5], T + 58 * D)[-1] == (T + 20 * D, T + 25 * D)  # not yet ended
    # Accepted again before a cycle wrote the expiry: open from the end until the new decision.
    renewed = [*STORY[:5], ev(T + 70 * D, EventKind.ACCEPTED, FindingState.ACCEPTED, until="2025-06-01T00:00:00Z")]
    assert open_intervals(renewed, T + 90 * D)[-1] == (T + 59 * D, T + 70 * D)


@pytest.mark.parametrize(
    ("complete", "previous", "added", "gaps", "state"),
    [
        # Weekly scans: no gap.
        ([T + i * 7 * D for i in range(26)], T - 7 * D, T - 300 * D, [], CadenceState.OK),
        # 200 days between two complete scans, the second inside the period.
        ([T + 100 * D], T - 100 * D, T - 300 * D, [(T - 100 * D, T + 100 * D, 200, False)], CadenceState.OK),
        # Nothing since before the period: the gap runs to the report's moment.
        ([], T - 20 * D, T - 300 * D, [(T - 20 * D, T + 180 * D, 200, True)], CadenceState.OVERDUE),
        # Never scanned: counted from when the asset was added, as the cadence alert does.
        ([], None, T + 10 * D, [], CadenceState.WARNING),
        # Configured but never registered: no evidence at all.
        ([], None, None, [(T, T + 180 * D, 180, True)], CadenceState.OVERDUE),
    ],
)
def test_cadence_record(complete: list[datetime], previous: datetime | None, added: datetime | None,
                        gaps: list[tuple[datetime, datetime, int, bool]], state: CadenceState) -> None:
    record = cadence_record(complete, previous, added, T, T + 180 * D, cadence_days=183, warn_days=14)
    assert [(g.start, g.end, g.days, g.ongoing) for g in record.gaps] == gaps
    assert record.state is state
    assert record.complete_scans == tuple(complete)


@pytest.mark.parametrize(("value", "top"), [(0, 1), (1, 1), (2, 2), (3, 5), (7, 10), (11, 20), (49, 50), (501, 1000)])
def test_axis_tops_are_round(value: int, top: int) -> None:
    assert _nice_max(value) == top


def test_charts_are_plain_svg_with_escaped_text() -> None:
    points = [SeriesPoint(T + i * D, {"high": i % 3, "low": 1}) for i in range(40)]
    chart = open_findings_chart(points, "Asia/Taipei", {"high": "高", "low": "<low>"}, title="t")
    assert chart.startswith("<svg") and chart.endswith("</svg>") and "&lt;low&gt;" in chart
    assert "<script" not in chart and "href" not in chart
    certs = [("<www>", CertificateEntry("127.0.0.1", "CN=x", T, -3, 1, T)),
             ("api", CertificateEntry("127.0.0.2", None, T + 90 * D, 87, 2, T))]
    bars = certificate_chart(certs, warn_days=30, title="c", expired_label="expired", days_label="days")
    assert bars.count("<rect") == 2 and "&lt;www&gt;" in bars and "-3 (expired)" in bars
    assert open_findings_chart([], "UTC", {}, title="t") == "" and certificate_chart(
        [], warn_days=30, title="c", expired_label="", days_label="") == ""
