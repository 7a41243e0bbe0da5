"""Scans of many assets on every core: groups that share no address, one worker process each.

The scan is CPU-bound (TLS handshakes, parsing, judging) and Python runs it on one core.
For a scan of many assets this module resolves every asset's host (and the hosts of the
origins it lists) once, in the parent, joins assets that share any resolved address into
one group, and hands the groups to worker processes. No address is ever scanned by two
processes, so each worker's per-address concurrency and request budget
(:class:`~probes.net.scope.AddressLimits`) stay exact, and each worker scans the addresses
the parent resolved (``ScanOptions.resolved``), not a second answer of the DNS.

Workers send each finished scan back at once; the parent stores it (``on_done``) exactly as
a scan in one process does. A worker that dies becomes a failed scan, with the reason, for
each asset it had not sent back: never a lost record and never a traceback.

How workers start. The parent cannot simply ``fork``: it may hold threads (the start-up
collector timer, a caller's) and database connections, and a forked child would inherit
locks held by threads that do not exist in it and sockets it must not use. A ``spawn``
worker is safe but imports everything again (about 0.3 s of CPU before its first scan, more
during it) and shares no memory. So workers come from a fork server (``forkserver``): a
fresh interpreter that the first multi-process scan starts with ``exec`` (nothing of the
parent's but its environment and the fds multiprocessing passes), that imports
:mod:`agent.scanning.preload` (the scan's modules; no thread, no connection: a test holds
this) and freezes those objects (``gc.freeze``), then forks one worker per share,
single-threaded. Each worker starts with the modules loaded, and shares with the server the
pages it does not write (reference counts make most of the pages it uses its own: see
bench/README.md). The server starts (:func:`start_server`) before the parent resolves the
assets, so its imports overlap that; it lives as long as the parent (a later scan in the
same process reuses it). Each worker gets the parent's environment as it is at the scan (as
a spawned one would). A worker that cannot be started leaves failed scans of its assets.

A worker's parent is the fork server, so the kernel cannot tie it to the agent directly: it
dies with the server (``PR_SET_PDEATHSIG``) and, by a thread that waits on a pipe only the
agent holds open, with the agent: a ``kill -9`` of the agent leaves no scan running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.targets import AssetSpec

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from agent.scanning.options import ScanOptions, ScanOutcome
    from probes.base import ProbeFailure
    from probes.net.dns import Resolution

log = logging.getLogger(__name__)
PRELOAD = "agent.scanning.preload"  # what the fork server imports before forking workers
AUTO_MAX = 8  # "auto": one process per CPU, at most this many
PER_PROCESS = 16  # fewer assets than this per process are not worth a process


def process_count(setting: int | str, assets: int) -> int:
    """The worker processes a scan of ``assets`` assets uses (1: this process alone)."""
    if setting == "auto":
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        wanted = min(cpus, AUTO_MAX)
    else:
        wanted = int(setting)
    return max(1, min(wanted, assets // PER_PROCESS))


Resolved = dict[tuple[str, str], "Resolution | ProbeFailure"]


async def resolve_all(specs: Sequence[AssetSpec], opts: ScanOptions) -> Resolved:
    """Every asset's host and its origins' hosts, resolved as the runner would (same policy)."""
    from probes.base import ProbeFailure
    from probes.net.dns import resolve
    from probes.net.scope import origin_of, parse_networks

    base_allow = parse_networks(opts.allow)
    gate = asyncio.Semaphore(max(1, opts.concurrency))
    out: Resolved = {}

    async def one(spec: AssetSpec, host: str, expected: bool) -> None:
        allow = (*base_allow, *parse_networks(spec.allow_addresses))
        want = parse_networks(spec.addresses) if expected and spec.addresses is not None else None
        async with gate:
            try:
                out[(spec.name, host)] = await resolve(host, opts.resolver, timeout=opts.dns_timeout,
                                                       allow=allow, expected=want)
            except ProbeFailure as exc:
                out[(spec.name, host)] = exc

    jobs = []
    for spec in specs:
        jobs.append(one(spec, spec.url.host, True))
        origins = {o[1] for o in (origin_of(u) for u in spec.origins) if o is not None}
        jobs.extend(one(spec, h, False) for h in sorted(origins - {spec.url.host}))
    await asyncio.gather(*jobs)
    return out


def address_groups(specs: Sequence[AssetSpec], resolved: Resolved) -> list[list[int]]:
    """Indexes of ``specs``, grouped so that no two groups share a usable address."""
    from probes.net.dns import Resolution

    parent = list(range(len(specs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    names = {spec.name: i for i, spec in enumerate(specs)}
    for (name, _host), res in resolved.items():
        if not isinstance(res, Resolution) or name not in names:
            continue
        i = names[name]
        for address in res.usable:
            j = owner.setdefault(address, i)
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(specs)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def bins(groups: list[list[int]], n: int) -> list[list[int]]:
    """The groups shared out over ``n`` processes, biggest first to the least loaded."""
    out: list[list[int]] = [[] for _ in range(n)]
    for group in sorted(groups, key=len, reverse=True):
        min(out, key=len).extend(group)
    return [sorted(b) for b in out if b]


@dataclass(frozen=True)
class _Job:
    specs: tuple[AssetSpec, ...]
    opts: ScanOptions
    environ: dict[str, str]  # the agent's environment at the scan (the fork server's is from its start)


def start_server() -> None:
    """Start the workers' fork server now (if it is not running), without waiting for its imports."""
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload([PRELOAD])
    forkserver.ensure_running()


