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

    app = App(connector=PsycopgConnector(conninfo=conninfo(store)))

    @app.task(name=TASK, queue=QUEUE, pass_context=True)
    async def scan(context: JobContext, key: str, asset: str, due: str) -> str:
        if runtime is None:
            raise RuntimeError("this process runs no workers")
        job_id = context.job.id if context.job is not None else None
        if job_id is None:
            return await run_task(runtime, key, asset, datetime.fromisoformat(due), job_id)
        if not await runtime.limits.hold_task(job_id):
            log(f"{key}: an earlier attempt of job {job_id} is still running; not scanned twice")
            return "running elsewhere"
        try:
            return await run_task(runtime, key, asset, datetime.fromisoformat(due), job_id)
        finally:
            await asyncio.shield(runtime.limits.release_task(job_id))

    return app


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
        return "unconfigured"
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
    """Run this process's workers until ``stop`` is set (then let running scans finish, briefly)."""
    from agent.scanning.service import register_assets

    runtime = runtime or Runtime.build(session, store)
    await asyncio.to_thread(register_assets, store, session.config.asset_specs(), runtime.clock())
    app = make_app(store, runtime)
    try:
        async with app.open_async():
            opts = worker_options(session, f"posture-worker {runtime.owner}")
            worker = asyncio.create_task(app.run_worker_async(**opts))
            stopper = asyncio.create_task(stop.wait())
            log(f"worker {runtime.owner}: {opts['concurrency']} scan(s) at once, database {store.url}")
            await asyncio.wait([worker, stopper], return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not worker.done():
                worker.cancel()  # procrastinate stops gracefully: running scans get STOP_GRACE seconds
            with contextlib.suppress(asyncio.CancelledError):
                await worker
    finally:
        await runtime.limits.aclose()

