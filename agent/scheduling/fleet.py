"""Scans as procrastinate tasks, for agents sharing one PostgreSQL database.

On PostgreSQL ``posture run`` is the scheduler (:mod:`agent.scheduling.fleet_scheduler`)
and, unless ``[workers] in_process = false``, a worker too; ``posture worker`` is a
worker only, on any number of machines. procrastinate (imported only here, only on
PostgreSQL) carries the tasks: one task per scheduled scan, ``queueing_lock`` the
slot's key (``scan:ASSET:DUE``) so a slot is queued once, and ``lock`` the asset so
two scans of one asset never run at once. Workers beat every quarter of
``[workers] stall_timeout``; the scheduler hands the jobs of a worker silent for
longer to the others, once its database session is gone too (a running task holds a
liveness advisory lock there: a worker only late beating keeps its job).

A task (:func:`run_task`) checks the asset's quiet window at the moment it runs
(whichever worker runs it), takes the slot in the ledger (:func:`state.task_ledger.adopt`:
a slot already stored makes it a no-op, a dead attempt's scan is marked interrupted),
then runs the scan through :func:`agent.scheduling.scan_jobs.run_scan_job`, the scan
and the ledger row committing together as in the single-process daemon. Connections
to an address are bounded for the whole fleet by :class:`FleetAddressLimits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError
from agent.monitoring.hooks import observe_scan
from agent.scheduling.daemon_setup import Settings, log
from agent.scheduling.scan_jobs import owner_id, run_scan_job
from state.errors import StoreError
from vocab import ScanStatus, one_line

if TYPE_CHECKING:
    from procrastinate import App

    from agent.scanning.options import Clock, ScanOutcome
    from agent.scheduling.fleet_limits import FleetAddressLimits
    from agent.session import Session
    from state.store import Store

QUEUE = "posture-scans"
TASK = "posture.scan"
STOP_GRACE = 10.0  # seconds running scans get to finish when a worker stops; then they are interrupted
STOP_DEADLINE = STOP_GRACE + 5.0  # a stopping worker is gone by then, database reachable or not
POOL_WAIT = 5.0  # seconds a database call waits for a connection before it fails (psycopg_pool: 30)
RETRY_FIRST, RETRY_MAX = 5.0, 60.0  # the pause before running the workers again after a database error
UNCONFIGURED = "asset no longer configured"


class WorkerStuck(AgentError):
    """The workers did not stop by :data:`STOP_DEADLINE`: the process exits anyway, non-zero."""


def conninfo(store: Store) -> str:
    """The libpq URL of the store's PostgreSQL database (password included: never shown)."""
    return store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def slot_lock(key: str) -> str:
    return key  # the scan slot's key: scan:ASSET:DUE


def asset_lock(asset: str) -> str:
    return f"posture-asset:{asset}"


@dataclass
class Runtime:
    """What a worker process scans with: its config, store, clock and fleet-wide limits."""

    settings: Settings
    store: Store
    clock: Clock
    limits: FleetAddressLimits
    owner: str
    running: int = 0  # scans this process is running now (the metrics endpoint reads it)

    @classmethod
    def build(cls, session: Session, store: Store) -> Runtime:
        from agent.scanning.options import make_clock
        from agent.scheduling.fleet_limits import FleetAddressLimits

        clock = make_clock(session.now)
        settings = Settings.build(session, clock)
        lim = settings.opts.limits  # the same per-address bound and request budget as the daemon's
        limits = FleetAddressLimits(conninfo(store), lim.per_host_concurrency, lim.host_budget,
                                    window=lim.budget_window, keepalive=session.config.workers.stall_timeout)
        opts = dataclasses.replace(settings.opts, address_limits=limits)
        return cls(dataclasses.replace(settings, opts=opts), store, clock, limits, owner_id())


def make_app(store: Store, runtime: Runtime | None = None) -> App:
    """The procrastinate app on the store's database, with the scan task (run only with a runtime)."""
    from procrastinate import App, JobContext, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=conninfo(store), timeout=POOL_WAIT))

    @app.task(name=TASK, queue=QUEUE, pass_context=True)
    async def scan(context: JobContext, key: str, asset: str, due: str) -> str:
        if runtime is None:
            raise RuntimeError("this process runs no workers")
        job_id = context.job.id if context.job is not None else None
        if job_id is None:
            return await run_task(runtime, key, asset, datetime.fromisoformat(due), job_id)
        if not await _hold(runtime, job_id):
            log(f"{key}: an earlier attempt of job {job_id} is still running; not scanned twice")
            return "running elsewhere"
        try:
            return await run_task(runtime, key, asset, datetime.fromisoformat(due), job_id)
        finally:
            await asyncio.shield(runtime.limits.release_task(job_id))

    return app


