"""Pure parts of the `ports` probe: the port table, nmap results, findings.

``probes/ports/ports.toml`` lists the default ports and the service classes
(remote administration, database, file sharing... each with a severity).
nmap's XML output (``-oX -``) and python-nmap's result dictionaries parse into
the same :class:`HostScan` records; :func:`unexpected_open` turns the open ports
of all an asset's addresses into ports.unexpected_open findings.
"""

from __future__ import annotations

import enum
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from probes.base import Finding, Severity, Target
from probes.eol import banners
from vocab import DataFileError, InputError, parses_data_file

CHECK_ID = "ports.unexpected_open"
WEB_PORTS = frozenset({80, 443})


class PortState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"
    UNFILTERED = "unfiltered"
    OPEN_FILTERED = "open|filtered"
    CLOSED_FILTERED = "closed|filtered"


# ---------------------------------------------------------------- port table


@dataclass(frozen=True)
class PortClass:
    key: str
    label: str
    severity: Severity
    services: frozenset[str]


@dataclass(frozen=True)
class PortEntry:
    port: int
    service: str
    klass: str
    source: str


@dataclass(frozen=True)
class PortTable:
    classes: Mapping[str, PortClass]
    ports: Mapping[int, PortEntry]

    @property
    def default_ports(self) -> tuple[int, ...]:
        return tuple(sorted(self.ports))

    def classify(self, port: int, service: str = "") -> tuple[PortClass, str]:
        """The class of an open port and why: the worse of its port's and its detected service's."""
        candidates: list[tuple[PortClass, str]] = []
        entry = self.ports.get(port)
        if entry is not None:
            candidates.append((self.classes[entry.klass], f"port {port} is {entry.service}"))
        if service:
            for klass in self.classes.values():
                if service in klass.services:
                    candidates.append((klass, f"{service} detected on port {port}"))
                    break
        if not candidates:
            return self.classes["other"], f"port {port} is not in the port table"
        return max(candidates, key=lambda c: c[0].severity.rank)


@parses_data_file("ports table")
def parse_port_table(text: str) -> PortTable:
    raw = tomllib.loads(text)
    classes: dict[str, PortClass] = {}
    for key, c in raw.get("classes", {}).items():
        classes[key] = PortClass(key, c["label"], Severity(c["severity"]), frozenset(c.get("services", [])))
    if "other" not in classes:
        raise DataFileError("port table has no 'other' class")
    ports: dict[int, PortEntry] = {}
    for p in raw.get("ports", []):
        port = p["port"]
        if not isinstance(port, int) or not 0 < port < 65536:
            raise DataFileError(f"bad port {port!r}")
        if port in ports:
            raise DataFileError(f"port {port} listed twice")
        if p["class"] not in classes:
            raise DataFileError(f"port {port}: unknown class {p['class']!r}")
        if not p.get("source"):
            raise DataFileError(f"port {port}: no source")
        ports[port] = PortEntry(port, p["service"], p["class"], p["source"])
    return PortTable(classes=classes, ports=ports)


@cache
def default_port_table() -> PortTable:
    text = resources.files("probes.ports").joinpath("ports.toml").read_text("utf-8")
    return parse_port_table(text)


def allowed_ports(target: Target) -> tuple[frozenset[int], str]:
    """The ports agreed on for ``target`` and where that came from.

    ``target.allowed_ports`` when configured; otherwise the asset's own port,
    plus 80 and 443 for web assets (a website answers on both).
    """
    if target.allowed_ports is not None:
        return frozenset(target.allowed_ports), "configured"
    ports = {target.port}
    if target.is_web:
        ports |= WEB_PORTS
    return frozenset(ports), "default: the asset's port" + (", 80 and 443" if target.is_web else "")


# ---------------------------------------------------------------- nmap results


@dataclass(frozen=True)
class Service:
    name: str = ""
    product: str = ""
    version: str = ""
    extrainfo: str = ""
    tunnel: str = ""  # "ssl" when nmap found the service inside TLS
    method: str = ""  # "probed" (matched a probe) or "table" (guessed from the port number)
    conf: int = 0
    cpes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortResult:
    port: int
    protocol: str
    state: PortState
    reason: str = ""
    service: Service = Service()

    def to_json(self) -> dict[str, Any]:
        s = self.service
        out: dict[str, Any] = {"port": self.port, "protocol": self.protocol, "state": self.state.value}
        out["service"] = s.name
        for key, value in (("product", s.product), ("version", s.version), ("extrainfo", s.extrainfo),
                           ("tunnel", s.tunnel)):
            if value:
                out[key] = value
        if s.cpes:
            out["cpe"] = list(s.cpes)
        return out


@dataclass(frozen=True)
class HostScan:
    address: str
    state: str = "up"
    ports: tuple[PortResult, ...] = ()
    timed_out: bool = False

    @property
    def open_ports(self) -> tuple[PortResult, ...]:
        return tuple(p for p in self.ports if p.state is PortState.OPEN)


