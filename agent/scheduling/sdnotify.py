"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET per state change.

systemd gives a path (``/run/systemd/notify``) or an abstract-namespace name
(``@/org/freedesktop/systemd1/notify/...``, the leading ``@`` standing for a NUL
byte). Outside systemd the variable is unset and every call is a no-op. A failed
send returns False and is otherwise ignored: losing a notification must never
stop the agent (the watchdog restarts it if the loop itself is stuck).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send e.g. ``"READY=1"``, ``"WATCHDOG=1"``, ``"STATUS=..."``; True when sent."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a transport we do not speak (vsock)
    try:
        # Non-blocking: a full receive queue drops this notification instead of stalling the agent.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8", "replace"))
    except OSError:
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when not watched."""
    env = os.environ if environ is None else environ
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by the watched one)
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None
