"""A real DNS server on loopback for tests: dnsmasq with no upstream.

``--local=/test/`` (and any extra zones) makes dnsmasq answer NXDOMAIN/NODATA
itself instead of REFUSED, and with ``--no-resolv`` nothing is ever forwarded
off the machine. The names and addresses are a :class:`agent.demo.dns.Zone`, the
demo lab's zone type (the lab serves its zone itself, without dnsmasq).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from agent.demo.dns import Zone


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class DnsServer:
    def __init__(
        self,
        records: Mapping[str, str | Sequence[str]] | None = None,
        cnames: Mapping[str, str] | None = None,
        *,
        zones: Sequence[str] = ("test",),
        listen: str = "127.0.0.1",
        extra_args: Sequence[str] = (),  # more dnsmasq options (--mx-host=, --txt-record=)
    ) -> None:
        self.zone = Zone.of(records, cnames)
        self.records = {k: list(v) for k, v in self.zone.records.items()}
        self.cnames = dict(self.zone.cnames)
        self.zones = list(zones)
        self.listen = listen
        self.extra_args = list(extra_args)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.listen}:{self.port}"

    def args(self) -> list[str]:
        exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not Path(exe).exists():
            raise RuntimeError("dnsmasq is not installed (apt-get install dnsmasq-base)")
        args = [
            exe,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--no-negcache",
            f"--listen-address={self.listen}",
            "--bind-interfaces",
            f"--port={self.port}",
            "--user=root" if _is_root() else "--user=",
            "--pid-file=",
            "--log-facility=/dev/null",
        ]
        for zone in self.zones:
            args.append(f"--local=/{zone}/")
        for name, addrs in self.records.items():
            # One --host-record per address: a single record holds at most one IPv4 and one IPv6.
            args.extend(f"--host-record={name},{addr}" for addr in addrs)
        for alias, target in self.cnames.items():
            args.append(f"--cname={alias},{target}")
        return args + self.extra_args

    def start(self) -> DnsServer:
        for _ in range(5):
            self.port = free_udp_port(self.listen)
            self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError("dnsmasq did not start")

    def _wait_ready(self) -> bool:
        query = dns.message.make_query("ready.invalid.", "A")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                dns.query.udp(query, self.listen, port=self.port, timeout=0.2)
                return True
            except (dns.exception.Timeout, OSError):
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


@contextmanager
def dns_server(
    records: Mapping[str, str | Sequence[str]] | None = None,
    cnames: Mapping[str, str] | None = None,
    **kw: object,
) -> Iterator[DnsServer]:
    server = DnsServer(records, cnames, **kw).start()  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
