"""``posture run`` on PostgreSQL: the elected scheduler of a fleet of procrastinate workers.

Any number of ``posture run`` may start; one is elected, by a PostgreSQL session
advisory lock held on a connection of its own, and the others wait as stand-bys
(the lock goes with the connection: a scheduler that dies or loses its database
is replaced within ``ELECTION_RETRY`` seconds). The elected one, each turn:

* hands the jobs of workers silent for ``[workers] stall_timeout`` back to the
  queue (procrastinate's heartbeats; the next worker's ledger step marks the dead
  attempt's scan interrupted and takes the slot over);
* plans the due scans as the single-process daemon does (:class:`ScanPlanner` over
  the same history, quiet windows included) and queues each one that is not queued
  or running already, with the slot's key as ``queueing_lock``: even two schedulers
  that both believed themselves elected could not queue one slot twice while it waits;
* claims the evaluation cycle's slot in the job table (deadlines, cadence, alerts, the
  digest), as the daemon does; the delivery log sends each alert and digest once;
* runs the phishing watch on its own schedule (``[watch]``, from storage, as the daemon's
  :class:`WatchTimer`) and the dead-man checks (no completed cycle for twice the shortest
  scan period; channels that keep failing), as the daemon does.

Its loop sleeps until the next due moment, or at most a fraction of the stall timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import zlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.monitoring.hooks import observe_deliveries, observe_queue
from agent.scheduling import sdnotify
from agent.scheduling.daemon_setup import Settings, log
from agent.scheduling.deadman import DeadMan, check_failing, check_stale
from agent.scheduling.fleet import QUEUE, STOP_GRACE, TASK, asset_lock, conninfo, slot_lock
from agent.scheduling.scan_jobs import LEASE, owner_id
from agent.scheduling.watch_timer import WatchTimer
from state.errors import StoreError
from state.job_queue import JobKind
from vocab import one_line

if TYPE_CHECKING:
    from procrastinate import App

    from agent.scanning.options import Clock
    from agent.scheduling.daemon_setup import CycleFn as Cycle
    from agent.session import Session
    from state.store import Store

ELECTION = zlib.crc32(b"posture:scheduler") & 0x7FFFFFFF
ELECTION_RETRY = 5.0  # seconds between a stand-by's tries
MAX_SLEEP = 30.0
CHECK_TIMEOUT = 10.0  # seconds an election query or connection may take before it counts as lost
STOP_EXTRA = 5.0  # seconds past the workers' STOP_GRACE a stopping process waits; then it exits (1)

# pg_try_advisory_lock(key1, key2): classid = key1, objid = key2, objsubid = 2.
HOLDS = """SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
AND classid::bigint = %s AND objid::bigint = 0 AND objsubid = 2"""

ACTIVE = f"""SELECT queueing_lock, status FROM procrastinate_jobs
WHERE queue_name = '{QUEUE}' AND status IN ('todo', 'doing') AND queueing_lock IS NOT NULL"""


class Scheduler:
    def __init__(self, session: Session, store: Store, app: App, clock: Clock, stop: asyncio.Event,
                 cycle: Cycle | None = None) -> None:
        from agent.scheduling.cycle import alerting_cycle
        from state.job_queue import JobQueue

        self.session = session
        self.store = store
        self.app = app
        self.clock = clock
        self.stop = stop
        self.settings = Settings.build(session, clock)
        self.stall = session.config.workers.stall_timeout
        self.queue = JobQueue(store, owner_id(), LEASE)
        self.cycle = cycle or alerting_cycle
        self.cycle_busy = False
        self.next_cycle = clock()
        self.deadman = DeadMan(2 * self.settings.planner.shortest, clock())
        self.watch = WatchTimer()  # [watch]: its own schedule, from storage
        self.wake = asyncio.Event()  # a watch or a cycle finished: plan again now
        self.enqueued = 0  # slots this scheduler queued (the log and tests read it)
        self.late: set[int] = set()  # jobs of silent but live workers, logged once

    async def run(self) -> None:
        """Stand by, be elected, schedule while the election lock holds; lose it (a database
        restart, a terminated session): step down, reconnect and stand for election again."""
        tries = 0
        while not self.stop.is_set():
            conn = await self._connect(tries)
            if conn is None:
                tries += 1
                continue
            tries = 0
            try:
                if await self._elect(conn):
                    await self._lead(conn)
            except Exception as exc:  # psycopg's OperationalError: the election connection is gone
                if not self.stop.is_set():
                    log(f"scheduler: election connection lost ({one_line(exc, named=True)}); reconnecting")
            finally:
                with contextlib.suppress(Exception):
                    await conn.close()  # the election lock goes with it

    async def _connect(self, tries: int) -> Any:
        """A new election connection, or None (after a pause growing to ``ELECTION_RETRY``)."""
        from psycopg import AsyncConnection

        try:
            return await asyncio.wait_for(
                AsyncConnection.connect(conninfo(self.store), autocommit=True, connect_timeout=int(CHECK_TIMEOUT)),
                CHECK_TIMEOUT)
        except Exception as exc:
            if tries == 0:  # once per outage; the retries are silent
                log(f"scheduler: cannot connect to the database ({one_line(exc, named=True)}); retrying")
            await self._pause(min(ELECTION_RETRY, 0.5 * 2 ** tries))
            return None

    async def _lead(self, conn: Any) -> None:
        """The elected loop: each turn only while this connection still holds the election lock."""
        log(f"scheduler {self.queue.owner} elected: {len(self.settings.planner.specs)} assets")
        last = await asyncio.to_thread(self.queue.last_finished, JobKind.CYCLE)
        if last is not None:
            self.deadman.last_cycle = last  # an old one makes the first turn report the gap
        sdnotify.notify(f"STATUS=scheduling {len(self.settings.planner.specs)} assets")
        while not self.stop.is_set():
            if not await self._holds(conn):
                log("scheduler: the election lock is lost (database restarted or session ended); "
                    "stepping down")
                return
            try:
                wake_at = await self.turn()
            except (StoreError, OSError) as exc:
                log(f"scheduler: {one_line(exc, named=False)} (retrying)")
                wake_at = self.clock() + timedelta(seconds=min(self.stall, MAX_SLEEP))
            except Exception as exc:  # procrastinate's and psycopg's errors: one line, then again
                log(f"scheduler: {one_line(exc, named=True)} (retrying)")
                wake_at = self.clock() + timedelta(seconds=min(self.stall, MAX_SLEEP))
            await self._pause((wake_at - self.clock()).total_seconds())

    async def _holds(self, conn: Any) -> bool:
        """Whether ``conn`` is alive and its session still holds the election lock."""
        try:
            cur = await asyncio.wait_for(conn.execute(HOLDS, (ELECTION,)), CHECK_TIMEOUT)
            return await cur.fetchone() is not None
        except Exception:  # gone, broken or not answering: either way not a leader any more
            return False

    async def _elect(self, conn: Any) -> bool:
        said = False
        while not self.stop.is_set():
            cur = await asyncio.wait_for(conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (ELECTION,)),
                                         CHECK_TIMEOUT)
            row = await cur.fetchone()
            if row is not None and row[0]:
                return True
            if not said:
                log("another scheduler is elected; standing by")
                said = True
            await self._pause(ELECTION_RETRY)
        return False

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` (bounded), or until a stop or a wake-up."""
        seconds = min(max(seconds, 0.05), MAX_SLEEP, max(self.stall / 2, 1.0))
        waits = [asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(self.wake.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self.wake.clear()
        sdnotify.notify("WATCHDOG=1")

    async def turn(self) -> datetime:
        await self.recover_stalled()
        # Which slots are queued or running, read BEFORE the history: a task settles its
        # ledger row before procrastinate marks it finished, so a slot seen neither
        # active here nor stored below was truly not run.
        rows = await self.app.connector.execute_query_all_async(ACTIVE)
        active = {r["queueing_lock"] for r in rows}
        queued = sum(1 for r in rows if r["status"] == "todo")
        now = self.clock()
        plans = await asyncio.to_thread(self._plan, now)
        waiting = [p for p in plans if p.start.at <= now and slot_lock(p.key) not in active]
        before = self.enqueued
        for p in waiting:
            await self._defer(p.key, p.spec.name, p.due)
        observe_queue(queued + self.enqueued - before)  # due and not yet running (metrics)
        cfg = self.session.config
        # Before this turn's cycle is claimed: a stretch without cycles (a stand-by elected after
        # the last scheduler died, a fleet down for hours) is reported even if this turn's runs.
        await check_stale(self.deadman, self.queue, cfg, now)
        await check_failing(self.deadman, self.store, cfg)
        if not self.cycle_busy and now >= self.next_cycle:
            await self._claim_cycle(now)
        watch_at = None if self.stop.is_set() else await self.watch.turn(self.session, self.store, self.clock, now,
                                                                          self.wake)
        wakes = [p.start.at for p in plans] + [self.next_cycle, self.deadman.deadline]
        if watch_at is not None:
            wakes.append(watch_at)
        future = [w for w in wakes if w > now]  # a past one (a cycle still running) would spin the loop
        return min(future) if future else now + timedelta(seconds=MAX_SLEEP)

    def _plan(self, now: datetime) -> list[Any]:
        complete, attempts = self.queue.history()
        added = {a.name: a.added_at for a in self.store.assets()}
        return self.settings.planner.plan(complete, attempts, added, now)

    async def _defer(self, key: str, asset: str, due: datetime) -> None:
        from procrastinate.exceptions import AlreadyEnqueued

        task = self.app.configure_task(TASK, queueing_lock=slot_lock(key), lock=asset_lock(asset))
        try:
            await task.defer_async(key=key, asset=asset, due=due.isoformat())
        except AlreadyEnqueued:
            return
        self.enqueued += 1

    async def recover_stalled(self) -> None:
        """Jobs of workers that stopped beating go back to the queue, for another worker."""
        from agent.scheduling.fleet_limits import TASK_NAMESPACE, task_key

        jm = self.app.job_manager
        for job in await jm.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=self.stall):
            if job.id is not None and await self._task_alive(TASK_NAMESPACE, task_key(job.id)):
                # Its worker is late beating, not dead: its database session still holds the task.
                if job.id not in self.late:
                    self.late.add(job.id)
                    log(f"job {job.id} ({job.queueing_lock}): its worker is silent but alive; left to it")
                continue
            try:
                await jm.retry_job(job)
            except Exception as exc:  # another scheduler (a split election) retried it first
                log(f"cannot hand job {job.id} back: {one_line(exc, named=True)}")
                continue
            log(f"job {job.id} ({job.queueing_lock}) of a silent worker handed back to the queue")
        await jm.prune_stalled_workers(self.stall)

    async def _task_alive(self, namespace: int, key: int) -> bool:
        """Whether a live session holds the task's liveness lock (tried, and let go at once)."""
        rows = await self.app.connector.execute_query_all_async(
            "SELECT CASE WHEN pg_try_advisory_lock(%(n)s, %(k)s) THEN NOT pg_advisory_unlock(%(n)s, %(k)s) "
            "ELSE true END AS alive", n=namespace, k=key)
        return bool(rows and rows[0]["alive"])

    # -- the evaluation cycle, as in the daemon ------------------------------------------------

    async def _claim_cycle(self, now: datetime) -> None:
        from schedules.slots import grid_slot
        from state.job_queue import JobKind, Wanted

        every = self.settings.cycle_every
        slot = grid_slot(now, every)
        self.next_cycle = slot + every
        key = f"cycle:{slot.isoformat()}"
        if not await asyncio.to_thread(self.queue.claim, [Wanted(key, JobKind.CYCLE, slot)], now, 1):
            return
        self.cycle_busy = True
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._cycle_thread, args=(loop, key, now), daemon=True,
                         name="posture-cycle").start()

    def _cycle_thread(self, loop: asyncio.AbstractEventLoop, key: str, now: datetime) -> None:
        error: str | None = None
        try:
            report = self.cycle(self.session, self.store, now)
            observe_deliveries(getattr(report, "deliveries", ()))
            for d in getattr(report, "deliveries", ()):
                if not d.ok:
                    log(f"{d.event.value} to {d.channel} failed: {d.error}")
        except Exception as exc:
            error = one_line(exc, named=True)
            log(f"evaluation cycle failed: {error}")
        finished = self.clock()
        try:
            self.queue.complete(key, finished, failed=error is not None, error=error)
        except StoreError as exc:
            log(f"cannot settle {key}: {exc}")
        loop.call_soon_threadsafe(self._cycle_done, finished if error is None else None)

    def _cycle_done(self, finished: datetime | None) -> None:
        self.cycle_busy = False
        if finished is not None:
            self.deadman.cycle_done(finished)
        self.wake.set()