async def _hold(rt: Runtime, job_id: int) -> bool:
    """:meth:`FleetAddressLimits.hold_task`, once more on a new session if the database ended
    the old one (an outage or a restart since the last task)."""
    from psycopg import OperationalError

    try:
        return await rt.limits.hold_task(job_id)
    except OperationalError:
        return await rt.limits.hold_task(job_id)


async def run_task(rt: Runtime, key: str, asset: str, due: datetime, job_id: int | None) -> str:
    """One scan task; returns what happened, in a word or two (procrastinate keeps it in its log)."""
    from agent.scheduling.scan_jobs import ScanPlanner
    from schedules.slots import start_time
    from state.job_queue import JobQueue
    from state.task_ledger import TASK_LEASE, adopt, release_waiting

    s = rt.settings
    spec = next((x for x in s.planner.specs if x.name == asset), None)
    if spec is None:
        log(f"{key}: {asset} is no longer configured; not scanned")
        return await asyncio.to_thread(_settle_unconfigured, rt, key, asset, due, f"{rt.owner}/job{job_id}")
    planner: ScanPlanner = s.planner
    now = rt.clock()
    start = start_time(due, now, planner.quiet.windows(spec), planner.tz, planner.quiet.holidays)
    if start.at > now:  # queued before its quiet window began: the scheduler queues it again after
        log(f"{asset} is in its quiet window ({start.quiet}); not scanned before "
            f"{start.at.isoformat(timespec='seconds')}")
        return "quiet"
    owner = f"{rt.owner}/job{job_id}"
    taken = await asyncio.to_thread(adopt, rt.store, key, asset, due, owner, now)
    if taken.interrupted is not None:
        log(f"{key}: scan {taken.interrupted} of a worker that died marked interrupted")
    if taken.job is None:
        log(f"{key}: not scanned ({'already stored' if taken.why == 'stored' else taken.why})")
        return taken.why
    start2 = start_time(due, rt.clock(), planner.quiet.windows(spec), planner.tz, planner.quiet.holidays)
    if start2.at > rt.clock():  # the window began while taking the slot
        await asyncio.to_thread(release_waiting, rt.store, key, owner, "quiet window")
        return "quiet"
    queue = JobQueue(rt.store, owner, TASK_LEASE)
    attempt = f" (attempt {taken.job.attempts})" if taken.job.attempts > 1 else ""
    log(f"scanning {asset}: due {due.isoformat(timespec='seconds')}{attempt}")
    rt.running += 1
    try:
        outcome = await run_scan_job(queue, taken.job, spec, s.opts)
    except (StoreError, Exception) as exc:
        text = str(exc) if isinstance(exc, StoreError) else f"internal error: {one_line(exc, named=True)}"
        log(f"scan of {asset}: {text}")
        try:
            await asyncio.to_thread(queue.complete, key, rt.clock(), failed=True, error=text)
        except StoreError:
            raise exc from None  # the ledger says RUNNING: the next attempt takes it over
        return "failed"
    finally:
        rt.running -= 1
    record = outcome.record
    observe_scan(record)  # the metrics endpoint's counters, when this process serves one
    log(f"scan of {asset}: {record.status.value}" + (f" ({record.error})" if record.error else ""))
    if record.status is not ScanStatus.INTERRUPTED and outcome.stored is not None \
            and (outcome.stored.opened or outcome.stored.reopened):
        await asyncio.to_thread(_alert_new, rt, outcome)
    return record.status.value


def _settle_unconfigured(rt: Runtime, key: str, asset: str, due: datetime, owner: str) -> str:
    """A slot whose asset left the config: a dead attempt's scan is marked interrupted and the
    slot ends failed, never left running (a slot never taken stays as it is: no row is made)."""
    from state.job_queue import JobQueue, JobState
    from state.task_ledger import TASK_LEASE, adopt

    queue = JobQueue(rt.store, owner, TASK_LEASE)
    try:
        held = queue.get(key)
        if held is None or held.state is not JobState.RUNNING:
            return "unconfigured"
        now = rt.clock()
        taken = adopt(rt.store, key, asset, due, owner, now)  # marks the dead attempt's scan interrupted
        if taken.interrupted is not None:
            log(f"{key}: scan {taken.interrupted} of a worker that died marked interrupted")
        if taken.job is not None:
            queue.complete(key, now, failed=True, error=UNCONFIGURED)
    except StoreError as exc:
        log(f"{key}: cannot settle the slot of the unconfigured {asset}: {exc}")
    return "unconfigured"


