"""The probe contract: what a probe receives, what it returns, how it fails.

A probe is one module with one class that satisfies :class:`Probe`. It collects
(I/O through the context only) and evaluates (pure functions over what it
collected), and returns a :class:`ProbeResult`. It never touches storage.

Errors are values. Inside a probe, library exceptions (ssl, httpx, dnspython,
nmap, playwright) are translated at the edge into this tree; the scan runner
turns any of them into a :class:`ProbeError` on the result, so one failing
probe never takes the others down::

    ProbeFailure                 (base, under vocab.PostureError; .kind says which ErrorKind)
    ├── ResolveFailure           name unknown, resolver unreachable    -> ErrorKind.DNS
    │   └── NameNotFound         the DNS answered: no such name / no address / server failure
    ├── OutOfScope               address/URL outside the configured scope -> ErrorKind.SCOPE
    ├── ConnectFailure           refused, unreachable, reset on connect -> ErrorKind.CONNECT
    ├── DeadlineExceeded         an overall deadline passed             -> ErrorKind.TIMEOUT
    ├── ProtocolFailure          garbage, aborted handshake, bad HTTP   -> ErrorKind.PROTOCOL
    ├── BudgetExhausted          per-host request budget spent          -> ErrorKind.BUDGET
    └── ToolUnavailable          nmap / browser binary missing          -> ErrorKind.TOOL

Anything else escaping a probe is a bug; the runner records it as
ErrorKind.INTERNAL with the exception's one-line message.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

# The shared words are defined once in vocab; re-exported here as part of the probe contract.
from vocab import AssetKind as AssetKind
from vocab import PostureError, one_line
from vocab import RunStatus as RunStatus
from vocab import Severity as Severity

if TYPE_CHECKING:
    from probes.net.connector import Connector
    from probes.net.handshake import Capture
    from probes.net.http import HttpClient

JSON = Any  # a value json.dumps accepts: dict/list/str/int/float/bool/None


class ErrorKind(enum.StrEnum):
    DNS = "dns"
    SCOPE = "scope"
    CONNECT = "connect"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    BUDGET = "budget"
    TOOL = "tool"
    INTERRUPTED = "interrupted"
    INTERNAL = "internal"


class ProbeFailure(PostureError):
    """Base of every failure a probe lets out. ``str(exc)`` is one line."""

    kind: ErrorKind = ErrorKind.INTERNAL


class ResolveFailure(ProbeFailure):
    kind = ErrorKind.DNS


class NameNotFound(ResolveFailure):
    """The DNS answered and the name has no address (NXDOMAIN, no A/AAAA, SERVFAIL/REFUSED):
    the asset cannot be reached by its name, as opposed to posture's own resolver being down."""


class OutOfScope(ProbeFailure):
    kind = ErrorKind.SCOPE


class ConnectFailure(ProbeFailure):
    kind = ErrorKind.CONNECT


class DeadlineExceeded(ProbeFailure):
    kind = ErrorKind.TIMEOUT


class ProtocolFailure(ProbeFailure):
    kind = ErrorKind.PROTOCOL


class BudgetExhausted(ProbeFailure):
    kind = ErrorKind.BUDGET


class ToolUnavailable(ProbeFailure):
    kind = ErrorKind.TOOL


@dataclass(frozen=True)
class ProbeError:
    probe: str
    kind: ErrorKind
    message: str

    def to_json(self) -> dict[str, str]:
        return {"probe": self.probe, "kind": self.kind.value, "error": self.message}


@dataclass(frozen=True)
class Finding:
    """One instance of a catalog check.

    ``key`` tells instances of one check apart on one asset and must be stable
    from scan to scan (host:port for TLS, the port for ports, provocation kind
    and signature for leaks, the normalised href for social links).
    ``severity`` overrides the catalog default for this instance only; when
    set, ``severity_reason`` says why (it is copied into the evidence).
    """

    check_id: str
    key: str
    evidence: Mapping[str, JSON] = field(default_factory=dict)
    severity: Severity | None = None
    severity_reason: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    probe: str
    status: RunStatus
    observations: Mapping[str, JSON] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    error: ProbeError | None = None
    skip_reason: str | None = None

    @staticmethod
    def skipped(probe: str, reason: str) -> ProbeResult:
        return ProbeResult(probe=probe, status=RunStatus.SKIPPED, skip_reason=reason)


@dataclass(frozen=True)
class Target:
    """One asset as a probe sees it, with its names already resolved and pinned.

    ``addresses`` are the only IPs any probe may connect to for ``host``;
    ``skipped_addresses`` maps an address this machine cannot reach (e.g. no
    IPv6 route) to the reason. ``active`` is the effective permission for
    active probes in this run (config ``active_probes``, quiet windows,
    ``--force-active``).
    """

    name: str
    url: str
    scheme: str  # https | http | wss | tls
    host: str
    port: int
    path: str = "/"
    kind: AssetKind = AssetKind.WEBSITE
    addresses: tuple[str, ...] = ()
    skipped_addresses: Mapping[str, str] = field(default_factory=dict)
    cname_chain: tuple[str, ...] = ()
    allowed_ports: frozenset[int] | None = None
    active: bool = True
    declared: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Mapping[str, JSON]] = field(default_factory=dict)
    #: Extra origins (scheme, host, port) the asset lists as its own (config ``origins``).
    origins: frozenset[tuple[str, str, int]] = frozenset()

    @property
    def scope(self) -> frozenset[tuple[str, str, int]]:
        """Every origin a probe may reach for this asset, passive or active.

        The asset's own origin (a wss:// asset's is the https origin it upgrades from),
        its plain-HTTP twin (port 80, or the ``http.http_port`` setting) for the
        HTTPS-enforcement check, an http:// asset's https twin on 443, and the origins
        the asset lists. Another port of the same host is another origin: out of scope.
        """
        host = self.host.strip("[]").rstrip(".").lower()
        own = {(self.http_scheme, host, self.port)}
        if self.http_scheme == "https":
            twin = self.probe_settings("http").get("http_port", 80)
            own.add(("http", host, twin if isinstance(twin, int) and not isinstance(twin, bool) else 80))
        else:
            own.add(("https", host, 443))
        return frozenset(own | set(self.origins))

    @property
    def is_web(self) -> bool:
        return self.scheme in ("http", "https", "wss")

    @property
    def uses_tls(self) -> bool:
        return self.scheme in ("https", "wss", "tls")

    @property
    def http_scheme(self) -> str:
        """The scheme to speak HTTP with (wss is https on the wire)."""
        return {"wss": "https", "https": "https", "http": "http"}.get(self.scheme, "https")

    @property
    def origin(self) -> str:
        default = 443 if self.http_scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == default else f":{self.port}"
        return f"{self.http_scheme}://{host}{port}"

    def probe_settings(self, probe: str) -> Mapping[str, JSON]:
        return self.settings.get(probe, {})


@dataclass(frozen=True)
class Limits:
    """Bounds every probe honours. Seconds, bytes, counts."""

    connect_timeout: float = 5.0
    request_deadline: float = 15.0  # whole request: connect, headers and body
    probe_deadline: float = 120.0  # one probe on one asset
    max_body: int = 1 << 20
    max_redirects: int = 5
    host_budget: int = 300  # HTTP requests per address per budget_window, for the whole process
    per_host_concurrency: int = 4  # connections open at once per address, for the whole process
    budget_window: float = 3600.0


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may use. Built by the agent for one asset's scan."""

    http: HttpClient
    connector: Connector
    clock: Callable[[], datetime]
    limits: Limits = Limits()
    ca_bundle: str | None = None  # extra trust anchors (PEM) on top of the system store
    resolver: str | None = None  # "ip[:port]" the scan resolves through, for the record
    #: TLS handshakes the agent already made in this asset's scan (its reach step), by
    #: :func:`probes.net.handshake.capture_key`: a probe reads these before making its own.
    captured: Mapping[tuple[str, int, str], Capture] = field(default_factory=dict)


@runtime_checkable
class Probe(Protocol):
    """One probe. ``name`` is its registry name and the ``--probe`` value."""

    name: str
    #: True when the probe sends traffic an asset may not want (provocations,
    #: port scans); it then runs only where ``target.active`` is true.
    active: bool
    #: Every check ID this probe can raise (each has its entry in probes/catalog.toml).
    checks: frozenset[str]

    def applies(self, target: Target) -> bool:
        """Whether this probe is part of a full scan of ``target``."""
        ...

    def run(self, target: Target, ctx: ProbeContext) -> Awaitable[ProbeResult]: ...


def error_result(
    probe: str,
    exc: BaseException,
    *,
    observations: Mapping[str, JSON] | None = None,
    findings: tuple[Finding, ...] = (),
) -> ProbeResult:
    """A result carrying what was gathered before ``exc`` stopped the probe."""
    kind = exc.kind if isinstance(exc, ProbeFailure) else ErrorKind.INTERNAL
    message = one_line(exc)
    return ProbeResult(
        probe=probe,
        status=RunStatus.ERROR,
        observations=dict(observations or {}),
        findings=findings,
        error=ProbeError(probe=probe, kind=kind, message=message),
    )