async def serve(session: Session, store: Store, *, scheduler: bool, workers: bool) -> int:
    """The scheduler and/or this process's workers, until SIGTERM/SIGINT."""
    import signal

    from agent.monitoring.hooks import start_metrics, stop_metrics
    from agent.scanning.options import make_clock
    from agent.scanning.service import register_assets
    from agent.scheduling.fleet import Runtime, make_app, work

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signalled: list[int] = []  # SIGTERM/SIGINT received so far
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, loop, stop, signalled)
    loop.add_signal_handler(signal.SIGHUP, log, "SIGHUP: a fleet process reads its config at start; restart it")
    clock = make_clock(session.now)
    await asyncio.to_thread(register_assets, store, session.config.asset_specs(), clock())
    parts = []
    runtime: Runtime | None = None
    if scheduler:  # posture run serves [metrics]; posture worker does not (one port per host)
        start_metrics(session.config.metrics.listen, store, lambda: session.config, clock,
                      lambda: runtime.running if runtime is not None else 0)
    runtime = Runtime.build(session, store) if workers else None
    if runtime is not None:
        parts.append(asyncio.create_task(work(session, store, stop, runtime), name="workers"))
    app = make_app(store)
    try:
        async with app.open_async():
            sdnotify.notify("READY=1")
            if scheduler:
                parts.append(asyncio.create_task(Scheduler(session, store, app, clock, stop).run(),
                                                 name="scheduler"))
            await asyncio.wait(parts, return_when=asyncio.FIRST_EXCEPTION)
            stop.set()
            results = await asyncio.gather(*parts, return_exceptions=True)
    finally:
        stop_metrics()
    failed = [r for r in results if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)]
    for exc in failed:
        log(f"stopping: {one_line(exc, named=True)}")
    log("stopped")
    return 1 if failed else 0


