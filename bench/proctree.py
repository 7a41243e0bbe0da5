"""A process and its descendants, sampled from /proc every 50 ms: the peak of their summed
proportional set size (PSS: a page shared by k processes counts 1/k in each) and the most
worker processes seen at once. A multi-process scan's memory is every worker's plus the
parent's (and multiprocessing's fork server's and resource tracker's); ``ru_maxrss`` would
give only the largest one. Sampling can miss a peak shorter than the interval. Workers forked
by a fork server are its children, not the command's: :func:`adopt_orphans` and :func:`reap`
let a bench count their CPU too (the server outlives the command by a moment)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def _pss_kib(pid: int) -> int:
    """Proportional set size: each shared page counted once over the processes that share it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


FORKSERVER = b"multiprocessing.forkserver"


def _is_worker(pid: int, parent: int) -> bool:
    """A multiprocessing worker: spawned (spawn_main), or forked by a fork server (which is not one)."""
    cmd = _cmdline(pid)
    return b"spawn_main" in cmd or (FORKSERVER in cmd and FORKSERVER in _cmdline(parent))


def _role(pid: int, parent: int, root: int) -> str:
    """What a process of the tree is, for the breakdown of its memory."""
    if pid == root:
        return "command"
    cmd = _cmdline(pid)
    if _is_worker(pid, parent):
        return "worker"
    if FORKSERVER in cmd:
        return "fork server"
    if b"resource_tracker" in cmd:
        return "resource tracker"
    return "other"


def breakdown(at_peak: list[tuple[str, int]]) -> str:
    """``command 61, fork server 23, worker 30 + 31, resource tracker 7`` (MiB, PSS at the peak)."""
    roles: dict[str, list[int]] = {}
    for role, kib in at_peak:
        roles.setdefault(role, []).append(round(kib / 1024))
    return ", ".join(f"{role} {' + '.join(map(str, sorted(v, reverse=True)))}" for role, v in roles.items())


@dataclass
class TreeSampler:
    root: int
    interval: float = 0.05
    peak_kib: int = 0
    most_processes: int = 0
    most_workers: int = 0  # multiprocessing workers (spawned or forked by its fork server), not its helpers
    seen: set[int] = field(default_factory=set)  # every pid of the tree sampled
    # At the summed peak: (role, PSS KiB) of each process (the command, the fork server, its
    # workers, the resource tracker), to say where the memory is.
    at_peak: list[tuple[str, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        kids = _children()
        tree, todo, parent = [], [self.root], {self.root: 0}
        while todo:
            pid = todo.pop()
            tree.append(pid)
            parent.update((k, pid) for k in kids.get(pid, ()))
            todo.extend(kids.get(pid, ()))
        self.seen.update(tree)
        pss = {p: _pss_kib(p) for p in tree}
        if sum(pss.values()) > self.peak_kib:
            self.peak_kib = sum(pss.values())
            self.at_peak = [(_role(p, parent[p], self.root), kib) for p, kib in pss.items()]
        self.most_processes = max(self.most_processes, len(tree))
        self.most_workers = max(self.most_workers, sum(1 for p in tree if _is_worker(p, parent[p])))

    def __enter__(self) -> TreeSampler:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                self.sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def adopt_orphans() -> None:
    """Become the child subreaper (Linux): a descendant orphaned by its parent's exit (a fork
    server outliving the command by a moment) is re-parented here, so :func:`reap` can wait for
    it and ``RUSAGE_CHILDREN`` counts its CPU (and that of the workers it waited for)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def reap(pids: set[int], timeout: float = 30.0) -> None:
    """Wait for each of ``pids`` that is now a child of this process (see :func:`adopt_orphans`)."""
    import time

    deadline = time.monotonic() + timeout
    for pid in sorted(pids):
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not ours (already reaped by its parent)
                break
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.01)
