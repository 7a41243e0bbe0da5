"""Run test code in a fresh network namespace that has nothing but loopback.

For behaviour that depends on the machine's routes (an address family this
machine cannot reach): inside the namespace no address but 127.0.0.0/8 and ::1
has a route, whatever the host's network looks like, and no packet can leave
it. Needs ``unshare`` (util-linux) and either root or unprivileged user
namespaces.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.dnsserver import DnsServer

REPO = Path(__file__).resolve().parents[2]
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def run_isolated(target: str, *args: str, timeout: float = 20.0) -> Any:
    """Call the async function ``"module:function"`` with ``args`` in a new network namespace.

    Returns what it returned (it must return JSON-able data).
    """
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--net"]
    code = "import sys; from tests.support.netns import _child; _child(sys.argv[1], sys.argv[2:])"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [*unshare, "--", sys.executable, "-c", code, target, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"isolated run of {target} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _child(target: str, args: list[str]) -> None:
    _loopback_up()
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    print(json.dumps(asyncio.run(func(*args))))


class IsolatedDnsServer(DnsServer):
    """dnsmasq that keeps its user and group: inside a user namespace it may not switch."""

    def args(self) -> list[str]:
        args = [a for a in super().args() if not a.startswith("--user")]
        return [*args, "--user=", "--group="]
