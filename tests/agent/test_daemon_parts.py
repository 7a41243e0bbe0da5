"""The daemon's parts in-process: sd_notify, claim owners, quiet policy, planner, dead-man."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.errors import ConfigError
from agent.scanning.quiet_policy import QuietPolicy
from agent.scheduling import sdnotify
from agent.scheduling.deadman import DeadMan, failing_channels, send_failing, send_stale
from agent.scheduling.scan_jobs import ScanPlanner, owner_dead, owner_id, scan_key
from agent.targets import AssetSpec
from state.store import Store

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 Asia/Taipei: TWSE is trading


# -- sd_notify ------------------------------------------------------------------------------


@pytest.mark.parametrize("abstract", [True, False])
def test_notify_reaches_a_path_or_abstract_socket(tmp_path: Path, abstract: bool) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        if abstract:
            name = f"posture-notify-{uuid.uuid4().hex}"
            listener.bind("\0" + name)
            address = "@" + name
        else:
            address = str(tmp_path / "notify")
            listener.bind(address)
        listener.settimeout(2)
        assert sdnotify.notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": address})
        assert listener.recv(100) == b"READY=1\nSTATUS=ok"


def test_notify_outside_systemd_or_to_nobody_is_a_no_op(tmp_path: Path) -> None:
    assert not sdnotify.notify("READY=1", {})
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})


def test_notify_never_blocks_on_a_full_queue() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        name = f"posture-notify-{uuid.uuid4().hex}"
        listener.bind("\0" + name)
        results = [sdnotify.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name}) for _ in range(2000)]
    assert results[0] and not all(results)  # the queue filled up and later sends were dropped


def test_watchdog_interval() -> None:
    assert sdnotify.watchdog_interval({}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "120000000"}) == 60.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": str(os.getpid())}) == 60.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


# -- claim owners ---------------------------------------------------------------------------


def test_an_owner_is_dead_only_when_its_process_is_gone_on_this_host() -> None:
    me = owner_id()
    assert not owner_dead(me)
    child = subprocess.Popen(["sleep", "30"])
    theirs = owner_id(child.pid)
    assert not owner_dead(theirs)
    child.kill()
    child.wait()
    assert owner_dead(theirs)
    host, ns, pid, start = theirs.split("/")
    assert not owner_dead(f"another-host/{ns}/{pid}/{start}")  # left to its lease
    assert not owner_dead(f"{host}/4026531999/{pid}/{start}")  # another container's PID namespace
    assert owner_dead(f"{host}/{ns}/{os.getpid()}/1")  # a reused PID: another start time
    assert not owner_dead("agent-a") and not owner_dead(f"{host}/{ns}/x/1")


# -- quiet policy and planner ----------------------------------------------------------------


CONFIG = """
[schedule]
scan_every = "1d"
jitter = "0"
quiet = {{ api = ["sat,sun 00:00-24:00"] }}
{holidays}

[[assets]]
url = "tls://gw.broker.test:9443"
kind = "trading"

[[assets]]
url = "tls://night.broker.test:9443"
kind = "trading"
quiet = ["taifex"]

[[assets]]
url = "https://api.broker.test/"
kind = "api"
scan_every = "0 3 * * *"

[[assets]]
url = "https://www.broker.test/"

