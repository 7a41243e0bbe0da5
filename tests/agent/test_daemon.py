"""``posture run`` as a real subprocess: scheduled scans, quiet hours, SIGTERM, SIGHUP, sd_notify.

Fast schedules (``scan_every = "2s"``) against loopback TLS services; ``--now`` moves the
daemon's clock (it still runs in real time) to put a quiet window's end a few seconds away.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from state.job_queue import JobKind, JobState
from tests.agent.daemon_lab import Agent, Db, Lab, asset_toml, config_toml, make_lab, wait_for

A, B, C = "a.daemon.test", "b.daemon.test", "c.daemon.test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with make_lab(tmp_path_factory.mktemp("daemon-lab")) as made:
        yield made


def no_tracebacks(agent: Agent) -> None:
    for line in agent.lines():
        assert line.startswith("posture: "), line
    assert "Traceback" not in agent.log()


def test_scans_on_schedule_pings_systemd_and_stops_cleanly(lab: Lab, tmp_path: Path) -> None:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"posture-test-{uuid.uuid4().hex}"
    notify.bind("\0" + name)  # an abstract-namespace socket, as systemd hands out
    messages: list[str] = []

    def listen() -> None:  # read as systemd does, as they come
        with contextlib.suppress(OSError):
            while data := notify.recv(4096):
                messages.append(data.decode())

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    db = f"sqlite:///{tmp_path / 'p.db'}"
    with lab.gates(A, B) as g:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config_toml(lab.dns, lab.ca, asset_toml(A, g[A]) + asset_toml(B, g[B]), every="2s"))
        agent = Agent(tmp_path, cfg, db, env={"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000000"}).start()
        store = Db(db)
        try:
            wait_for("three scans of each asset", lambda: all(len(store.complete(n)) >= 3 for n in (A, B)),
                     timeout=25, agents=(agent,))
            assert agent.stop() == 0
        finally:
            agent.cleanup()
        notify.shutdown(socket.SHUT_RDWR)
        notify.close()
        listener.join(2)
        try:
            assert not [s for s in store.scans() if s.status.value == "running"]
            for n in (A, B):
                scans = store.scans(n)
                assert all(s.trigger.value == "scheduled" and s.status.value == "complete" for s in scans)
                for before, after in itertools.pairwise(scans):
                    assert before.finished_at is not None
                    # due 2s after the last complete scan: never sooner, and not long after (CI may be slow)
                    assert timedelta(seconds=1.95) <= after.started_at - before.finished_at < timedelta(seconds=10)
                jobs = store.jobs(n)
                assert all(j.state == JobState.DONE and j.attempts == 1 for j in jobs)
                assert sorted(j.scan_id for j in jobs if j.scan_id) == sorted(s.id for s in scans)
            cycles = [j for j in store.jobs() if j.kind == JobKind.CYCLE]
            assert cycles and all(j.state == JobState.DONE for j in cycles)
        finally:
            store.close()
    assert messages[0].startswith("READY=1")
    assert messages.count("WATCHDOG=1") >= 3 and "STOPPING=1" in messages
    no_tracebacks(agent)
    assert agent.lines()[-1] == "posture: stopped"


def next_weekday_at(hour: int, minute: int, tz: str = "Asia/Taipei") -> datetime:
    zone = ZoneInfo(tz)
    day = datetime.now(zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day, time(hour, minute), zone)


def test_trading_endpoints_wait_for_the_end_of_their_quiet_window(lab: Lab, tmp_path: Path) -> None:
    # The daemon's clock starts 4 s before 14:00 Taipei on a weekday: the twse window's end.
    close = next_weekday_at(14, 0)
    start = close - timedelta(seconds=4)
    db = f"sqlite:///{tmp_path / 'p.db'}"
    with lab.gates(A, B, C) as g:
        assets = (asset_toml(A, g[A], kind="trading")  # the default for trading: twse
                  + asset_toml(B, g[B], kind="trading", extra="quiet = []")  # this one has no window
                  + asset_toml(C, g[C], kind="website", extra='quiet = ["mon-fri 13:00-15:00"]'))
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config_toml(lab.dns, lab.ca, assets, every="1h"))
        agent = Agent(tmp_path, cfg, db, now=start.isoformat()).start()
        store = Db(db)
        try:
            first = wait_for("the scan of the asset without a window", lambda: store.complete(B),
                             timeout=15, agents=(agent,))
            assert g[A].connections == [] and g[C].connections == []  # not even a TLS handshake
            wait_for("the trading asset's scan", lambda: store.complete(A), timeout=15, agents=(agent,))
            assert store.complete(A)[0].started_at >= close.astimezone(UTC)
            assert first[0].started_at < close.astimezone(UTC)
            assert store.complete(C) == [] and g[C].connections == []  # its window lasts another hour
            assert agent.stop() == 0
        finally:
            agent.cleanup()
            store.close()
    log = agent.log()
    assert f"posture: {A} is due but in its quiet window (mon-fri 08:30-14:00)" in log
    assert f"posture: {C} is due but in its quiet window (mon-fri 13:00-15:00)" in log
    no_tracebacks(agent)


def test_sighup_applies_a_good_config_and_keeps_the_old_one_when_bad(lab: Lab, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    with lab.gates(A, B) as g:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config_toml(lab.dns, lab.ca, asset_toml(A, g[A]), every="1h"))
        agent = Agent(tmp_path, cfg, db).start()
        store = Db(db)
        try:
            wait_for("the first scan", lambda: store.complete(A), agents=(agent,))
            cfg.write_text(config_toml(lab.dns, lab.ca, asset_toml(A, g[A]) + asset_toml(B, g[B]), every="soon"))
            agent.send(signal.SIGHUP)
            wait_for("the reload error", lambda: "config not reloaded" in agent.log(), agents=(agent,))
            errors = [ln for ln in agent.lines() if "SIGHUP" in ln]
            assert errors == [f"posture: SIGHUP: config not reloaded, keeping the running one: {cfg}: "
                              "schedule.scan_every: 'soon' is neither a duration (7d, 12h, 30m, 20s) "
                              "nor a 5-field cron expression"]
            assert agent.alive() and store.complete(B) == []
            cfg.write_text(config_toml(lab.dns, lab.ca, asset_toml(A, g[A]) + asset_toml(B, g[B]), every="1h"))
            agent.send(signal.SIGHUP)
            wait_for("the new asset's scan", lambda: store.complete(B), agents=(agent,))
            assert "posture: SIGHUP: config reloaded (2 assets" in agent.log()
            assert len(store.complete(A)) == 1  # the reload did not make A due again
            assert agent.stop() == 0
        finally:
            agent.cleanup()
            store.close()
    no_tracebacks(agent)


def test_a_bad_config_at_start_is_one_line_and_exit_2(lab: Lab, tmp_path: Path) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[schedule]\nholidays = "/nonexistent/holidays.txt"\n')
    agent = Agent(tmp_path, cfg, f"sqlite:///{tmp_path / 'p.db'}").start()
    assert agent.wait(20) == 2
    assert agent.lines() == [f"posture: {cfg}: schedule.holidays: cannot read holiday file "
                             "/nonexistent/holidays.txt: No such file or directory"]