@dataclass(frozen=True)
class NmapRun:
    args: str = ""
    version: str = ""
    elapsed: float | None = None
    exit: str = ""  # "success" or "error"
    error: str = ""
    hosts: tuple[HostScan, ...] = ()

    def host(self, address: str) -> HostScan | None:
        return next((h for h in self.hosts if h.address == address), None)


class NmapOutputError(InputError):
    """nmap's output is not the XML it should be (crashed, killed, wrong binary)."""


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


def _state(text: str) -> PortState:
    try:
        return PortState(text)
    except ValueError:
        return PortState.FILTERED


def parse_nmap_xml(text: str | bytes) -> NmapRun:
    """Parse ``nmap -oX`` output."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise NmapOutputError(f"nmap output is not complete XML ({exc})") from None
    if root.tag != "nmaprun":
        raise NmapOutputError(f"nmap output has root <{root.tag}>, not <nmaprun>")
    hosts = []
    for h in root.findall("host"):
        addresses = [a.get("addr", "") for a in h.findall("address") if a.get("addrtype") in ("ipv4", "ipv6")]
        status = h.find("status")
        ports = []
        for p in h.findall("ports/port"):
            st = p.find("state")
            sv = p.find("service")
            service = Service()
            if sv is not None:
                service = Service(
                    name=sv.get("name", ""),
                    product=sv.get("product", ""),
                    version=sv.get("version", ""),
                    extrainfo=sv.get("extrainfo", ""),
                    tunnel=sv.get("tunnel", ""),
                    method=sv.get("method", ""),
                    conf=_int(sv.get("conf")),
                    cpes=tuple(c.text or "" for c in sv.findall("cpe") if c.text),
                )
            ports.append(
                PortResult(
                    port=_int(p.get("portid")),
                    protocol=p.get("protocol", "tcp"),
                    state=_state(st.get("state", "") if st is not None else ""),
                    reason=st.get("reason", "") if st is not None else "",
                    service=service,
                )
            )
        hosts.append(
            HostScan(
                address=addresses[0] if addresses else "",
                state=status.get("state", "") if status is not None else "",
                ports=tuple(sorted(ports, key=lambda r: r.port)),
                timed_out=h.get("timedout") == "true",
            )
        )
    finished = root.find("runstats/finished")
    elapsed = finished.get("elapsed") if finished is not None else None
    return NmapRun(
        args=root.get("args", ""),
        version=root.get("version", ""),
        elapsed=float(elapsed) if elapsed else None,
        exit=finished.get("exit", "") if finished is not None else "",
        error=finished.get("errormsg", "") if finished is not None else "",
        hosts=tuple(hosts),
    )


def unexpected_open(
    hosts: Iterable[HostScan],
    allowed: frozenset[int],
    table: PortTable,
    catalog_severity: Severity,
) -> list[Finding]:
    """One ports.unexpected_open finding per open port not in ``allowed``, over all addresses.

    Key: the port number. A class whose severity differs from the catalog
    default (remote administration, databases, file sharing: high) sets the
    instance's severity and says why.
    """
    by_port: dict[int, list[tuple[str, PortResult]]] = {}
    for host in hosts:
        for result in host.open_ports:
            if result.port not in allowed:
                by_port.setdefault(result.port, []).append((host.address, result))
    findings = []
    for port in sorted(by_port):
        seen = by_port[port]
        # The most specific service: one nmap matched beats one it guessed from the port number.
        best = max(seen, key=lambda s: (s[1].service.method == "probed", bool(s[1].service.product)))[1]
        klass, why = table.classify(port, best.service.name)
        evidence: dict[str, Any] = {
            "port": port,
            "protocol": best.protocol,
            "addresses": sorted({address for address, _ in seen}),
            "service": best.service.name,
            "product": best.service.product,
            "version": best.service.version,
            "class": klass.label,
            "allowed_ports": sorted(allowed),
        }
        if best.service.tunnel:
            evidence["tunnel"] = best.service.tunnel
        if len({r.service for _, r in seen}) > 1:
            evidence["per_address"] = [{"address": a, **r.to_json()} for a, r in seen]
        severity = reason = None
        if klass.severity is not catalog_severity:
            severity = klass.severity
            reason = f"{klass.label}: {why}"
        findings.append(Finding(CHECK_ID, str(port), evidence, severity=severity, severity_reason=reason))
    return findings


def service_banners(hosts: Iterable[HostScan]) -> list[banners.Banner]:
    """What nmap's service detection says each open port runs, as banners for EOL."""
    found: list[banners.Banner] = []
    for host in hosts:
        for r in host.open_ports:
            s = r.service
            addr = f"[{host.address}]" if ":" in host.address else host.address
            where = f"{addr}:{r.port}/{r.protocol}" + (f" ({s.name})" if s.name else "")
            found.extend(banners.from_service(s.product, s.version, s.extrainfo, s.cpes, where))
    return found