def stop_server() -> None:
    """End the fork server once a scan's workers are done, without its interpreter's teardown.

    Left to itself it notices the agent's exit and tears down every module it imported (a tenth
    of a second of CPU after the scan's output, holding the agent's stderr open till then).
    Nothing runs in it between scans, so SIGKILL loses nothing; ``_stop`` then reaps it and
    forgets it (the next multi-process scan starts a new one).
    """
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if not isinstance(pid, int):
        return  # not running, or a Python whose internals differ: it ends by itself
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        server._stop()  # type: ignore[union-attr]


def _die_with_agent(alive: Connection) -> None:
    """Block until the agent's end of ``alive`` closes (it never writes), then end this process."""
    with contextlib.suppress(EOFError, OSError):
        alive.recv()
    os.kill(os.getpid(), signal.SIGKILL)


def work(conn: Connection, alive: Connection, job: _Job) -> None:
    """A worker process: scan ``job.specs``, send ("scan", index, outcome) for each, then ("done",)
    or ("error", why). A thread sends: the event loop never waits for the parent to read (a full
    pipe would stall every scan in flight, and a stalled scan times out on its own account)."""
    import threading

    from probes.child import tie_to_parent

    tie_to_parent(os.getppid())  # the fork server
    threading.Thread(target=_die_with_agent, args=(alive,), name="posture-scan-agent", daemon=True).start()
    os.setpgrp()  # a terminal's Ctrl-C reaches the parent alone; it passes it on once (see scan_in_processes)
    # The agent's SIGINT is its stop request: heard whatever this process inherited (a fork server
    # started from a background job has it ignored, and would pass that on to every worker).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(job.environ)
    import queue

    from agent.scanning.runner import Scanner, failed_outcome
    from vocab import one_line

    where = {spec.name: i for i, spec in enumerate(job.specs)}
    outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()

    def sender() -> None:
        while (msg := outbox.get()) is not None:
            try:
                conn.send(msg)
            except (OSError, EOFError):  # the parent is gone: nothing to hand back to
                return
            except Exception as exc:  # what a probe observed would not pickle: keep the record's truth
                outcome = msg[2]
                conn.send(("scan", msg[1], failed_outcome(
                    job.opts, scanner.catalog, outcome.asset, outcome.record.started_at,
                    f"the scan could not be handed back to the agent: {one_line(exc)}")))

    def send(outcome: ScanOutcome) -> None:
        outbox.put(("scan", where[outcome.asset.name], outcome))

    async def go() -> None:
        try:
            await scanner.scan_many(job.specs, on_done=send, keep=False)
        finally:
            await scanner.aclose()

    thread = threading.Thread(target=sender, name="posture-scan-sender", daemon=True)
    thread.start()
    try:
        scanner = Scanner(job.opts)
        gc.freeze()  # what the imports made lives to the end: full collections need not walk it
        asyncio.run(go())
        outbox.put(("done",))
    except KeyboardInterrupt:  # the scans in flight were recorded as interrupted; the parent stops too
        outbox.put(("done",))
    except Exception as exc:
        outbox.put(("error", one_line(exc)))
    finally:
        outbox.put(None)
        thread.join()
        conn.close()


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "stopped answering"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed ({name})"
    return f"exited with status {exitcode}"


