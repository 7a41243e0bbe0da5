"""Real web frameworks, from their own packages, on loopback, for the leak probe's tests.

Each server is a subprocess bound to its own 127.0.6.x address and a free port,
in debug or production mode. :func:`running` starts a set of them in parallel,
waits until each answers, and stops them by PID.

Fixture applications live in ``tests/support/leak_apps`` (Django, Flask, PHP)
and ``tests/support/express_app`` (Express; its ``node_modules`` are installed
with ``npm ci`` there, by CI or on first use).
"""

from __future__ import annotations

import enum
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
APPS = SUPPORT / "leak_apps"
EXPRESS_APP = SUPPORT / "express_app"


class Mode(enum.StrEnum):
    DEBUG = "debug"
    PRODUCTION = "production"


class Framework(enum.StrEnum):
    DJANGO = "django"
    FLASK = "flask"
    PHP = "php"
    EXPRESS = "express"


@dataclass
class Server:
    framework: Framework
    mode: Mode
    host: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def log_tail(self, chars: int = 2000) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text("utf-8", errors="replace")[-chars:]


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _command(fw: Framework, mode: Mode, host: str, port: int) -> tuple[list[str], dict[str, str], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "FLASK_", "NODE_", "PYTHON"))}
    debug = mode is Mode.DEBUG
    if fw is Framework.DJANGO:
        env.update(PYTHONPATH=str(APPS), POSTURE_DEBUG="1" if debug else "0", POSTURE_HOST=host)
        argv = [sys.executable, "-m", "django", "runserver", "--noreload",
                "--settings=django_site", f"{host}:{port}"]
        return argv, env, APPS
    if fw is Framework.FLASK:
        env.update(PYTHONPATH=str(APPS))
        argv = [sys.executable, "-m", "flask", "--app", "flask_site", "run", "--no-reload",
                "--host", host, "--port", str(port)]
        if debug:
            argv.insert(argv.index("run") + 1, "--debug")
        return argv, env, APPS
    if fw is Framework.PHP:
        php = shutil.which("php") or "php"
        # -n: no php.ini, so only what is set here decides (CI machines differ in their ini files).
        argv = [php, "-n", "-d", f"display_errors={'1' if debug else '0'}", "-d", "html_errors=1",
                "-d", "error_reporting=E_ALL", "-d", "log_errors=0", "-d", "expose_php=1",
                "-S", f"{host}:{port}", "-t", str(APPS / "php")]
        return argv, env, APPS / "php"
    node = shutil.which("node") or "node"
    env.update(NODE_ENV="development" if debug else "production")
    return [node, "app.js", host, str(port)], env, EXPRESS_APP


def express_loads() -> bool:
    """Whether the fixture's Express really loads (an incomplete node_modules does not)."""
    node = shutil.which("node") or "node"
    probe = subprocess.run([node, "-e", "require('express')"], cwd=EXPRESS_APP, capture_output=True, timeout=30)
    return probe.returncode == 0


def ensure_express_installed(timeout: float = 180.0) -> None:
    """``npm ci`` in tests/support/express_app when CI has not done it (or left it broken)."""
    if express_loads():
        return
    npm = shutil.which("npm") or "npm"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=EXPRESS_APP,
                   check=True, timeout=timeout, stdout=subprocess.DEVNULL)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def _stop(server: Server) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()  # by PID: only the process this module started
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextmanager
def running(specs: Sequence[tuple[Framework, Mode]], workdir: Path, *, first_octet: int = 1,
            timeout: float = 30.0) -> Iterator[list[Server]]:
    """Start every (framework, mode) at once on 127.0.6.<n>, wait for all, stop all."""
    if any(fw is Framework.EXPRESS for fw, _ in specs):
        ensure_express_installed()
    servers: list[Server] = []
    try:
        for i, (fw, mode) in enumerate(specs):
            host = f"127.0.6.{first_octet + i}"
            port = free_port(host)
            argv, env, cwd = _command(fw, mode, host, port)
            log = workdir / f"{fw.value}-{mode.value}.log"
            server = Server(fw, mode, host, port, log=log, argv=argv)
            with log.open("wb") as out:
                server.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL)
            servers.append(server)
        deadline = time.monotonic() + timeout
        pending = list(servers)
        while pending:
            for server in list(pending):
                assert server.proc is not None
                if server.proc.poll() is not None:
                    raise RuntimeError(f"{server.framework} ({server.mode}) exited: {server.log_tail()}")
                if _answers(server.host, server.port):
                    pending.remove(server)
            if pending and time.monotonic() > deadline:
                names = ", ".join(f"{s.framework}/{s.mode}" for s in pending)
                raise RuntimeError(f"not answering after {timeout:g}s: {names}")
            time.sleep(0.05)
        yield servers
    finally:
        for server in servers:
            _stop(server)
