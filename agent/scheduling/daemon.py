"""``posture run``: the long-running agent.

One asyncio loop. Each turn it takes back jobs whose agent died, claims the scans
that are due (outside quiet hours) and starts them, starts the evaluation cycle
when its slot comes (acceptances, deadlines, cadence, alerts, the digest: the
alerting half of ``run --once``, in a thread), renews its leases and checks the
dead-man conditions; then it sleeps until the next due moment, a finished scan or
a signal. No polling: idle, it wakes only for what is due (and, under systemd,
for the watchdog ping).

Signals: SIGTERM/SIGINT stop claiming work, give running scans ``stop_grace``
seconds to finish (an evaluation cycle in progress too), then cancel them (each
stores what its probes finished as an interrupted scan, and its job goes back to
pending; an unfinished cycle is recorded as such); a second signal cancels at once.
SIGHUP re-reads the config; a bad one is reported in one line and the running config
kept. Everything is written to stderr, one line per event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError
from agent.monitoring.hooks import observe_deliveries, observe_queue, observe_scan, start_metrics, stop_metrics
from agent.scheduling import sdnotify
from agent.scheduling.cycle import alerting_cycle
from agent.scheduling.daemon_setup import Settings, log, one_line_warnings
from agent.scheduling.deadman import DeadMan
from agent.scheduling.scan_jobs import LEASE, Planned, owner_dead, owner_id, run_scan_job
from agent.scheduling.watch_timer import WatchTimer
from state.errors import StorageGone, StoreError
from state.job_queue import JobInfo, JobKind, JobQueue, LeaseLost, Wanted
from vocab import ScanStatus, one_line

if TYPE_CHECKING:
    from agent.scanning.options import ScanOutcome
    from agent.scheduling.daemon_setup import CycleFn as Cycle  # the evaluation cycle (tests pass their own)
    from agent.session import Session
    from state.store import Store

STOP_GRACE = 10.0  # seconds running scans get to finish after SIGTERM (systemd's stop timeout is longer)
MAX_SLEEP = 900.0  # re-check the clock at least this often (clock jumps, suspend)
PRUNE_EVERY = timedelta(days=1)
KEEP_JOBS = timedelta(days=30)



class Daemon:
    def __init__(self, args: argparse.Namespace, session: Session, store: Store, *, cycle: Cycle = alerting_cycle,
                 lease: timedelta = LEASE, stop_grace: float = STOP_GRACE) -> None:
        from agent.scanning.options import make_clock

        self.args = args
        self.store = store
        self.clock = make_clock(session.now)
        self.settings = Settings.build(session, self.clock)
        # One per-address limiter for the daemon's life, shared by every job (kept on SIGHUP).
        self.address_limits = self.settings.opts.address_limits
        self.queue = JobQueue(store, owner_id(), lease)
        self.cycle = cycle
        self.stop_grace = stop_grace
        self.running: dict[str, asyncio.Task[None]] = {}
        self.cycle_busy = False
        self.stopping = False
        self.forced = asyncio.Event()
        self.cycle_idle = asyncio.Event()  # set while no evaluation cycle runs
        self.cycle_idle.set()
        self.reload_requested = False
        self.wake = asyncio.Event()
        self.watchdog = sdnotify.watchdog_interval()
        now = self.clock()
        self.next_cycle = now
        self.next_prune = now
        self.next_renew = now
        self.deadman = DeadMan(2 * self.settings.planner.shortest, now)
        self.waiting_logged: set[str] = set()
        self.failures = 0
        self.watch = WatchTimer()  # [watch]: its own schedule, from storage
        self.fatal: str | None = None  # why the daemon must stop and exit non-zero (its storage vanished)

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        await self._start()
        while not self.stopping:
            if self.reload_requested:
                self.reload_requested = False
                await self._reload()
            self.wake.clear()
            try:
                wake_at = await self._turn()
                self.failures = 0
            except StorageGone as exc:
                self._gone(exc)
                break
            except (StoreError, AgentError) as exc:
                self.failures += 1
                delay = min(5 * 2 ** (self.failures - 1), 300)
                log(f"{exc} (retrying in {delay}s)")
                await self._check_stale(self.clock())
                wake_at = self.clock() + timedelta(seconds=delay)
            sdnotify.notify("WATCHDOG=1")
            await self._sleep_until(wake_at)
        await self._shutdown()
        return 0 if self.fatal is None else 1

    def _gone(self, exc: BaseException) -> None:
        """The database file vanished: stop now (systemd restarts us on a file that exists)."""
        if self.fatal is None:
            self.fatal = str(exc)
            log(f"{exc}: stopping")
        self.stopping = True
        self.forced.set()
        self.wake.set()

    async def _start(self) -> None:
        from agent.scanning.service import register_assets

        now = self.clock()
        specs = self.settings.session.config.asset_specs()
        await asyncio.to_thread(register_assets, self.store, specs, now)
        last = await asyncio.to_thread(self.queue.last_finished, JobKind.CYCLE)
        if last is not None:
            self.deadman.last_cycle = last  # an old one makes the first turn report the gap
        start_metrics(self.settings.session.config.metrics.listen, self.store, lambda: self.settings.session.config,
                      self.clock, lambda: len(self.running))
        sdnotify.notify(f"READY=1\nSTATUS=scheduling {len(specs)} assets")
        log(f"running as {self.queue.owner}: {len(specs)} assets, database {self.store.url}")

    async def _turn(self) -> datetime:
        s = self.settings
        now = self.clock()
        for r in await asyncio.to_thread(self.queue.recover, now, owner_dead):
            scan = f", scan {r.scan_id} marked interrupted" if r.scan_id else ""
            log(f"took back {r.key} from {r.owner}{scan}: {'runs again' if r.state == 'pending' else 'gave up'}")
        plans = await asyncio.to_thread(self._plan, now)
        ready = [p for p in plans if p.start.at <= now and p.key not in self.running]
        free = s.session.config.agent.concurrency - len(self.running)
        if ready and free > 0 and not self.stopping:
            wanted = [Wanted(p.key, JobKind.SCAN, p.due, p.spec.name) for p in ready]
            by_key = {p.key: p for p in ready}
            for job in await asyncio.to_thread(self.queue.claim, wanted, now, free):
                self._launch(job, by_key[job.key])
        self._log_waiting(plans, now)
        observe_queue(sum(1 for p in ready if p.key not in self.running))
        if not self.cycle_busy and now >= self.next_cycle:
            await self._claim_cycle(now)
        watch_at = None if self.stopping else await self.watch.turn(s.session, self.store, self.clock, now, self.wake)
        if self.running and now >= self.next_renew:
            await self._renew(now)
        await self._check_stale(now)
        await self._check_failing()
        if now >= self.next_prune:
            self.next_prune = now + PRUNE_EVERY
            await asyncio.to_thread(self.queue.prune, now - KEEP_JOBS)
        wakes = [p.start.at for p in plans] + [self.next_cycle, self.deadman.deadline, self.next_prune]
        if self.running:
            wakes.append(self.next_renew)
        if watch_at is not None:
            wakes.append(watch_at)
        if any(p.key not in self.running for p in ready):
            # Held by another agent (or no free slot): look again later, not in a tight loop.
            wakes.append(now + min(s.planner.shortest, self.queue.lease / 3))
        # Only future moments: a past one (a cycle still running, a dead-man already
        # reported) would spin the loop; finished scans and cycles wake it anyway.
        return min((w for w in wakes if w > now), default=now + timedelta(seconds=MAX_SLEEP))

    def _plan(self, now: datetime) -> list[Planned]:
        complete, attempts = self.queue.history()
        added = {a.name: a.added_at for a in self.store.assets()}
        return self.settings.planner.plan(complete, attempts, added, now)

    async def _sleep_until(self, when: datetime) -> None:
        if self.wake.is_set() or self.stopping:
            return
        timeout = max((when - self.clock()).total_seconds(), 0.0) + 0.005  # past the due moment, not before
        timeout = min(timeout, MAX_SLEEP, self.watchdog or MAX_SLEEP)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)

    # -- scans --------------------------------------------------------------------------

    def _launch(self, job: JobInfo, plan: Planned) -> None:
        task = asyncio.create_task(self._scan(job, plan), name=job.key)
        self.running[job.key] = task
        self.waiting_logged.discard(plan.spec.name)

        def done(_task: asyncio.Task[None]) -> None:
            self.running.pop(job.key, None)
            self.wake.set()

        task.add_done_callback(done)

    async def _scan(self, job: JobInfo, plan: Planned) -> None:
        name = plan.spec.name
        attempt = f" (attempt {job.attempts})" if job.attempts > 1 else ""
        log(f"scanning {name}: due {plan.due.isoformat(timespec='seconds')}{attempt}")
        try:
            outcome = await run_scan_job(self.queue, job, plan.spec, self.settings.opts)
        except asyncio.CancelledError:
            log(f"scan of {name} interrupted; it runs again at the next start")
            return
        except LeaseLost as exc:
            log(str(exc))
            return
        except StorageGone as exc:
            self._gone(exc)
            return
        except (StoreError, AgentError) as exc:
            log(f"scan of {name}: {exc}")
            await asyncio.to_thread(self._settle_quietly, job.key, str(exc))
            return
        except Exception as exc:  # a bug must cost one scan, never the daemon
            text = one_line(exc, named=True)
            log(f"scan of {name}: internal error: {text}")
            await asyncio.to_thread(self._settle_quietly, job.key, text)
            return
        record = outcome.record
        observe_scan(record)
        if record.status is ScanStatus.INTERRUPTED:
            log(f"scan of {name} interrupted; it runs again at the next start")
            return
        log(f"scan of {name}: {record.status.value}" + (f" ({record.error})" if record.error else ""))
        stored = outcome.stored
        if stored is not None and (stored.opened or stored.reopened):
            await asyncio.to_thread(self._alert_new, outcome)

    def _settle_quietly(self, key: str, error: str) -> None:
        try:
            self.queue.complete(key, self.clock(), failed=True, error=error)
        except StoreError as exc:
            log(f"cannot settle {key} ({exc}); its lease will expire")

    def _alert_new(self, outcome: ScanOutcome) -> None:
        """New critical/high findings go out at once, as after ``posture scan``."""
        from agent.notify.dispatch import alert_new_findings

        try:
            sent = alert_new_findings(self.settings.session, [outcome], self.clock(), store=self.store)
            observe_deliveries(sent)
        except StoreError as exc:
            log(f"cannot alert the new findings of {outcome.asset.name}: {exc} (the next cycle will)")
            return
        for d in sent:
            if not d.ok:
                log(f"alert to {d.channel} failed: {d.error}")

    async def _renew(self, now: datetime) -> None:
        self.next_renew = now + self.queue.lease / 3
        keys = list(self.running)
        held = await asyncio.to_thread(self.queue.renew, keys, now)
        for key in set(keys) - held:
            log(f"lost the lease of {key} to another agent; stopping this run of it")
            task = self.running.get(key)
            if task is not None:
                task.cancel()

    def _log_waiting(self, plans: list[Planned], now: datetime) -> None:
        for p in plans:
            w = p.waiting(now)
            if w is not None and p.spec.name not in self.waiting_logged:
                self.waiting_logged.add(p.spec.name)
                if w.reason == "quiet window":
                    why = f"is due but in its quiet window ({w.detail})"
                else:
                    why = f"is due and waits ({w.reason}{': ' + w.detail if w.detail else ''})"
                log(f"{p.spec.name} {why}; scanning at {w.until.isoformat(timespec='seconds')}")

    # -- the evaluation cycle -------------------------------------------------------------

    async def _claim_cycle(self, now: datetime) -> None:
        from schedules.slots import grid_slot

        every = self.settings.cycle_every
        slot = grid_slot(now, every)
        self.next_cycle = slot + every
        key = f"cycle:{slot.isoformat()}"
        claimed = await asyncio.to_thread(self.queue.claim, [Wanted(key, JobKind.CYCLE, slot)], now, 1)
        if not claimed:
            return  # another agent has this slot
        self.cycle_busy = True
        self.cycle_idle.clear()
        loop = asyncio.get_running_loop()
        settings = self.settings
        # A plain daemon thread, not the default executor: a send stuck in a slow
        # channel must not hold up shutdown (an unfinished cycle job is recovered).
        threading.Thread(target=self._cycle_thread, args=(loop, key, settings, now), daemon=True,
                         name="posture-cycle").start()

    def _cycle_thread(self, loop: asyncio.AbstractEventLoop, key: str, settings: Settings, now: datetime) -> None:
        error: str | None = None
        try:
            report = self.cycle(settings.session, self.store, now)
            observe_deliveries(getattr(report, "deliveries", ()))
            for d in getattr(report, "deliveries", ()):
                if not d.ok:
                    log(f"{d.event.value} to {d.channel} failed: {d.error}")
        except StorageGone as exc:
            loop.call_soon_threadsafe(self._gone, exc)
            return
        except Exception as exc:  # reported, and the dead-man timer keeps counting
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
        self.cycle_idle.set()
        if finished is not None:
            self.deadman.cycle_done(finished)
        self.wake.set()

    # -- dead-man -----------------------------------------------------------------------

    async def _check_stale(self, now: datetime) -> None:
        from agent.scheduling.deadman import check_stale

        await check_stale(self.deadman, self.queue, self.settings.session.config, now)

    async def _check_failing(self) -> None:
        from agent.scheduling.deadman import check_failing

        await check_failing(self.deadman, self.store, self.settings.session.config)

    # -- signals, reload, shutdown --------------------------------------------------------

    def _on_stop(self, name: str) -> None:
        if self.stopping:
            log(f"{name} again: cancelling running scans now")
            self.forced.set()
            return
        self.stopping = True
        sdnotify.notify("STOPPING=1")
        log(f"{name}: stopping (no new scans; {len(self.running)} running)")
        self.wake.set()

    def _on_hup(self) -> None:
        self.reload_requested = True
        self.wake.set()

    async def _reload(self) -> None:
        from agent.config import load_config
        from agent.scanning.service import register_assets
        from agent.session import Session

        old = self.settings.session
        try:
            cfg, digest = load_config(self.args.config)
            settings = Settings.build(Session(cfg, digest, old.db_url, old.now), self.clock, self.address_limits)
        except AgentError as exc:
            log(f"SIGHUP: config not reloaded, keeping the running one: {exc}")
            return
        self.settings = settings
        self.deadman.threshold = 2 * settings.planner.shortest
        self.next_cycle = min(self.next_cycle, self.clock() + settings.cycle_every)
        self.waiting_logged.clear()
        specs = cfg.asset_specs()
        try:
            await asyncio.to_thread(register_assets, self.store, specs, self.clock())
        except StoreError as exc:
            log(f"SIGHUP: cannot register the assets ({exc}); the next turn retries")
        sdnotify.notify(f"STATUS=scheduling {len(specs)} assets")
        log(f"SIGHUP: config reloaded ({len(specs)} assets, config {digest})")

    async def _shutdown(self) -> None:
        tasks = list(self.running.values())
        if tasks or self.cycle_busy:
            what = f"{len(tasks)} running scan(s)" + (" and the evaluation cycle" if self.cycle_busy else "")
            log(f"waiting up to {self.stop_grace:g}s for {what}")
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.cycle_idle.wait())]
            if tasks:
                waits.append(asyncio.ensure_future(asyncio.wait(tasks)))
            finished = asyncio.ensure_future(asyncio.gather(*waits))
            forced = asyncio.create_task(self.forced.wait())
            await asyncio.wait([finished, forced], timeout=self.stop_grace, return_when=asyncio.FIRST_COMPLETED)
            finished.cancel()
            forced.cancel()
            for w in waits:
                w.cancel()
            # Retrieved, so no "exception was never retrieved" line reaches the log.
            await asyncio.gather(finished, forced, *waits, return_exceptions=True)
            for task in tasks:
                task.cancel()  # each stores its scan as interrupted and gives its job back
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            for r in await asyncio.to_thread(self.queue.abandon, self.clock()):
                log(f"released {r.key}" + (f" (scan {r.scan_id} marked interrupted)" if r.scan_id else ""))
        except StoreError as exc:
            log(f"cannot release held jobs ({exc}); they are recovered when their lease ends")
        stop_metrics()
        log("stopped")


def run_daemon(args: argparse.Namespace) -> int:
    """``posture run`` without ``--once``: returns 0 after a clean stop."""
    from agent.session import Session

    one_line_warnings()
    session = Session.from_args(args)
    store = session.open_store()
    if store.dialect == "postgresql" and session.config.workers.fleet:  # scheduler (+ workers) over procrastinate
        store.close()
        from agent.scheduling.fleet_scheduler import run_fleet

        return run_fleet(args, scheduler=True)
    try:
        daemon = Daemon(args, session, store)
        return asyncio.run(daemon.run())
    finally:
        store.close()