def _on_signal(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, signalled: list[int]) -> None:
    """The first SIGTERM/SIGINT stops gracefully, within one deadline; a second one exits at once."""
    signalled.append(1)
    if len(signalled) > 1:
        _exit_now("a second stop signal: exiting now")
        return
    stop.set()
    limit = STOP_GRACE + STOP_EXTRA
    loop.call_later(limit, _exit_now, f"still stopping after {limit:g}s (the database unreachable?); exiting now")


def _exit_now(why: str) -> None:
    """Exit without waiting for what is stuck (a query to an unreachable database, a thread in
    one): the kernel closes the connections, the election lock goes with them."""
    import os

    log(why)
    os._exit(1)


def run_fleet(args: Any, *, scheduler: bool) -> int:
    """``posture run`` (``scheduler``; workers too unless ``[workers] in_process = false``) or
    ``posture worker`` on PostgreSQL."""
    from agent.errors import UsageError
    from agent.scheduling.daemon_setup import one_line_warnings
    from agent.session import Session

    one_line_warnings()
    session = Session.from_args(args)
    store = session.open_store()
    try:
        if store.dialect != "postgresql":
            raise UsageError("posture worker needs a PostgreSQL database ([agent] database or --db); "
                             "on SQLite, posture run scans in its own process")
        if not session.config.workers.fleet:
            raise UsageError("posture worker needs [workers] fleet = true in the config "
                             "(the same config as the scheduler's posture run)")
        workers = not scheduler or session.config.workers.in_process
        return asyncio.run(serve(session, store, scheduler=scheduler, workers=workers))
    finally:
        store.close()
