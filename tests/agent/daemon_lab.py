"""What the daemon tests share: TLS services behind gates, and ``posture run`` in a subprocess.

Each asset is a ``tls://`` service (only the passive ``tls`` probe applies when active
probes are off, so a scan takes a fraction of a second) reached through a :class:`Gate`:
a TCP forwarder on its own 127.0.0.x address that counts connections and, while held,
accepts them without answering (a scan that hangs mid-way, to kill or stop).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from state.job_queue import JobInfo, JobQueue
from state.store import Store
from state.views import ScanInfo

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Gate:
    host: str
    port: int
    upstream: tuple[str, int]
    hold: threading.Event = field(default_factory=threading.Event)
    connections: list[float] = field(default_factory=list)  # time.time() of each accepted connection
    held: list[socket.socket] = field(default_factory=list)

    def release(self) -> None:
        self.hold.clear()
        for sock in self.held:
            with suppress(OSError):
                sock.close()
        self.held.clear()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@contextmanager
def gate(host: str, upstream: tuple[str, int]) -> Iterator[Gate]:
    listener = socket.create_server((host, 0))
    g = Gate(host, listener.getsockname()[1], upstream)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            g.connections.append(time.time())
            if g.hold.is_set():
                g.held.append(conn)  # accepted, never answered: the scan hangs here
                continue
            try:
                up = socket.create_connection(upstream, timeout=5)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield g
    finally:
        stop.set()
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        listener.close()
        g.release()
        thread.join(2)


def asset_toml(name: str, g: Gate, *, kind: str = "website", extra: str = "") -> str:
    return (f'[[assets]]\nname = "{name}"\nurl = "tls://{name}:{g.port}"\nkind = "{kind}"\n'
            f"active_probes = false\n{extra}\n")


def config_toml(dns: str, ca: Path, assets: str, *, every: str = "2s", schedule: str = "", top: str = "") -> str:
    return (f'{top}[agent]\nresolver = "{dns}"\nca_bundle = "{ca}"\nrequest_timeout = 20\n\n'
            f'[schedule]\nscan_every = "{every}"\njitter = "0"\n{schedule}\n{assets}')


class Agent:
    """``posture --config C --db D [--now N] run`` as a subprocess; its stderr goes to a file."""

    def __init__(self, workdir: Path, config: Path, db: str, *, now: str | None = None,
                 env: dict[str, str] | None = None, name: str = "agent") -> None:
        self.log_path = workdir / f"{name}.log"
        args = [sys.executable, "-m", "agent", "--config", str(config), "--db", db]
        if now:
            args += ["--now", now]
        self.args = [*args, "run"]
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Agent:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def lines(self) -> list[str]:
        return self.log().splitlines()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait: the exit code."""
        self.send(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def cleanup(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20, agents: tuple[Agent, ...] = ()) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the agents' logs otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for a in agents:
            if not a.alive():
                raise AssertionError(f"posture exited ({a.proc.returncode if a.proc else '?'}) while waiting for "
                                     f"{what}:\n{a.log()}")
        time.sleep(0.1)
    logs = "\n".join(a.log() for a in agents)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


class Db:
    """Reading what the daemons stored, from the test process."""

    def __init__(self, url: str) -> None:
        self.store = Store.open(url)
        self.queue = JobQueue(self.store, "test-reader", timedelta(minutes=5))

    def scans(self, asset: str | None = None) -> list[ScanInfo]:
        return self.store.scans(asset)

    def complete(self, asset: str) -> list[ScanInfo]:
        return [s for s in self.scans(asset) if s.status.value == "complete"]

    def jobs(self, asset: str | None = None) -> list[JobInfo]:
        return [j for j in self.queue.jobs() if asset is None or j.asset == asset]

    def close(self) -> None:
        self.store.close()


NAMES = tuple(f"{c}.daemon.test" for c in "abcdefgh")
ADDRESSES = {name: f"127.0.0.{171 + i}" for i, name in enumerate(NAMES)}  # one gate address per name


@dataclass
class Lab:
    dns: str  # IP:PORT of the loopback DNS server
    ca: Path  # the trust anchor the scans use
    upstream: tuple[str, int]  # the TLS service every gate forwards to
    workdir: Path

    @contextmanager
    def gates(self, *names: str) -> Iterator[dict[str, Gate]]:
        """A gate per name (on the name's own address), closed afterwards."""
        from contextlib import ExitStack

        with ExitStack() as stack:
            yield {n: stack.enter_context(gate(ADDRESSES[n], self.upstream)) for n in names}


@contextmanager
def make_lab(workdir: Path) -> Iterator[Lab]:
    from tests.support.certs import Authority, write_pair
    from tests.support.dnsserver import DnsServer
    from tests.support.servers import http_server, server_context

    ca = Authority("daemon test root")
    leaf = ca.leaf(*NAMES)
    cert, key = write_pair(workdir, "daemon", ca.chain_pem(leaf), leaf.key_pem)
    trust = ca.write_trust(workdir / "ca.pem")
    dns = DnsServer(dict(ADDRESSES)).start()
    try:
        with http_server(host="127.0.0.170", tls=server_context(cert, key)) as tls:
            yield Lab(dns.address, trust, (tls.host, tls.port), workdir)
    finally:
        dns.stop()
