"""Starting and stopping the whole lab, and the config that describes it to posture.

Addresses: one /24 in 127.0.0.0/8, picked at random per run so two demos (or
a demo and the test suite) never meet; site *n* is ``.n``. Ports are
unprivileged and shared by every site on its own address: one HTTPS port, one
plain-HTTP twin port (the ``[http] http_port`` setting), and one well-known
service port left open on the open-port site only. The DNS server and the
notification sink listen on 127.0.0.1.
"""

from __future__ import annotations

import errno
import json
import random
import socket
import ssl
import threading
import warnings
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from agent.demo.certs import KeyPair, LabAuthority
from agent.demo.dns import LabDns
from agent.demo.servers import RawServer, SiteServer, TrackedServer, legacy_context, modern_context
from agent.demo.sink import Sink
from agent.demo.sites import SITES, Defect, Site
from vocab import PostureError

#: Ports nobody agreed to, tried in order: remote desktop, PostgreSQL, VNC, Redis, MS SQL.
STRAY_PORTS = (3389, 5432, 5900, 6379, 1433)
GATEWAY_GREETING = b"POSTURE-LAB ORDER GATEWAY (simulated) READY\r\n"
_ATTEMPTS = 20


@dataclass(frozen=True)
class LabSite:
    site: Site
    address: str
    port: int
    allowed_ports: tuple[int, ...]

    @property
    def url(self) -> str:
        return f"{self.site.scheme}://{self.site.host}:{self.port}" + ("/" if self.site.speaks_http else "")


class LabError(PostureError, RuntimeError):
    """The lab could not start (no free port, a loopback address that cannot be bound)."""


