"""Scheduled scans as claimed jobs: which scans are due, and running one claimed job.

The daemon and ``posture run --once`` share this, the one scan planner: :class:`ScanPlanner`
turns the config and the history into job keys (``scan:ASSET:DUE``) by the rules of
:mod:`schedules.slots` (a never-scanned asset on the first run, jitter only afterwards),
and says what waits, until when and why (jitter, quiet window, lease); :class:`state.job_queue.JobQueue`
decides who runs each one, and :func:`run_scan_job` runs a claimed job so that its
scan row and the job row change together (a crash leaves nothing half-done that
the next start cannot recognise and redo).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from agent.scanning.quiet_policy import QuietPolicy
from schedules.slots import JITTER, Slot, Start, plan_slot, start_time
from schedules.timing import Schedule, parse_duration, parse_schedule

if TYPE_CHECKING:
    from agent.config import Config
    from agent.scanning.options import ScanOptions, ScanOutcome
    from agent.targets import AssetSpec
    from state.job_queue import JobInfo, JobQueue

# A claimed job's lease, renewed every third of it by the daemon; a dead agent's work waits this
# long elsewhere. The daemon and ``run --once`` claim with it alike.
LEASE = timedelta(minutes=5)
NO_JITTER = frozenset({"0", "off", "0s", "0m"})


# -- who holds a claim ----------------------------------------------------------------


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return "?"


def _start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): tells a reused PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def owner_id(pid: int | None = None) -> str:
    """``host/pid-namespace/pid/start``: unique per process, and checkable on this host."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{_pid_namespace()}/{pid}/{_start_ticks(pid) or '?'}"


def owner_dead(owner: str) -> bool:
    """True only when ``owner`` was a process of this host and PID namespace that is gone.

    Anything else (another machine, another container) is left to its lease.
    """
    parts = owner.split("/")
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[1] != _pid_namespace() or parts[1] == "?":
        return False
    try:
        pid = int(parts[2])
    except ValueError:
        return False
    return _start_ticks(pid) != parts[3]


# -- what is due ------------------------------------------------------------------------


def scan_key(asset: str, due: datetime) -> str:
    return f"scan:{asset}:{due.astimezone(UTC).isoformat()}"


@dataclass(frozen=True)
class Waiting:
    """A scan that is due (or would be, but for its jitter) and waits."""

    asset: str
    until: datetime
    reason: str  # jitter | quiet window | lease | retry
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"asset": self.asset, "until": self.until.isoformat(), "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Planned:
    spec: AssetSpec
    key: str
    due: datetime  # the slot: names the job
    start: Start  # when it may start (after any quiet window)
    slot: Slot | None = None

    def waiting(self, now: datetime) -> Waiting | None:
        """Why this scan does not start at ``now`` though it is due (or due but for jitter), or None."""
        name = self.spec.name
        if self.start.at <= now:
            return None
        if self.start.quiet and self.due <= now:
            return Waiting(name, self.start.at, "quiet window", self.start.quiet)
        slot = self.slot
        if slot is not None and slot.nominal <= now < slot.due and slot.delay:
            reason = "jitter" if slot.delay == JITTER else "retry"
            return Waiting(name, slot.due, reason, "" if reason == "jitter" else slot.delay)
        return None


class ScanPlanner:
    """The scan schedule of one config: per-asset schedule, jitter span and quiet windows."""

    def __init__(self, cfg: Config) -> None:
        tz = cfg.agent.timezone
        self.specs = cfg.asset_specs()
        default = parse_schedule(cfg.schedule.scan_every, tz)
        self.schedules: dict[str, Schedule] = {
            s.name: parse_schedule(s.scan_every, tz) if s.scan_every else default for s in self.specs
        }
        jitter = cfg.schedule.jitter.strip()
        self.jitter = timedelta(0) if jitter in NO_JITTER else parse_duration(jitter)
        self.quiet = QuietPolicy.from_config(cfg)
        self.tz = tz
        self.warned: set[str] = set()  # assets whose stored scan times were found in the future

    @property
    def shortest(self) -> timedelta:
        """The shortest nominal scan period (what the dead-man timer is measured in)."""
        return min((s.nominal for s in self.schedules.values()), default=timedelta(days=7))

    def plan(self, complete: dict[str, datetime], attempts: dict[str, datetime], added: dict[str, datetime],
             now: datetime) -> list[Planned]:
        import sys

        from schedules.slots import in_future
        from vocab import escape

        out = []
        for spec in self.specs:
            stored = [t for t in (complete.get(spec.name), attempts.get(spec.name)) if t is not None]
            ahead = max((t for t in stored if in_future(t, now)), default=None)
            if ahead is not None and spec.name not in self.warned:
                self.warned.add(spec.name)  # once per asset and process: the planner runs every turn
                sys.stderr.write(escape(f"posture: {spec.name}: its last scan is stored at {ahead.isoformat()}, after "
                                        f"the clock ({now.isoformat()}); the clock went back? Scheduling from now")
                                 + "\n")
            slot = plan_slot(self.schedules[spec.name], spec.name, last_complete=complete.get(spec.name),
                             last_attempt=attempts.get(spec.name), added=added.get(spec.name, now), now=now,
                             jitter=self.jitter)
            start = start_time(slot.due, now, self.quiet.windows(spec), self.tz, self.quiet.holidays)
            out.append(Planned(spec, scan_key(spec.name, slot.due), slot.due, start, slot))
        return out


