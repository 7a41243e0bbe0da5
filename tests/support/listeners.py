"""Plain TCP listeners and a real OpenSSH sshd on loopback, for the ports tests.

Listeners are :func:`tests.support.servers.raw_server` behaviours: close at
once (nmap calls the service "tcpwrapped", quickly), say an SSH banner, or
stay silent (slow for nmap's service detection: the deadline tests want that).

:class:`Sshd` runs the system's /usr/sbin/sshd on one address with a host key
made for the test and a config in a temporary directory, stopped by its PID.
sshd insists on its privilege-separation directory /run/sshd; where that does
not exist (it is made by the service unit, which CI leaves off), sshd runs in a
private mount namespace with its own /run, so the machine is left untouched.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def close_at_once(sock: socket.socket) -> None:
    sock.close()


def banner(text: bytes, *, hold: float = 5.0) -> Callable[[socket.socket], None]:
    """Say ``text`` on connect, then wait (up to ``hold`` s) for the client to hang up."""

    def behaviour(sock: socket.socket) -> None:
        sock.sendall(text)
        _drain(sock, hold)

    return behaviour


def silent(hold: float = 30.0) -> Callable[[socket.socket], None]:
    """Accept and say nothing until the client hangs up (or ``hold`` s pass)."""

    def behaviour(sock: socket.socket) -> None:
        _drain(sock, hold)

    return behaviour


def _drain(sock: socket.socket, hold: float) -> None:
    sock.settimeout(hold)
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


def read_banner(address: str, port: int, timeout: float = 2.0) -> bytes:
    with socket.create_connection((address, port), timeout=timeout) as s:
        data = b""
        while b"\n" not in data:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        return data


def installed_sshd_version() -> str:
    """``"9.2p1"`` for the installed sshd (``sshd -V`` prints it on stderr)."""
    out = subprocess.run([SSHD, "-V"], capture_output=True, text=True, timeout=5)
    m = re.search(r"OpenSSH_(\S+?),", out.stderr + out.stdout)
    if not m:
        raise RuntimeError(f"cannot tell the sshd version from {out.stderr!r}")
    return m.group(1)


class Sshd:
    def __init__(self, address: str, port: int, workdir: Path) -> None:
        if not Path(SSHD).exists():
            raise RuntimeError("sshd is not installed (apt-get install openssh-server)")
        self.address = address
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        key = self.workdir / "ssh_host_ed25519_key"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=10)
        lines = [
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {key}",
            "PidFile none",
            "UsePAM no",
            "StrictModes no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication no",
            "AuthorizedKeysFile none",
            "MaxStartups 100",
            "LoginGraceTime 10",
        ]
        major, minor = (int(x) for x in re.findall(r"\d+", installed_sshd_version())[:2])
        if (major, minor) >= (9, 8):
            lines.append("PerSourcePenalties no")  # scanners' unauthenticated connections must not be blocked
        cfg = self.workdir / "sshd_config"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    def args(self) -> list[str]:
        cmd = [SSHD, "-D", "-e", "-f", str(self._config())]
        if Path("/run/sshd").is_dir():
            return cmd
        unshare = shutil.which("unshare")
        if unshare is None or os.geteuid() != 0:
            raise RuntimeError("sshd needs /run/sshd, or root with unshare (util-linux) to give it one")
        script = 'mount -t tmpfs -o mode=755,size=1m tmpfs /run && mkdir -m 755 /run/sshd && exec "$0" "$@"'
        return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, *cmd]

    def start(self) -> Sshd:
        with open(self.workdir / "sshd.log", "wb") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log()}")
            try:
                if read_banner(self.address, self.port, 0.5).startswith(b"SSH-"):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not answer on {self.address}:{self.port}: {self.log()}")

    def log(self) -> str:
        path = self.workdir / "sshd.log"
        return path.read_text(errors="replace")[-500:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextmanager
def sshd_server(address: str, port: int, workdir: Path) -> Iterator[Sshd]:
    server = Sshd(address, port, workdir).start()
    try:
        yield server
    finally:
        server.stop()


def processes_mentioning(text: str, name: str = "nmap") -> list[int]:
    """PIDs of running ``name`` processes whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and Path(argv[0].decode(errors="replace")).name == name and text.encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids
