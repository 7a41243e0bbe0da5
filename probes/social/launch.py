"""How the social probe starts Chromium: bounded, dying with its parent, sandboxed, never as root.

Playwright starts the browser from ``executable_path``; posture points it at a small
``/bin/sh`` wrapper written for the run (in a directory only its owner can read) that:

* drops to an unprivileged user (``nobody``) when posture runs as root, with
  ``setpriv --reuid --regid --clear-groups`` (Chromium's sandbox refuses root, and
  a renderer exploit must not land as root);
* asks the kernel to kill the browser when its parent dies (``--pdeathsig KILL``):
  ``kill -9`` of posture takes Playwright's driver and then the browser with it;
* caps every Chromium process's data segment (``prlimit --data``: heap, ``mmap``\\ed
  ArrayBuffers) on top of V8's own heap limit (``--js-flags=--max-old-space-size``):
  a page that allocates forever crashes its renderer, a probe error, well before
  the host runs out of memory.

Chromium's own sandbox (namespaces + seccomp-bpf) stays on. Where the kernel or the
service's confinement forbids the namespaces it needs, the probe retries once without it
and records ``sandbox: off`` with the reason in the scan's observations.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

RENDERER_HEAP_MB = 256  # V8's old-space limit per renderer
DATA_LIMIT_BYTES = 2 << 30  # RLIMIT_DATA of every Chromium process
UNPRIVILEGED_USER = "nobody"
SANDBOX_ERRORS = ("sandbox", "namespace", "zygote")  # launch failures the no-sandbox retry is for


@dataclass(frozen=True)
class Launch:
    """One way of starting the browser: the wrapper to give Playwright and what it does."""

    executable: str  # the wrapper (or Chromium itself when no wrapper can be built)
    directory: str | None  # the wrapper's directory, removed by :func:`discard`
    user: str  # who the browser runs as
    bounded: bool  # prlimit and pdeathsig applied
    sandbox: bool

    def flags(self) -> list[str]:
        heap = f"--js-flags=--max-old-space-size={RENDERER_HEAP_MB}"
        return [heap] if self.sandbox else [heap, "--no-sandbox"]

    def to_json(self) -> dict[str, object]:
        return {"user": self.user, "sandbox": "on" if self.sandbox else "off", "memory_bounded": self.bounded,
                "renderer_heap_mb": RENDERER_HEAP_MB, "data_limit_mb": DATA_LIMIT_BYTES >> 20}


def prepare(chromium: str, profile: str, *, sandbox: bool) -> Launch:
    """Write the wrapper for ``chromium`` using ``profile``; hand ``profile`` to the browser's user."""
    setpriv, prlimit = shutil.which("setpriv"), shutil.which("prlimit")
    root = os.geteuid() == 0
    user = pwd.getpwuid(os.geteuid()).pw_name
    if setpriv is None or prlimit is None:
        # No way to drop root or bound memory: a root browser gets no sandbox (Chromium refuses it).
        return Launch(chromium, None, user, False, sandbox and not root)
    command = [setpriv]
    if root:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
        user = UNPRIVILEGED_USER
        command += [f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]
        _hand_over(Path(profile), entry.pw_uid, entry.pw_gid)
    command += ["--pdeathsig=KILL", "--", prlimit, f"--data={DATA_LIMIT_BYTES}:{DATA_LIMIT_BYTES}", "--", chromium]
    directory = tempfile.mkdtemp(prefix="posture-chromium-")
    wrapper = Path(directory) / "chromium"
    home = shlex.quote(profile)
    wrapper.write_text(
        "#!/bin/sh\n"
        # Chromium's own files (its singleton socket, caches) stay in the profile it can write.
        f"HOME={home} TMPDIR={home} XDG_CONFIG_HOME={home}/.config XDG_CACHE_HOME={home}/.cache\n"
        "export HOME TMPDIR XDG_CONFIG_HOME XDG_CACHE_HOME\n"
        f'exec {" ".join(shlex.quote(c) for c in command)} "$@"\n'
    )
    wrapper.chmod(0o700)
    return Launch(str(wrapper), directory, user, True, sandbox)


def profile_parent() -> str | None:
    """Where to make the browser's profile: ``$TMPDIR`` unless the browser's user could not reach it.

    Running as root, the profile is handed to ``nobody``, which must be able to traverse
    every directory above it (a root-only ``$TMPDIR`` would make the browser fail to start).
    """
    if os.geteuid() != 0:
        return None
    for candidate in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        path = Path(candidate)
        if path.is_dir() and all(p.stat().st_mode & 0o001 for p in (path, *path.parents)):
            return str(path)
    return None


def _hand_over(profile: Path, uid: int, gid: int) -> None:
    """The profile directory becomes the unprivileged user's (it is fresh and posture's own)."""
    os.chown(profile, uid, gid)
    for base, dirs, files in os.walk(profile):
        for name in dirs + files:
            os.lchown(os.path.join(base, name), uid, gid)


def discard(launch: Launch | None) -> None:
    if launch is not None and launch.directory:
        shutil.rmtree(launch.directory, ignore_errors=True)


def sandbox_failure(message: str) -> bool:
    """Whether a launch failure is Chromium unable to set up its sandbox here."""
    text = message.lower()
    return any(word in text for word in SANDBOX_ERRORS)
