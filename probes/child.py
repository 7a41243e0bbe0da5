"""Child processes die with their parent: nmap (and any other tool a probe runs).

``kill -9`` of the daemon outside systemd (no cgroup to sweep) would otherwise leave
its nmap runs scanning on their own. :func:`die_with_parent` is a ``preexec_fn`` that
asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill the child when the
thread that spawned it exits, and kills it at once if the parent is already gone.
Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return fn


_PRCTL = _prctl()  # resolved in the parent: a forked child must not load libraries


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` for the process about to be spawned by this one."""
    parent = os.getpid()
    prctl = _PRCTL

    def preexec() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def tie_to_parent(parent: int) -> None:
    """In a child already running (a Python worker process): die with ``parent``, or now if it is gone."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
