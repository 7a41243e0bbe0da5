"""PostgreSQL fleet: two schedulers (``posture run``) and three ``posture worker`` processes.

300 ``tls://`` assets spread over five counting TLS servers, each on its own loopback
address, names served by the test's dnsmasq; one more asset behind a gate that holds
its connections, so its scan hangs until the worker running it is killed with -9.
Proven at the database and at the servers, never by timing:

* every asset is scanned once in the period (one complete scan each); the killed
  scan's attempt is marked interrupted, never left running, and its slot runs again
  on another worker after the stall timeout, stored once;
* the two schedulers started together queue each slot once (one procrastinate job per
  slot key) and one of them only is elected;
* no server ever sees more than ``per_host_concurrency`` connections open at once
  (counted at the kernel by the server), though all three workers scan its names;
* the digest (due every minute) goes out once per firing, whichever scheduler runs it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from state.job_queue import JobState
from tests.agent.daemon_lab import ROOT, Agent, Db, Gate, gate, wait_for
from tests.support.counting import Counted
from tests.support.pg import pg_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres

SERVERS = [f"127.0.3.{i}" for i in range(1, 11)]
ASSETS = 300
PER_HOST = 3
SLOW = "slow.fleet.test"
SLOW_ADDRESS = "127.0.4.1"


def names() -> list[str]:
    return [f"a{i:03d}.fleet.test" for i in range(ASSETS)]


@dataclass
class FleetLab:
    dns: str
    servers: list[Counted]
    slow: Gate  # holds its connections while ``slow.hold`` is set


class Worker(Agent):
    def __init__(self, workdir: Path, config: Path, db: str, name: str) -> None:
        super().__init__(workdir, config, db, name=name)
        self.args = [*self.args[:-1], "worker"]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[FleetLab]:
    from tests.support.counting import counting_server
    from tests.support.dnsserver import DnsServer
    from tests.support.servers import http_server

    records = {n: SERVERS[i % len(SERVERS)] for i, n in enumerate(names())}
    records[SLOW] = SLOW_ADDRESS
    dns = DnsServer(records).start()
    try:
        with ExitStack() as stack:
            servers = [stack.enter_context(counting_server(host=h)) for h in SERVERS]
            upstream = stack.enter_context(http_server(host="127.0.4.2"))
            slow = stack.enter_context(gate(SLOW_ADDRESS, (upstream.host, upstream.port)))
            yield FleetLab(dns.address, servers, slow)
    finally:
        dns.stop()


def fleet_config(lab: FleetLab, sink_url: str) -> str:
    ports = {s.host: s.port for s in lab.servers}
    blocks = [f'[[assets]]\nname = "{n}"\nurl = "http://{n}:{ports[SERVERS[i % len(SERVERS)]]}"\n'
              f'kind = "api"\nactive_probes = false\n' for i, n in enumerate(names())]
    blocks.insert(0, f'[[assets]]\nname = "{SLOW}"\nurl = "http://{SLOW}:{lab.slow.port}"\n'
                  f'kind = "api"\nactive_probes = false\n')  # first in the queue: its scan hangs while the others run
    return (f'[agent]\nresolver = "{lab.dns}"\nrequest_timeout = 60\n'
            f'per_host_concurrency = {PER_HOST}\n\n'
            f'[workers]\nfleet = true\nconcurrency = 6\nstall_timeout = 3\nin_process = false\n\n'
            f'[schedule]\nscan_every = "1h"\njitter = "0"\ndigest = "* * * * *"\n\n'
            f'[[notify]]\nurl = "{sink_url}"\nlanguage = "en"\n\n' + "\n".join(blocks))


def slot_jobs(url: str) -> Counter[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT queueing_lock, count(*) FROM procrastinate_jobs GROUP BY queueing_lock")
        return Counter({str(k): int(n) for k, n in rows})


def test_scheduler_and_three_workers_scan_each_asset_once(lab: FleetLab, tmp_path: Path,
                                                          pg_url: str) -> None:  # noqa: F811
    from tests.support.sinks import http_sink

    slow = lab.slow
    slow.hold.set()  # the slow asset's scan hangs until released
    with http_sink() as sink:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(fleet_config(lab, sink.url()))
        db = Db(pg_url)  # migrates first (procrastinate's schema included)
        procs: list[Agent] = []
        try:
            schedulers = [Agent(tmp_path, cfg, pg_url, name=f"scheduler{i}") for i in (1, 2)]
            workers = [Worker(tmp_path, cfg, pg_url, name=f"worker{i}") for i in (1, 2, 3)]
            procs += [a.start() for a in schedulers]  # together
            procs += [w.start() for w in workers]

            def slow_running() -> str | None:
                # Mid-scan: its scan row is stored as running and its probe is connected (held).
                jobs = [j for j in db.jobs(SLOW) if j.state == JobState.RUNNING and j.scan_id is not None]
                return jobs[0].owner if jobs and slow.connections else None

            owner = wait_for("the slow asset's scan to start", slow_running, timeout=60, agents=tuple(procs))
            assert owner is not None
            pid = int(owner.split("/")[2])
            (victim,) = [w for w in workers if w.pid == pid]
            victim.kill9()
            slow.release()  # the retry may now finish
            others = tuple(p for p in procs if p is not victim)
            wait_for("every asset scanned", lambda: all(len(db.complete(n)) >= 1 for n in [*names(), SLOW])
                     if len(db.complete(SLOW)) else False, timeout=300, agents=others)  # a bound, not a goal
            wait_for("a digest", lambda: [m for m in sink.messages()
                                          if str(m.get("title")).startswith("posture weekly digest")],
                     timeout=90, agents=others)
            # Read before stopping: once the elected one stops, the other takes over (failover).
            logs = [a.log() for a in schedulers]
            assert [p.stop(30) for p in others] == [0] * len(others)
        finally:
            for p in procs:
                p.cleanup()
        try:
            # Once per period: one complete scan per asset; the killed attempt interrupted, not running.
            complete = Counter(s.asset for s in db.scans() if s.status.value == "complete")
            assert set(complete) == {*names(), SLOW} and set(complete.values()) == {1}, complete.most_common(3)
            assert [s.status.value for s in db.scans(SLOW)] == ["interrupted", "complete"]
            assert not [s for s in db.scans() if s.status.value == "running"]
            (slow_job,) = db.jobs(SLOW)
            assert (slow_job.state, slow_job.attempts) == (JobState.DONE, 2)
            scan_jobs = [j for j in db.jobs() if j.key.startswith("scan:")]
            assert len(scan_jobs) == ASSETS + 1 and {j.state for j in scan_jobs} == {JobState.DONE}
            # Queued once per slot, by whichever scheduler won; the other stood by.
            queued = slot_jobs(pg_url)
            assert set(queued) == {j.key for j in scan_jobs} and set(queued.values()) == {1}
            assert sum(" elected: " in text for text in logs) == 1, logs
            assert sum("standing by" in text for text in logs) == 1, logs
            # The per-host limit held across all three workers, counted at each server.
            servers = lab.servers
            assert all(s.accepted > 0 for s in servers)
            assert max(s.peak for s in servers) <= PER_HOST, [s.peak for s in servers]
            # The digest: once per firing, though two schedulers had it due.
            digests = [m for m in sink.messages() if str(m.get("title")).startswith("posture weekly digest")]
            # (Apprise's JSON carries the text as "message": each firing's window differs, a firing
            # sent twice would repeat it.)
            assert len(digests) == len({str(d.get("message")) for d in digests}) >= 1
            assert f"scan {slow_job.scan_id}" not in victim.log()  # the victim never finished it
        finally:
            db.close()


async def test_fleet_slots_bound_the_holders_of_every_process_together(pg_url: str) -> None:  # noqa: F811
    """Two processes' limits (two PostgreSQL sessions): never more than the bound inside, and the
    bound is reached; a holder cancelled while waiting leaves no slot behind."""
    import asyncio

    from sqlalchemy.engine import make_url

    from agent.scheduling.fleet_limits import FleetAddressLimits

    conninfo = make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    one, two = FleetAddressLimits(conninfo, PER_HOST), FleetAddressLimits(conninfo, PER_HOST)
    inside, peak = 0, 0
    full, go = asyncio.Event(), asyncio.Event()

    async def holder(limits: FleetAddressLimits) -> None:
        nonlocal inside, peak
        async with limits.hold("127.0.9.9"):
            inside += 1
            peak = max(peak, inside)
            if inside == PER_HOST:
                full.set()
            await go.wait()
            inside -= 1

    try:
        tasks = [asyncio.create_task(holder(one if i % 2 else two)) for i in range(8)]
        await asyncio.wait_for(full.wait(), 30)
        for _ in range(50):  # the waiters keep trying meanwhile: none gets in
            await asyncio.sleep(0.01)
        assert (inside, peak) == (PER_HOST, PER_HOST)
        tasks[0].cancel()  # waiting or holding: either way its slot comes back
        go.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert peak == PER_HOST and inside in (0, 1)
        # Every slot is free again, for either process.
        async with one.hold_all("127.0.9.9") as taken:
            assert taken == PER_HOST
    finally:
        await one.aclose()
        await two.aclose()


def test_worker_refuses_sqlite(tmp_path: Path) -> None:
    import subprocess

    cfg = tmp_path / "posture.toml"
    cfg.write_text("")
    result = subprocess.run([sys.executable, "-m", "agent", "--config", str(cfg), "--db",
                             f"sqlite:///{tmp_path / 'p.db'}", "worker"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "posture: posture worker needs a PostgreSQL database ([agent] database or --db); "
        "on SQLite, posture run scans in its own process"]


def test_worker_needs_the_fleet_switched_on(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """Without ``[workers] fleet = true`` a PostgreSQL ``posture run`` is the one-process daemon
    (watch, dead-man, metrics): a worker would wait for a scheduler that never queues."""
    import subprocess

    cfg = tmp_path / "posture.toml"
    cfg.write_text("")
    result = subprocess.run([sys.executable, "-m", "agent", "--config", str(cfg), "--db", pg_url, "worker"],
                            cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "posture: posture worker needs [workers] fleet = true in the config "
        "(the same config as the scheduler's posture run)"]


def test_a_task_queued_into_a_quiet_window_is_not_scanned_by_the_worker(tmp_path: Path,
                                                                         pg_url: str) -> None:  # noqa: F811
    """Whichever worker runs a task checks the asset's quiet window at that moment (the task was
    queued before the window began, say): nothing reaches the asset, nothing is stored."""
    from datetime import UTC, datetime

    from agent.scheduling.fleet import TASK, asset_lock, make_app, slot_lock
    from agent.scheduling.scan_jobs import scan_key
    from state.store import Store
    from tests.support.counting import counting_server
    from tests.support.dnsserver import DnsServer

    name = "q.fleet.test"
    dns = DnsServer({name: "127.0.5.1"}).start()
    try:
        with counting_server(host="127.0.5.1") as server:
            cfg = tmp_path / "posture.toml"
            cfg.write_text(f'[agent]\nresolver = "{dns.address}"\n\n[workers]\nfleet = true\nstall_timeout = 3\n\n'
                           f'[schedule]\nscan_every = "1h"\njitter = "0"\ndigest = "off"\n\n'
                           f'[[assets]]\nname = "{name}"\nurl = "http://{name}:{server.port}"\nkind = "api"\n'
                           f'active_probes = false\nquiet = ["daily 00:00-12:00", "daily 12:00-00:00"]\n')
            due = datetime.now(UTC)
            key = scan_key(name, due)
            with Store.open(pg_url) as store:
                app = make_app(store)
                with app.open():
                    app.configure_task(TASK, queueing_lock=slot_lock(key), lock=asset_lock(name)).defer(
                        key=key, asset=name, due=due.isoformat())
            db = Db(pg_url)
            worker = Worker(tmp_path, cfg, pg_url, name="quiet-worker").start()
            try:
                wait_for("the task to run", lambda: "in its quiet window" in worker.log(), timeout=60,
                         agents=(worker,))
                assert worker.stop(30) == 0
            finally:
                worker.cleanup()
            try:
                assert server.accepted == 0 and db.scans(name) == [] and db.jobs(name) == []
            finally:
                db.close()
    finally:
        dns.stop()


def test_posture_run_alone_schedules_and_scans_on_postgresql(lab: FleetLab, tmp_path: Path,
                                                             pg_url: str) -> None:  # noqa: F811
    """``[workers] in_process`` (the default): one ``posture run`` is scheduler and worker."""
    from tests.support.sinks import http_sink

    few = names()[:12]
    with http_sink() as sink:
        cfg = tmp_path / "posture.toml"
        text = fleet_config(lab, sink.url()).replace("in_process = false\n", "")
        keep = [b for b in text.split("[[assets]]") if not b.strip().startswith("name") or
                any(f'"{n}"' in b for n in few)]
        cfg.write_text("[[assets]]".join(keep))
        db = Db(pg_url)
        agent = Agent(tmp_path, cfg, pg_url, name="alone").start()
        try:
            wait_for("each asset scanned", lambda: all(db.complete(n) for n in few), timeout=60, agents=(agent,))
            assert agent.stop(30) == 0
        finally:
            agent.cleanup()
        try:
            assert {n: len(db.complete(n)) for n in few} == dict.fromkeys(few, 1)
            assert db.scans(SLOW) == []  # not configured in this run
            assert " elected: 12 assets" in agent.log() and "worker " in agent.log()
        finally:
            db.close()


def test_a_stopped_worker_stores_its_scan_interrupted_and_another_finishes_it(lab: FleetLab, tmp_path: Path,
                                                                              pg_url: str) -> None:  # noqa: F811
    """SIGTERM mid-scan: the scan gets a short grace, then is stored as interrupted (not left
    running); the slot is queued again and the next worker stores it complete, once."""
    from tests.support.sinks import http_sink

    lab.slow.hold.set()
    with http_sink() as sink:
        cfg = tmp_path / "posture.toml"
        text = fleet_config(lab, sink.url())
        cfg.write_text("[[assets]]".join(b for b in text.split("[[assets]]")
                                         if not b.strip().startswith("name") or f'"{SLOW}"' in b))
        db = Db(pg_url)
        procs = [Agent(tmp_path, cfg, pg_url, name="scheduler").start()]
        try:
            first = Worker(tmp_path, cfg, pg_url, name="first").start()
            procs.append(first)
            wait_for("the slow scan to start", lambda: lab.slow.connections and [
                j for j in db.jobs(SLOW) if j.state == JobState.RUNNING and j.scan_id], timeout=60,
                agents=tuple(procs))
            assert first.stop(60) == 0
            assert [s.status.value for s in db.scans(SLOW)] == ["interrupted"]
            (job,) = db.jobs(SLOW)
            assert job.state == JobState.PENDING
            lab.slow.release()
            second = Worker(tmp_path, cfg, pg_url, name="second").start()
            procs.append(second)
            wait_for("the slot scanned", lambda: db.complete(SLOW), timeout=90, agents=(procs[0], second))
            assert [procs[0].stop(30), second.stop(30)] == [0, 0]
        finally:
            for p in procs:
                p.cleanup()
        try:
            assert [s.status.value for s in db.scans(SLOW)] == ["interrupted", "complete"]
            (job,) = db.jobs(SLOW)
            assert (job.state, job.attempts) == (JobState.DONE, 2)
        finally:
            db.close()


def test_a_worker_late_beating_but_alive_keeps_its_job(lab: FleetLab, tmp_path: Path,
                                                       pg_url: str) -> None:  # noqa: F811
    """A worker frozen (SIGSTOP: no heartbeats, its connections open) past the stall timeout is
    not robbed of its scan: its session still holds the task, so the scheduler leaves the job,
    and the scan is stored once, by it, with no second attempt."""
    from tests.support.sinks import http_sink

    lab.slow.hold.set()
    with http_sink() as sink:
        cfg = tmp_path / "posture.toml"
        text = fleet_config(lab, sink.url())
        cfg.write_text("[[assets]]".join(b for b in text.split("[[assets]]")
                                         if not b.strip().startswith("name") or f'"{SLOW}"' in b))
        db = Db(pg_url)
        scheduler = Agent(tmp_path, cfg, pg_url, name="scheduler").start()
        worker = Worker(tmp_path, cfg, pg_url, name="frozen").start()
        try:
            wait_for("the slow scan to start", lambda: lab.slow.connections and [
                j for j in db.jobs(SLOW) if j.state == JobState.RUNNING and j.scan_id], timeout=60,
                agents=(scheduler, worker))
            worker.send(signal.SIGSTOP)
            try:
                wait_for("the scheduler to see the silent worker", lambda: "silent but alive" in scheduler.log(),
                         timeout=60, agents=(scheduler,))
            finally:
                worker.send(signal.SIGCONT)
            lab.slow.release()  # the held connection closes: the scan ends (as it may)
            wait_for("the scan stored", lambda: [s for s in db.scans(SLOW) if s.status.value != "running"],
                     timeout=90, agents=(scheduler, worker))
            assert [scheduler.stop(30), worker.stop(30)] == [0, 0]
        finally:
            scheduler.cleanup()
            worker.cleanup()
        try:
            (stored,) = db.scans(SLOW)
            assert stored.status.value not in ("running", "interrupted")
            (job,) = db.jobs(SLOW)
            assert job.attempts == 1 and job.state == JobState.DONE
            assert "handed back" not in scheduler.log()
        finally:
            db.close()