[[assets]]
url = "tls://lab.broker.test:9443"
kind = "trading"
quiet = []
"""


def policy_and_specs(holidays: str = "") -> tuple[QuietPolicy, dict[str, AssetSpec]]:
    cfg = parse_config(CONFIG.format(holidays=holidays))
    return QuietPolicy.from_config(cfg), {s.url.host.split(".")[0]: s for s in cfg.asset_specs()}


def test_quiet_windows_per_asset_then_per_kind_then_default() -> None:
    policy, specs = policy_and_specs()
    monday_10 = T0
    assert policy.until(specs["gw"], monday_10) == datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # twse ends 14:00
    assert policy.until(specs["night"], datetime(2026, 3, 2, 8, 0, tzinfo=UTC)) == datetime(
        2026, 3, 2, 21, 0, tzinfo=UTC)  # 16:00 local, taifex night session until 05:00
    assert policy.until(specs["lab"], monday_10) is None  # quiet = [] opts out
    assert policy.until(specs["www"], monday_10) is None
    saturday = T0 + timedelta(days=5)
    assert policy.until(specs["api"], saturday) == datetime(2026, 3, 8, 16, 0, tzinfo=UTC)  # until Monday 00:00
    reason = policy.reason(specs["gw"], monday_10)
    assert reason == "tls://gw.broker.test:9443 is in its quiet window until 2026-03-02 14:00 (Asia/Taipei)"


def test_a_holiday_lifts_the_windows(tmp_path: Path) -> None:
    days = tmp_path / "holidays.txt"
    days.write_text("# TWSE closed\n2026-03-02  market holiday\n")
    policy, specs = policy_and_specs(f'holidays = "{days}"')
    assert policy.until(specs["gw"], T0) is None
    assert policy.until(specs["gw"], T0 + timedelta(days=1)) is not None
    cfg = parse_config(CONFIG.format(holidays=f'holidays = "{days}"'))
    days.unlink()  # vanished after validation: a config error naming the key, not a crash
    with pytest.raises(ConfigError, match=r"^schedule\.holidays: cannot read "):
        QuietPolicy.from_config(cfg)


def test_planner_due_slots_and_quiet_starts() -> None:
    cfg = parse_config(CONFIG.format(holidays=""))
    planner = ScanPlanner(cfg)
    assert planner.shortest == timedelta(days=1)
    names = {s.name for s in planner.specs}
    added = dict.fromkeys(names, T0 - timedelta(hours=1))
    plans = {p.spec.url.host.split(".")[0]: p for p in planner.plan({}, {}, added, T0)}
    www = plans["www"]
    assert www.due == T0 - timedelta(hours=1) and www.start.at == T0 and www.start.quiet is None
    assert www.key == scan_key(www.spec.name, www.due) == "scan:https://www.broker.test/:2026-03-02T01:00:00+00:00"
    gw = plans["gw"]  # due, but trading hours: waits for 14:00 local
    assert gw.start.at == datetime(2026, 3, 2, 6, 0, tzinfo=UTC) and gw.start.quiet == "mon-fri 08:30-14:00"
    api = plans["api"]  # cron 03:00 local: never scanned, so the latest firing
    assert api.due == datetime(2026, 3, 1, 19, 0, tzinfo=UTC) and api.start.at == T0
    complete = {www.spec.name: T0}
    again = {p.spec.url.host.split(".")[0]: p for p in planner.plan(complete, {}, added, T0)}["www"]
    assert again.due == T0 + timedelta(days=1) and again.start.at == again.due


# -- dead-man -------------------------------------------------------------------------------


def test_stale_is_reported_once_per_stretch() -> None:
    dm = DeadMan(timedelta(seconds=4), T0)
    assert not dm.stale(T0 + timedelta(seconds=4))
    assert dm.stale(T0 + timedelta(seconds=5)) and not dm.stale(T0 + timedelta(seconds=60))
    dm.cycle_done(T0 + timedelta(seconds=61))
    assert dm.deadline == T0 + timedelta(seconds=65)
    assert not dm.stale(T0 + timedelta(seconds=62)) and dm.stale(T0 + timedelta(seconds=66))
    dm.cycle_done(T0)  # an older cycle never moves the timer back
    assert dm.last_cycle == T0 + timedelta(seconds=61)


def test_failing_channel_is_reported_once_to_the_others(tmp_path: Path) -> None:
    from agent.notify.alerts import Alert, AlertKind
    from agent.notify.channels import channels
    from agent.notify.dispatch import send_alerts
    from probes.catalog import load_catalog
    from tests.support.sinks import http_sink

    with http_sink(fail_first=1000) as broken, http_sink() as good, \
            Store.open(f"sqlite:///{tmp_path / 'p.db'}") as store:
        cfg = parse_config(f'[[notify]]\nurl = "{broken.url()}"\nlanguage = "en"\n'
                           f'[[notify]]\nurl = "{good.url()}"\nlanguage = "en"\n')
        chans = channels(cfg)
        alert = Alert(AlertKind.CADENCE_OVERDUE, "cadence:www:overdue:x", "www", "high", "cadence.scan_overdue",
                      {"state": "overdue"})
        at = T0
        for _ in range(3):  # each retry waits out its backoff (1, 2, 4 minutes)
            send_alerts(store, chans, [alert], at, "Asia/Taipei", load_catalog())
            at += timedelta(hours=1)
        (failing,) = failing_channels(store)
        assert failing.channel == chans[0].id and failing.attempts == 3 and "500" in failing.error
        dm = DeadMan(timedelta(hours=1), T0)
        assert dm.newly_failing([failing]) == [failing] and dm.newly_failing([failing]) == []
        assert dm.newly_failing([]) == [] and dm.newly_failing([failing]) == [failing]  # recovered, failing again
        before = len(good.messages())
        results = send_failing(cfg, failing, skip={failing.channel})
        assert [r.ok for r in results] == [True]
        (msg,) = good.messages()[before:]
        assert msg["title"] == "posture: notifications keep failing"
        assert f"Notifications to {failing.label} keep failing (3 attempts" in msg["message"]
        stale = send_stale(cfg, T0, timedelta(hours=2))
        assert [r.ok for r in stale] == [False, True]
        assert good.messages()[-1]["message"].startswith(
            "posture has completed no scheduling cycle since 2026-03-02 10:00 (Asia/Taipei) (more than 2h)")


async def test_a_failing_cycle_after_a_long_gap_is_reported_once_and_does_not_spin(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse
    import asyncio

    from agent.config import config_hash
    from agent.scheduling.daemon import Daemon
    from agent.session import Session
    from state.job_queue import JobKind, JobQueue, Wanted

    cfg = parse_config("")
    url = f"sqlite:///{tmp_path / 'p.db'}"
    calls: list[datetime] = []

    def failing(session: object, store: object, now: datetime) -> None:
        calls.append(now)
        raise RuntimeError("digest template broken")

    # The agent's clock starts just after a cycle slot (slots divide the hour), so the next
    # slot is minutes away whatever the wall clock says when the test runs.
    start = datetime.now(UTC).replace(minute=0, second=1, microsecond=0)
    with Store.open(url) as store:
        old = start - timedelta(days=30)  # the last cycle any agent completed
        previous = JobQueue(store, "an-agent-long-gone", timedelta(minutes=5))
        previous.claim([Wanted("cycle:old", JobKind.CYCLE, old)], old, 1)
        previous.complete("cycle:old", old)
        daemon = Daemon(argparse.Namespace(config=None), Session(cfg, config_hash(cfg), url, start), store,
                        cycle=failing)
        await daemon._start()
        for _ in range(3):
            wake = await daemon._turn()
            assert wake > daemon.clock() + timedelta(minutes=1)  # next: the next cycle slot, not "now"
            for _ in range(100):
                if not daemon.cycle_busy:
                    break
                await asyncio.sleep(0.02)
    err = capsys.readouterr().err
    assert err.count("posture: dead-man: no cycle completed since") == 1
    assert "posture: evaluation cycle failed: RuntimeError: digest template broken" in err
    assert len(calls) == 1  # one per cycle slot: a failing cycle is not retried in a loop


async def test_a_stop_lets_the_cycle_in_progress_finish_within_the_grace(tmp_path: Path) -> None:
    import argparse
    import asyncio
    import threading

    from agent.config import config_hash
    from agent.scheduling.daemon import Daemon
    from agent.session import Session
    from state.job_queue import JobKind

    cfg = parse_config("")
    url = f"sqlite:///{tmp_path / 'p.db'}"
    entered, release = threading.Event(), threading.Event()

    def slow_cycle(session: object, store: object, now: datetime) -> None:
        entered.set()
        release.wait(30)  # the stop arrives while the cycle sends its digest

    start = datetime.now(UTC).replace(minute=0, second=1, microsecond=0)
    with Store.open(url) as store:
        daemon = Daemon(argparse.Namespace(config=None), Session(cfg, config_hash(cfg), url, start), store,
                        cycle=slow_cycle, stop_grace=30)
        await daemon._start()
        await daemon._turn()
        assert await asyncio.to_thread(entered.wait, 30) and daemon.cycle_busy
        shutdown = asyncio.create_task(daemon._shutdown())
        await asyncio.sleep(0.2)
        assert not shutdown.done()  # waits for the cycle, within the grace
        release.set()
        await asyncio.wait_for(shutdown, 30)
        (cycle,) = [j for j in daemon.queue.jobs() if j.kind == JobKind.CYCLE]
        assert cycle.state.value == "done", cycle


def test_stored_scan_times_after_the_clock_are_said_once_and_scheduled_from_now(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The clock went back (NTP correcting a host that ran ahead, a VM restored): the planner
    says so once per asset and schedules from now; the metric flags it."""
    planner = ScanPlanner(parse_config('[schedule]\nscan_every = "1d"\njitter = "0"\n[[assets]]\nname = "www"\n'
                                       'url = "https://www.broker.test/"\n'))
    now = datetime(2026, 12, 1, tzinfo=UTC)
    ahead = {"www": now + timedelta(days=30)}
    for _ in range(2):
        (planned,) = planner.plan(ahead, {}, {"www": now - timedelta(days=60)}, now)
        assert planned.due == now + timedelta(days=1)
    err = capsys.readouterr().err
    assert err.count("the clock went back? Scheduling from now") == 1 and "www" in err