def _try_bind(address: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
        return True


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def _quietly_stop(server: TrackedServer) -> None:
    with suppress(OSError):
        server.stop()


class Lab:
    def __init__(self, workdir: Path, sites: Sequence[Site] = SITES) -> None:
        self.workdir = workdir
        self.sites_spec = tuple(sites)
        self.prefix = f"127.{random.randint(64, 127)}.{random.randint(0, 255)}"
        self.addresses = {s.asset: f"{self.prefix}.{i + 1}" for i, s in enumerate(self.sites_spec)}
        self.https_port = 0
        self.http_port = 0
        self.stray_port = 0
        self.ca_bundle = workdir / "lab-ca.pem"
        self.dns: LabDns | None = None
        self.sink: Sink | None = None
        self.servers: list[tuple[str, TrackedServer]] = []
        self.sites: list[LabSite] = []

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> Lab:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        authority = LabAuthority()
        authority.write_bundle(self.ca_bundle)
        pairs = {s.asset: authority.issue(certs, s.host, expired=s.defect is Defect.EXPIRED_CERT)
                 for s in self.sites_spec}
        if not _try_bind(self.addresses[self.sites_spec[0].asset], 0):
            raise LabError(f"cannot bind {self.prefix}.1: is the loopback interface up?")
        for _ in range(_ATTEMPTS):
            self.https_port = _free_port(f"{self.prefix}.1")
            self.http_port = _free_port(f"{self.prefix}.1")
            if self.https_port == self.http_port:
                continue
            try:
                self._bind_sites(pairs)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                self._close_servers()
        else:
            raise LabError("no pair of free ports on every lab address")
        self.stray_port = self._bind_stray()
        self.dns = LabDns({s.host: self.addresses[s.asset] for s in self.sites_spec}).start()
        sink_dir = self.workdir / "sink"
        sink_dir.mkdir(exist_ok=True)
        self.sink = Sink(sink_dir)
        self.servers.append(("sink", self.sink))
        for name, server in self.servers:
            server.start(f"lab-{name}")
        self.sites = [
            LabSite(s, self.addresses[s.asset], self.https_port, self._allowed_for(s)) for s in self.sites_spec
        ]

    def _bind_sites(self, pairs: dict[str, KeyPair]) -> None:
        for s in self.sites_spec:
            addr = self.addresses[s.asset]
            pair = pairs[s.asset]
            if s.defect is Defect.LEGACY_TLS:
                self.servers.append((s.asset, RawServer(addr, self.https_port, tls=legacy_context(pair),
                                                        greeting=GATEWAY_GREETING)))
                continue
            self.servers.append((s.asset, SiteServer(s, addr, self.https_port, tls=modern_context(pair))))
            self.servers.append((f"{s.asset}-http", SiteServer(s, addr, self.http_port, tls=None,
                                                               redirect_port=self.https_port)))

    def _bind_stray(self) -> int:
        """A well-known service port free on every lab address, left open on the open-port site only."""
        target = next(s for s in self.sites_spec if s.defect is Defect.OPEN_PORT)
        taken = {self.https_port, self.http_port}
        candidates = [*STRAY_PORTS, *(_free_port(f"{self.prefix}.1") for _ in range(3))]
        for port in candidates:
            if port in taken or not all(_try_bind(a, port) for a in self.addresses.values()):
                continue
            try:
                server = RawServer(self.addresses[target.asset], port)
            except OSError:
                continue
            self.servers.append((f"{target.asset}-stray", server))
            return port
        raise LabError("no free port for the open-port site")

    def _allowed_for(self, s: Site) -> tuple[int, ...]:
        return (self.https_port,) if not s.speaks_http else (self.https_port, self.http_port)

    def _close_servers(self) -> None:
        for _, server in self.servers:
            with suppress(OSError):
                server.server_close()  # type: ignore[attr-defined]
        self.servers.clear()

    def stop(self) -> None:
        """Stop every server and thread the lab started (safe to call twice)."""
        # In parallel: each stop waits up to a poll interval for its accept loop to notice.
        stoppers = [threading.Thread(target=_quietly_stop, args=(server,), name=f"lab-stop-{name}")
                    for name, server in self.servers]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        self.servers.clear()
        if self.dns is not None:
            self.dns.stop()
            self.dns = None

    def legacy_tls_note(self) -> str | None:
        """None when the legacy site really completes a TLS 1.0 or 1.1 handshake here, else why not."""
        lab_site = next(s for s in self.sites if s.site.defect is Defect.LEGACY_TLS)
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            try:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # asking for TLS 1.0/1.1 on purpose
                    ctx.minimum_version = ctx.maximum_version = version
                with socket.create_connection((lab_site.address, lab_site.port), timeout=5) as raw, \
                        ctx.wrap_socket(raw, server_hostname=lab_site.site.host):
                    return None
            except (ssl.SSLError, OSError, ValueError):
                continue
        return "this machine's OpenSSL refuses TLS 1.0 and 1.1 even at security level 0"

    # -- what posture is told ----------------------------------------------------

    @property
    def resolver(self) -> str:
        assert self.dns is not None
        return self.dns.address

    def site(self, asset: str) -> LabSite:
        return next(s for s in self.sites if s.site.asset == asset)

    def config_toml(self, notify_url: str | None) -> str:
        """The demo config: the lab's assets, its CA and DNS server, settings that keep it fast."""
        q = json.dumps  # TOML basic strings accept JSON string escapes
        ports = sorted({self.https_port, self.http_port, self.stray_port})
        lines = [
            "# Written by `posture demo`: the built-in lab on loopback. Throwaway.",
            "[agent]",
            f"ca_bundle = {q(str(self.ca_bundle))}",
            f"resolver = {q(self.resolver)}",
            f"allow_addresses = [{q(self.prefix + '.0/24')}]  # the lab lives on loopback: allowed explicitly",
            "concurrency = 8",
            "per_host_concurrency = 8  # each lab site is its own host; the probes share its gate",
            "request_timeout = 10.0",
            "probe_timeout = 40.0  # keeps the whole demo under a minute even if something hangs",
            "",
            "[http]",
            f"http_port = {self.http_port}  # the plain-HTTP twin of every lab site",
            "",
            "[ports]",
            f"ports = {ports}  # the lab's own ports: anything else on these addresses is not the lab's",
            "max_rate = 1000",
            "# nmap -sV waits seconds on every silent TLS port; the lab's services are known, so service",
            "# detection is cut short (open ports are found in the first, fast pass either way).",
            "host_timeout = 5.0",
            "",
            "[social]",
            "max_pages = 5",
            "",
        ]
        if notify_url:
            lines += ["[[notify]]", f"url = {q(notify_url)}", 'events = ["digest"]', 'language = "en"', ""]
        for s in self.sites:
            lines += [
                "[[assets]]",
                f"name = {q(s.site.asset)}",
                f"url = {q(s.url)}",
                f"kind = {q(s.site.kind)}",
                f"allowed_ports = {list(s.allowed_ports)}",
                "quiet = []  # the lab keeps no trading hours: active probes may run at any time",
                "",
            ]
        return "\n".join(lines)