def scan_in_processes(specs: Sequence[AssetSpec], opts: ScanOptions, processes: int, resolved: Resolved,
                      on_done: Callable[[ScanOutcome], None] | None = None,
                      on_progress: Callable[[int, int], None] | None = None) -> list[ScanOutcome]:
    """Scan ``specs`` in up to ``processes`` workers split by address; outcomes in ``specs`` order."""
    import multiprocessing
    from multiprocessing.connection import wait

    from vocab import one_line

    def failed(indexes: Sequence[int], why: str) -> None:
        """These assets' scans fail with ``why`` (the runner's machinery is loaded only then)."""
        if not indexes:
            return
        from agent.scanning.runner import failed_outcome
        from probes.catalog import load_catalog

        catalog = load_catalog()
        for i in indexes:
            accept(i, failed_outcome(opts, catalog, specs[i], started, why))

    shares = bins(address_groups(specs, resolved), processes)
    per = max(1, opts.concurrency // len(shares))  # the assets in flight stay [agent] concurrency in all
    start_server()  # a no-op when the caller started it already
    ctx = multiprocessing.get_context("forkserver")
    started = opts.clock()
    outcomes: dict[int, ScanOutcome] = {}
    running: dict[Any, tuple[Any, list[int], Any]] = {}  # conn -> (process, share, the agent's end of alive)

    def accept(index: int, outcome: ScanOutcome) -> None:
        outcomes[index] = outcome
        if on_done:
            on_done(outcome)
        if on_progress:
            on_progress(len(outcomes), len(specs))

    stopping: list[int] = []

    def on_sigint(signum: int, frame: Any) -> None:
        """Ctrl-C (or SIGTERM, SIGHUP): each worker stops as a scan in one process stops (its scans
        in flight are recorded as interrupted and handed back); this process keeps storing until
        they are in."""
        stopping.append(signum)
        for proc, _, _ in running.values():
            if proc.pid is not None and proc.exitcode is None:
                os.kill(proc.pid, signal.SIGINT)

    import threading

    from agent.scanning.stopping import SIGNALS as STOP_SIGNALS
    from agent.scanning.stopping import Stopped

    # As in one process: a command started with SIGINT ignored (a background job of a
    # non-interactive shell) keeps ignoring it, and its workers are never told to stop.
    main = threading.current_thread() is threading.main_thread()
    listening = main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
    previous = signal.signal(signal.SIGINT, on_sigint) if listening else None
    # SIGTERM and SIGHUP are stop requests whatever SIGINT's state (a background job must stop too).
    stop_previous = {sig: signal.signal(sig, on_sigint) for sig in STOP_SIGNALS} if main else {}
    try:
        for share in shares:
            names = {specs[i].name for i in share}
            wopts = dataclasses.replace(opts, address_limits=None, concurrency=per,
                                        resolved={k: v for k, v in resolved.items() if k[0] in names})
            job = _Job(tuple(specs[i] for i in share), wopts, dict(os.environ))
            here, there = ctx.Pipe(duplex=False)
            alive_r, alive_w = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=work, args=(there, alive_r, job), daemon=True, name="posture-scan")
            try:
                proc.start()
            except Exception as exc:  # no fork server, no process: these assets' scans fail, with the reason
                here.close()
                alive_w.close()
                failed(share, f"the scan worker process could not be started: {one_line(exc)}; nothing was recorded")
                continue
            finally:
                there.close()
                alive_r.close()
            log.info("scan worker pid %s: %s", proc.pid, " ".join(s.name for s in job.specs))
            running[here] = (proc, share, alive_w)
            if stopping and proc.pid is not None:  # Ctrl-C while the workers were being started
                os.kill(proc.pid, signal.SIGINT)
        while running:
            for ready_conn in wait(list(running)):
                conn: Any = ready_conn
                proc, share, alive = running[conn]
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    msg = ("died",)
                except Exception as exc:  # a scan that would not unpickle: its asset is settled at "done"
                    log.warning("a scan handed back by worker pid %s could not be read: %r", proc.pid, exc)
                    continue
                if msg[0] == "scan":
                    accept(share[msg[1]], msg[2])
                    continue
                del running[conn]
                conn.close()
                proc.join(10)
                alive.close()  # a worker that has not ended by now is ended by this
                if stopping:  # Ctrl-C: what was not finished has no record, as in one process
                    continue
                why = {"died": f"the scan worker process {_death(proc.exitcode)}",
                       "done": "the scan worker process ended without handing this scan back",
                       }.get(msg[0]) or f"the scan worker process failed: {msg[1]}"
                failed([i for i in share if i not in outcomes],
                       f"{why} before this asset's scan finished; nothing was recorded")
        if stopping:
            raise KeyboardInterrupt if stopping[0] == signal.SIGINT else Stopped(stopping[0])
    finally:
        if listening:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        for sig, handler in stop_previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for proc, _, alive in running.values():
            proc.kill()
            proc.join(5)
            alive.close()
    return [outcomes[i] for i in range(len(specs)) if i in outcomes]
