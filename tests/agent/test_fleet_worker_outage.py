"""A fleet worker (``posture worker``) through a dead attempt, a stop and a database outage.

The outage is the test database refusing connections (``ALLOW_CONNECTIONS false``, its
sessions terminated), the shared test server itself left running:

* a worker killed mid-scan, its asset then removed from the config: the next worker
  running the slot marks the dead attempt's scan interrupted and ends the slot failed,
  nothing left "running";
* workers stopped mid-scan while the database is unreachable are gone by their deadline;
* a worker outlives an outage and scans again once the database is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from state.job_queue import JobState
from tests.agent.daemon_lab import Agent, Db, wait_for
from tests.agent.test_fleet import SLOW, FleetLab, Worker, fleet_config, lab, names  # noqa: F401  (fixture)
from tests.support.pg import pg_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres


@contextmanager
def outage(url: str) -> Iterator[None]:
    """The database ``url`` refuses connections (its open sessions are ended) until the block ends."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    from tests.support.pg import admin_url

    name = make_url(url).database
    admin = make_url(admin_url()).set(drivername="postgresql").render_as_string(hide_password=False)

    def allow(yes: bool) -> None:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(str(name)), sql.SQL("true" if yes else "false")))
            if not yes:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))

    allow(False)
    try:
        yield
    finally:
        allow(True)


def only(fleet: FleetLab, sink_url: str, *keep: str) -> str:
    """The fleet config with only the assets ``keep``."""
    text = fleet_config(fleet, sink_url)
    return "[[assets]]".join(b for b in text.split("[[assets]]")
                             if not b.strip().startswith("name") or any(f'"{n}"' in b for n in keep))


def slow_running(db: Db, fleet: FleetLab) -> bool:
    return bool(fleet.slow.connections and [j for j in db.jobs(SLOW) if j.state == JobState.RUNNING and j.scan_id])


def test_a_dead_attempt_of_an_asset_no_longer_configured_is_interrupted(lab: FleetLab, tmp_path: Path,  # noqa: F811
                                                                         pg_url: str) -> None:  # noqa: F811
    from tests.support.sinks import http_sink

    lab.slow.hold.set()
    with http_sink() as sink:
        full, without = tmp_path / "full.toml", tmp_path / "without.toml"
        full.write_text(only(lab, sink.url(), SLOW))
        without.write_text(only(lab, sink.url(), names()[0]))
        db = Db(pg_url)
        procs = [Agent(tmp_path, full, pg_url, name="scheduler").start()]
        try:
            first = Worker(tmp_path, full, pg_url, name="first").start()
            procs.append(first)
            wait_for("the slow scan to start", lambda: slow_running(db, lab), timeout=60, agents=tuple(procs))
            first.kill9()
            lab.slow.release()
            second = Worker(tmp_path, without, pg_url, name="second").start()
            procs = [procs[0], second]
            wait_for("the slot settled", lambda: [j for j in db.jobs(SLOW) if j.state != JobState.RUNNING],
                     timeout=60, agents=tuple(procs))
            assert [p.stop(30) for p in procs] == [0, 0]
        finally:
            for p in procs:
                p.cleanup()
        try:
            assert "no longer configured" in second.log()
            assert [s.status.value for s in db.scans(SLOW)] == ["interrupted"]
            (job,) = db.jobs(SLOW)
            assert job.state == JobState.FAILED and job.error == "asset no longer configured"
        finally:
            db.close()


def defer(url: str, asset: str) -> None:
    """Queue one scan of ``asset`` as the scheduler does."""
    from agent.scheduling.fleet import TASK, asset_lock, make_app, slot_lock
    from agent.scheduling.scan_jobs import scan_key
    from state.store import Store

    due = datetime.now(UTC)
    key = scan_key(asset, due)
    with Store.open(url) as store:
        app = make_app(store)
        with app.open():
            app.configure_task(TASK, queueing_lock=slot_lock(key), lock=asset_lock(asset)).defer(
                key=key, asset=asset, due=due.isoformat())


async def test_workers_stopped_mid_scan_with_the_database_unreachable_stop_by_a_deadline(
        lab: FleetLab, tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """:func:`fleet.work` itself (``posture worker`` and ``posture run``'s in-process worker):
    told to stop mid-scan while the database refuses connections, it is over (returned, or
    raised that it is stuck) within the scan grace and a few seconds."""
    import argparse
    import asyncio

    from agent.scheduling.fleet import STOP_GRACE, work
    from agent.session import Session
    from tests.support.sinks import http_sink

    lab.slow.hold.set()
    with http_sink() as sink:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(only(lab, sink.url(), SLOW))
        db = Db(pg_url)
        session = Session.from_args(argparse.Namespace(config=str(cfg), now=None, db=pg_url))
        store = session.open_store()
        stop = asyncio.Event()
        task = asyncio.create_task(work(session, store, stop))
        try:
            await asyncio.to_thread(defer, pg_url, SLOW)
            for _ in range(600):
                if task.done() or await asyncio.to_thread(slow_running, db, lab):
                    break
                await asyncio.sleep(0.1)
            assert not task.done() and lab.slow.connections
            db.close()
            with outage(pg_url):
                stop.set()
                began = asyncio.get_running_loop().time()
                await asyncio.wait([task], timeout=STOP_GRACE + 30)  # a bound, not a goal
                took = asyncio.get_running_loop().time() - began
            assert task.done() and took < STOP_GRACE + 10, f"still stopping after {took:.1f} s"
        finally:
            lab.slow.release()
            if not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=60)
            store.close()


# ``posture run`` only: its in-process worker is the same loop (fleet.work) as ``posture worker``'s,
# and the case that used to take the scheduler down with it. An outage test takes over a minute.
@pytest.mark.parametrize("command", ["run"])
def test_a_worker_outlives_a_database_outage_and_scans_again(lab: FleetLab, tmp_path: Path,  # noqa: F811
                                                             pg_url: str, command: str) -> None:  # noqa: F811
    """``posture worker``, and ``posture run`` with its in-process worker (``in_process = true``)."""
    from tests.support.sinks import http_sink

    name = names()[0]
    with http_sink() as sink:
        cfg = tmp_path / "posture.toml"
        text = only(lab, sink.url(), name)
        cfg.write_text(text if command == "worker" else text.replace("in_process = false", "in_process = true"))
        db = Db(pg_url)  # migrated
        agent = (Worker if command == "worker" else Agent)(tmp_path, cfg, pg_url, name=command).start()
        try:
            wait_for("the worker to start", lambda: "scan(s) at once" in agent.log(), timeout=30, agents=(agent,))
            if command == "run":  # its scheduler queues the asset at once
                wait_for("the first scan", lambda: db.complete(name), timeout=60, agents=(agent,))
            before = len(db.complete(name))
            db.close()
            time.sleep(1)
            with outage(pg_url):
                wait_for("the worker to see the outage and try again",
                         lambda: agent.log().count("running them again") >= 2, timeout=150, agents=(agent,))
            defer(pg_url, name)
            db = Db(pg_url)
            wait_for("a scan after the outage", lambda: len(db.complete(name)) > before, timeout=90,
                     agents=(agent,))
            assert agent.stop(30) == 0
        finally:
            db.close()
            agent.cleanup()
