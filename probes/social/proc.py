"""Finding and killing the browser a probe run started, by its profile directory.

Chromium is launched by Playwright as the leader of its own process group, with
a fresh ``--user-data-dir`` no other process shares; that directory on a
command line identifies our browser, and its group holds every helper
process (zygotes, renderers). Linux ``/proc`` only.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def profile_processes(profile: str) -> list[int]:
    """PIDs whose command line names ``profile`` as user-data-dir (Linux /proc)."""
    needle = f"--user-data-dir={profile}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_profile_processes(profile: str) -> int:
    """SIGKILL the browser that uses ``profile``: its process group when it leads one. Returns kills."""
    pids = profile_processes(profile)
    killed = 0
    groups = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            pgid = os.getpgid(pid)
            if pgid in pids:  # only a group this browser leads, never ours
                groups.add(pgid)
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
            killed += 1
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed
