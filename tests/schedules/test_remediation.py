from __future__ import annotations

from datetime import UTC, datetime, timedelta

from schedules.remediation import CadenceState, DeadlinePolicy, cadence, deadline, is_overdue

D0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_default_deadlines_per_severity() -> None:
    policy = DeadlinePolicy()
    assert deadline(policy, "critical", D0) == D0 + timedelta(days=7)
    assert deadline(policy, "high", D0) == D0 + timedelta(days=30)
    assert deadline(policy, "medium", D0) == D0 + timedelta(days=90)
    assert deadline(policy, "low", D0) == D0 + timedelta(days=180)
    assert deadline(policy, "info", D0) is None


def test_per_kind_override_and_reopen_rule() -> None:
    policy = DeadlinePolicy(per_kind={"trading": {"high": 14}})
    assert deadline(policy, "high", D0, kind="trading") == D0 + timedelta(days=14)
    assert deadline(policy, "high", D0, kind="website") == D0 + timedelta(days=30)
    reopened = D0 + timedelta(days=60)
    assert deadline(policy, "high", D0, reopened_at=reopened) == D0 + timedelta(days=30)
    restart = DeadlinePolicy(reopened_keeps_deadline=False)
    assert deadline(restart, "high", D0, reopened_at=reopened) == reopened + timedelta(days=30)


def test_overdue_is_strictly_after_the_deadline() -> None:
    due = D0 + timedelta(days=30)
    assert not is_overdue(due, due)
    assert is_overdue(due, due + timedelta(seconds=1))
    assert not is_overdue(None, D0 + timedelta(days=9999))


def test_cadence_states() -> None:
    last = D0
    assert cadence(last, D0, D0 + timedelta(days=100)).state is CadenceState.OK
    warn = cadence(last, D0, D0 + timedelta(days=170))
    assert warn.state is CadenceState.WARNING and warn.days_left == 13
    over = cadence(last, D0, D0 + timedelta(days=190))
    assert over.state is CadenceState.OVERDUE and over.days_left < 0
    assert over.due == D0 + timedelta(days=183)


def test_never_scanned_counts_from_when_added() -> None:
    added = D0 + timedelta(days=10)
    c = cadence(None, added, D0 + timedelta(days=100))
    assert c.state is CadenceState.NEVER_SCANNED and c.due == added + timedelta(days=183)  # never "ok"
    assert cadence(None, added, added + timedelta(days=170)).state is CadenceState.WARNING
    assert cadence(None, added, added + timedelta(days=200)).state is CadenceState.OVERDUE


def test_deadline_never_after_the_condition_breaks() -> None:
    from schedules.remediation import breaks_at

    policy = DeadlinePolicy()
    # A certificate expiring in 22 days: medium's 90 days would fall after it.
    not_after = D0 + timedelta(days=22)
    ends = breaks_at({"not_after": "2026-01-23T00:00:00Z", "days_left": 22})
    assert ends == not_after
    assert deadline(policy, "medium", D0, ends_at=ends) == not_after
    # The severity's days apply when sooner (critical: 7 days).
    assert deadline(policy, "critical", D0, ends_at=ends) == D0 + timedelta(days=7)
    # An end already past when first seen (an expired certificate, software past EOL) caps nothing.
    past = breaks_at({"not_after": "2025-12-01T00:00:00Z"})
    assert deadline(policy, "high", D0, ends_at=past) == D0 + timedelta(days=30)
    # An end-of-life *date* ends at the start of that day in the agent's time zone, when later.
    from zoneinfo import ZoneInfo

    eol = breaks_at({"end_date": "2026-01-10", "product": "nginx"}, ZoneInfo("Asia/Taipei"))
    assert eol == datetime(2026, 1, 9, 16, 0, tzinfo=UTC)
    assert deadline(policy, "high", D0, ends_at=eol) == eol
    # Severities without a deadline stay without one; a reopened restart is still capped.
    assert deadline(policy, "info", D0, ends_at=ends) is None
    restart = DeadlinePolicy(reopened_keeps_deadline=False)
    assert deadline(restart, "high", D0, reopened_at=D0 + timedelta(days=20), ends_at=ends) == not_after
    # Evidence with nothing usable: no cap.
    assert breaks_at({"not_after": "soon", "end_date": None}) is None
