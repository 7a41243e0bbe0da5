"""A process and its descendants, sampled from /proc: the peak of their summed RSS and the
most processes seen at once. A multi-process scan's memory is every worker's plus the
parent's; ``ru_maxrss`` would give only the largest one. Summed RSS counts pages the
processes share (the interpreter, libraries) once per process: it errs high."""

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


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, IndexError, ValueError):
        return 0


@dataclass
class TreeSampler:
    root: int
    interval: float = 0.05
    peak_kib: int = 0
    most_processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        kids = _children()
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(kids.get(pid, ()))
        self.peak_kib = max(self.peak_kib, sum(_rss_kib(p) for p in tree))
        self.most_processes = max(self.most_processes, len(tree))

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
