from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schedules.weekly import CertFacts, changes, expiring_certificates, week_window

NOW = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)
D = timedelta(days=1)


@dataclass(frozen=True)
class Ev:
    finding_id: int
    kind: str
    at: datetime


def test_week_window() -> None:
    assert week_window(NOW) == (NOW - 7 * D, NOW)


def test_changes_in_the_window_each_finding_once() -> None:
    since, until = week_window(NOW)
    events = [
        Ev(1, "opened", NOW - 10 * D),  # before the week
        Ev(1, "fixed", NOW - 3 * D),
        Ev(2, "opened", NOW - 2 * D),
        Ev(2, "fixed", NOW - D),
        Ev(2, "reopened", NOW - timedelta(hours=2)),
        Ev(3, "accepted", NOW - D),  # neither new nor fixed
        Ev(4, "opened", NOW),  # the window is half-open: belongs to the next week
        Ev(5, "reopened", since),
    ]
    got = changes(events, since, until)
    assert got.new == (5, 2)
    assert got.fixed == (1, 2)


def test_expiring_certificates_are_counted_from_now() -> None:
    certs = [
        CertFacts("192.0.2.1", "CN=a", NOW + 20 * D),
        CertFacts("192.0.2.2", "CN=b", NOW + 31 * D),
        CertFacts("192.0.2.3", "CN=c", NOW - 2 * D),
    ]
    got = expiring_certificates(certs, NOW, 30)
    assert [(c.address, c.days_left, c.expired) for c in got] == [("192.0.2.3", -2, True), ("192.0.2.1", 20, False)]
    assert expiring_certificates([], NOW, 30) == ()