def _alert_new(rt: Runtime, outcome: ScanOutcome) -> None:
    """New critical/high findings go out at once; the delivery log sends each once, fleet-wide."""
    from agent.notify.dispatch import alert_new_findings

    try:
        for d in alert_new_findings(rt.settings.session, [outcome], rt.clock(), store=rt.store):
            if not d.ok:
                log(f"alert to {d.channel} failed: {d.error}")
    except StoreError as exc:
        log(f"cannot alert the new findings of {outcome.asset.name}: {exc} (the next cycle will)")


def worker_options(session: Session, name: str) -> dict[str, Any]:
    """procrastinate worker options from ``[workers]``."""
    w = session.config.workers
    return {
        "queues": [QUEUE], "concurrency": w.concurrency, "name": name, "install_signal_handlers": False,
        "update_heartbeat_interval": max(w.stall_timeout / 4, 0.5), "stalled_worker_timeout": w.stall_timeout,
        "shutdown_graceful_timeout": STOP_GRACE, "listen_notify": True, "fetch_job_polling_interval": 2.0,
    }


async def work(session: Session, store: Store, stop: asyncio.Event, runtime: Runtime | None = None) -> None:
    """Run this process's workers until ``stop`` is set (then let running scans finish, briefly).

    A database error stops procrastinate's worker: it is logged and the workers run again
    after a pause (5 s, doubling up to a minute), until ``stop``. Once stopping, the workers
    are gone within :data:`STOP_DEADLINE`, or :class:`WorkerStuck` is raised: the process
    exits non-zero.
    """
    from agent.scanning.service import register_assets

    runtime = runtime or Runtime.build(session, store)
    await asyncio.to_thread(register_assets, store, session.config.asset_specs(), runtime.clock())
    app = make_app(store, runtime)
    opts = worker_options(session, f"posture-worker {runtime.owner}")
    log(f"worker {runtime.owner}: {opts['concurrency']} scan(s) at once, database {store.url}")
    try:
        await _work_until_stopped(app, opts, stop)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runtime.limits.aclose(), POOL_WAIT)


async def _work_until_stopped(app: App, opts: dict[str, Any], stop: asyncio.Event) -> None:
    from procrastinate.exceptions import ConnectorException
    from psycopg import Error as PsycopgError

    loop = asyncio.get_running_loop()
    pause = RETRY_FIRST
    while not stop.is_set():
        began = loop.time()
        attempt = asyncio.create_task(_run_workers(app, opts))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([attempt, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not attempt.done():
            await _stop_within(attempt, STOP_DEADLINE)
            return
        try:
            attempt.result()
            return  # procrastinate's worker ended by itself
        except (ConnectorException, PsycopgError) as exc:
            if loop.time() - began > RETRY_MAX:
                pause = RETRY_FIRST  # it ran a while: an outage begins, not a long one goes on
            log(f"workers stopped by a database error ({one_line(exc, named=True)}); "
                f"running them again in {pause:g} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
        pause = min(pause * 2, RETRY_MAX)


async def _run_workers(app: App, opts: dict[str, Any]) -> None:
    async with app.open_async():
        await app.run_worker_async(**opts)


async def _stop_within(attempt: asyncio.Task[None], deadline: float) -> None:
    """Stop the workers: procrastinate gives running scans STOP_GRACE seconds; all is over by
    ``deadline`` seconds, database reachable or not. (A second SIGTERM/SIGINT exits at once:
    :func:`agent.scheduling.fleet_scheduler.serve` handles the signals.)"""
    attempt.cancel()  # procrastinate stops gracefully: running scans get STOP_GRACE seconds
    await asyncio.wait([attempt], timeout=deadline)
    if attempt.done():
        error = None if attempt.cancelled() else attempt.exception()
        if error is not None:
            log(f"workers stopped with an error: {one_line(error, named=True)}")
        return
    attempt.cancel()  # no more grace: running scans are left to the next worker (handed back)
    raise WorkerStuck(f"the workers did not stop within {deadline:g} s (the database unreachable?); "
                      "their running scans are left to the next worker")