# -- running one claimed scan job -------------------------------------------------------


async def run_scan_job(queue: JobQueue, job: JobInfo, spec: AssetSpec, opts: ScanOptions,
                       on_done: Callable[[ScanOutcome], None] | None = None) -> ScanOutcome:
    """Run a claimed scan job: RUNNING row and job linked, then scan, then both settled.

    Cancelled (the agent is stopping), the scan stores what its probes finished as an
    interrupted scan and the job goes back to pending, to run again at the next start.
    """
    from agent.scanning.options import asset_record
    from agent.scanning.runner import Scanner
    from state.lifecycle import ScanHeader
    from state.records import ScanRecord, ScanStatus

    started = opts.clock()
    header = ScanHeader(
        started_at=started, trigger=opts.trigger, full=opts.probes is None, forced_active=False,
        posture_version=opts.posture_version, catalog_version=_catalog_version(), config_hash=opts.config_hash,
    )
    scan_id = await asyncio.to_thread(queue.start_scan, job.key, asset_record(spec), header)
    scanner = Scanner(opts)
    try:
        outcome = await scanner.scan(spec)
    except asyncio.CancelledError:
        # Stopped before the probes began (e.g. while resolving): record that, synchronously,
        # since this task is going away.
        record = ScanRecord(
            asset=asset_record(spec), status=ScanStatus.INTERRUPTED, started_at=started,
            finished_at=opts.clock(), posture_version=opts.posture_version,
            catalog_version=header.catalog_version, config_hash=opts.config_hash, trigger=opts.trigger,
            full=header.full, error="the agent stopped before the scan's probes ran",
        )
        queue.finish_scan(job.key, scan_id, record, opts.clock())
        raise
    finally:
        await asyncio.shield(scanner.aclose())
    outcome.stored = await asyncio.to_thread(queue.finish_scan, job.key, scan_id, outcome.record, opts.clock())
    if on_done is not None:
        on_done(outcome)
    return outcome


def _catalog_version() -> str:
    from probes.catalog import load_catalog

    return load_catalog().version


async def run_due_scans(cfg: Config, queue: JobQueue, opts: ScanOptions, now: datetime,
                        specs: Sequence[AssetSpec] | None = None,
                        on_done: Callable[[ScanOutcome], None] | None = None,
                        waiting: list[Waiting] | None = None) -> list[ScanOutcome]:
    """Claim and run every scan due at ``now`` (outside quiet hours): ``posture run --once``.

    Jobs another agent holds are left to it; leases are renewed while the scans run. What
    waits (jitter, quiet window, lease, retry) is appended to ``waiting``.
    """
    planner = ScanPlanner(cfg)
    if specs is not None:
        planner.specs = list(specs)
    jobs, by_key, waits = await asyncio.to_thread(claim_due, planner, queue, now, cfg.agent.concurrency * 64)
    if waiting is not None:
        waiting.extend(waits)
    if not jobs:
        return []
    gate = asyncio.Semaphore(cfg.agent.concurrency)

    async def one(job: JobInfo) -> ScanOutcome:
        async with gate:
            return await run_scan_job(queue, job, by_key[job.key].spec, opts, on_done)

    renewer = asyncio.create_task(_renew_forever(queue, [j.key for j in jobs], opts))
    try:
        return list(await asyncio.gather(*(one(j) for j in jobs)))
    finally:
        renewer.cancel()


def claim_due(planner: ScanPlanner, queue: JobQueue, now: datetime,
              limit: int) -> tuple[list[JobInfo], dict[str, Planned], list[Waiting]]:
    """Recover abandoned jobs, then claim the due ones that may start now; and what waits."""
    from state.job_queue import JobKind, Wanted

    queue.recover(now, owner_dead)
    added = {a.name: a.added_at for a in queue.store.assets()}
    plans = planner.plan(*queue.history(), added, now)
    ready = {p.key: p for p in plans if p.start.at <= now}
    wanted = [Wanted(p.key, JobKind.SCAN, p.due, p.spec.name) for p in ready.values()]
    claimed = queue.claim(wanted, now, limit)
    waits = [w for p in plans if (w := p.waiting(now)) is not None]
    left = {p.spec.name for key, p in ready.items() if key not in {j.key for j in claimed}}
    if left:
        waits += leased(queue, left, now)
    return claimed, ready, waits


def leased(queue: JobQueue, assets: set[str], now: datetime) -> list[Waiting]:
    """Due scans another agent is running (or holds): they wait for its lease."""
    from state.job_queue import JobKind, JobState

    out = []
    for job in queue.jobs(JobKind.SCAN):
        if job.asset in assets and job.state == JobState.RUNNING and job.owner != queue.owner:
            until = job.lease_until or now
            out.append(Waiting(job.asset, until, "lease", f"held by {job.owner}"))
            assets.discard(job.asset)
    return out


async def _renew_forever(queue: JobQueue, keys: list[str], opts: ScanOptions) -> None:
    interval = max(queue.lease.total_seconds() / 3, 0.5)
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(queue.renew, keys, opts.clock())
