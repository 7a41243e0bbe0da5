from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schedules.weekly import changes, expiring_certificates, week_window

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


def _obs(**certs: str) -> dict[str, object]:
    return {"host": "www.b.test", "port": 443, "addresses": {
        a: {"status": "ok", "certificate": {"subject": f"CN={a}", "not_after": na}} for a, na in certs.items()}}


def test_expiring_certificates_are_counted_from_now() -> None:
    obs = _obs(**{
        "192.0.2.1": (NOW + 20 * D).isoformat(),
        "192.0.2.2": (NOW + 31 * D).isoformat(),
        "192.0.2.3": (NOW - 2 * D).isoformat().replace("+00:00", "Z"),
        "192.0.2.4": "garbage",
    })
    obs["addresses"]["192.0.2.5"] = {"status": "error"}  # type: ignore[index]
    got = expiring_certificates(obs, NOW, 30)
    assert got.host == "www.b.test" and got.port == 443
    assert [(c.address, c.days_left, c.expired) for c in got.certificates] == [
        ("192.0.2.3", -2, True), ("192.0.2.1", 20, False)]
    assert expiring_certificates({}, NOW, 30).certificates == ()
