"""Probe `ports`: open TCP ports on an asset's addresses, and the software behind them.

An active probe (it runs only where ``target.active``), for every asset kind,
tls:// included. For each pinned address, nmap (found on PATH or at the
``nmap_path`` setting, checked with python-nmap) runs twice:

1. a TCP connect scan (``-sT --unprivileged``: no root, no raw sockets) of the
   port list (probes/ports/ports.toml, or the ``ports`` setting), normal timing
   with a maximum rate, one retry and a host timeout, so a host takes seconds;
2. light service and version detection (``-sV --version-light``) on the
   ports found open, so a slow service costs only its own detail.

nmap is only ever given the pinned IP literals, with ``-n`` (no DNS) and
``-Pn`` (no host discovery: firewalled and loopback hosts drop pings), and it
runs as an asyncio subprocess killed at the probe's deadline.

Findings: ports.unexpected_open for each open port not in the asset's
``allowed_ports`` (None: the asset's own port, plus 80 and 443 for web assets),
and software.eol for end-of-life products nmap identifies (OpenSSH 7.4...).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import shlex
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from probes.base import (
    DeadlineExceeded,
    ProbeContext,
    ProbeFailure,
    ProbeResult,
    RunStatus,
    Target,
    ToolUnavailable,
    error_result,
)
from probes.catalog import load_catalog
from probes.child import die_with_parent
from probes.eol.check import CHECK_ID as EOL_CHECK
from probes.eol.check import eol_findings, load_eol_data
from probes.eol.model import Settings as EolSettings
from probes.ports.judge import (
    CHECK_ID,
    HostScan,
    NmapOutputError,
    allowed_ports,
    default_port_table,
    parse_nmap_xml,
    service_banners,
    unexpected_open,
)
from probes.ports.model import Observations, Settings, SettingsError
from vocab import DataFileError, one_line

_VERSION_CHECK_TIMEOUT = 15.0
_DEADLINE_MARGIN = 2.0  # finish this long before the probe deadline, with what we have


def port_spec(ports: Iterable[int]) -> str:
    """``[21, 22, 23, 25]`` -> ``"21-23,25"``."""
    out: list[str] = []
    ordered = sorted(set(ports))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def nmap_args(
    nmap: str,
    address: str,
    ports: Sequence[int],
    *,
    service_detection: bool,
    max_rate: int,
    host_timeout: float,
    parallelism: int | None = None,
) -> list[str]:
    """The nmap command line for one address. ``address`` must be an IP literal."""
    ip = ipaddress.ip_address(address)  # never a name: nmap would resolve it
    args = [nmap, "-oX", "-", "-n", "-Pn", "-sT", "--unprivileged", "-T3",
            "--max-rate", str(max_rate), "--max-retries", "1",
            "--host-timeout", f"{max(1, int(host_timeout + 0.999))}s", "--open"]
    if parallelism is not None:
        args += ["--max-parallelism", str(max(1, parallelism))]
    if service_detection:
        args += ["-sV", "--version-light"]
    if ip.version == 6:
        args.append("-6")
    args += ["-p", port_spec(ports), str(ip)]
    return args


@dataclass
class AddressScan:
    """What one address's scan gathered so far (kept when a later step fails)."""

    address: str
    commands: list[str] = field(default_factory=list)
    host: HostScan | None = None
    service_detection: str = "not run"
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "open": [p.to_json() for p in self.host.open_ports] if self.host else [],
            "service_detection": self.service_detection,
            "commands": self.commands,
            "elapsed": round(self.elapsed, 3),
        }
        if self.host is None:
            out["scanned"] = False
        return out


async def run_nmap(args: Sequence[str], timeout: float) -> bytes:
    """Run nmap, return its XML; kill it when ``timeout`` passes or the probe is cancelled."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent(),  # kill -9 of posture must not leave nmap scanning
        )
    except OSError as exc:
        raise ToolUnavailable(f"cannot run {args[0]}: {exc.strerror or exc}") from None
    try:
        async with asyncio.timeout(max(timeout, 0.1)):
            out, err = await proc.communicate()
    except TimeoutError:
        raise DeadlineExceeded(f"nmap did not finish within {timeout:.0f}s and was stopped") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        message = " ".join(err.decode("utf-8", "replace").split())[:200] or f"exit status {proc.returncode}"
        raise ToolUnavailable(f"nmap failed: {message}")
    return out


class PortsProbe:
    name = "ports"
    active = True
    checks = frozenset({CHECK_ID, EOL_CHECK})  # software.eol: service banners
    holds_host = True  # nmap takes every connection slot of the address while it runs

    def applies(self, target: Target) -> bool:
        return True  # every asset kind: web, trading and API hosts, tls:// endpoints

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        if not target.active:
            return ProbeResult.skipped(self.name, "active probes are not allowed for this asset")
        started = time.monotonic()
        deadline = started + max(1.0, ctx.limits.probe_deadline - _DEADLINE_MARGIN)
        obs = Observations()
        scans: dict[str, AddressScan] = {}
        try:
            table = default_port_table()
            cfg = Settings.from_settings(target.probe_settings(self.name), table)
            try:
                # The shared eol section (the http probe reads the same one); the ports key is where it is written.
                eol_data = load_eol_data(EolSettings.from_json(target.probe_settings(EolSettings.SECTION)).data
                                         or cfg.eol_data)
            except DataFileError as exc:
                raise SettingsError(f"EOL data: {exc}") from None
            allowed, allowed_from = allowed_ports(target)
            for address in target.addresses:
                ctx.connector.pins.check(target.host, address)  # OutOfScope before nmap sees it
            obs = replace(obs, port_list=cfg.port_list, ports_scanned=len(cfg.ports),
                          allowed_ports=tuple(sorted(allowed)), allowed_from=allowed_from,
                          skipped_addresses=dict(target.skipped_addresses) if target.skipped_addresses else None)
            if not target.addresses:
                return ProbeResult(self.name, RunStatus.OK, observations=replace(obs, addresses={}).to_json())
            nmap_path, version = await locate_nmap(cfg.nmap_path)
            obs = replace(obs, nmap={"path": nmap_path, "version": version})
            scans = {a: AddressScan(a) for a in target.addresses}
            results = await asyncio.gather(
                *(self._scan(target, ctx, nmap_path, cfg, scans[a], deadline) for a in target.addresses),
                return_exceptions=True,
            )
        except ProbeFailure as exc:
            return error_result(self.name, exc, observations=obs.to_json())
        except Exception as exc:  # a bug: still return what was gathered
            return error_result(self.name, exc, observations=obs.to_json())

        obs = replace(obs, addresses={a: s.to_json() for a, s in scans.items()},
                      elapsed=round(time.monotonic() - started, 3))
        observations = obs.to_json()
        hosts = [s.host for s in scans.values() if s.host is not None]
        try:
            catalog_severity = load_catalog()[CHECK_ID].severity
            findings = unexpected_open(hosts, allowed, table, catalog_severity)
            findings += eol_findings(service_banners(hosts), eol_data, ctx.clock().date())
        except Exception as exc:  # a bug in judging: the scan itself is still worth keeping
            return error_result(self.name, exc, observations=observations)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            return error_result(self.name, failure, observations=observations, findings=tuple(findings))
        return ProbeResult(self.name, RunStatus.OK, observations=observations, findings=tuple(findings))

    async def _scan(
        self,
        target: Target,
        ctx: ProbeContext,
        nmap: str,
        cfg: Settings,
        scan: AddressScan,
        deadline: float,
    ) -> None:
        started = time.monotonic()
        try:
            # nmap holds every connection slot of the address and opens no more connections than that.
            async with ctx.connector.pins.shared.hold_all(scan.address) as slots:
                args = nmap_args(nmap, scan.address, cfg.ports, service_detection=False,
                                 max_rate=cfg.max_rate, host_timeout=min(cfg.host_timeout, _left(deadline)),
                                 parallelism=slots)
                scan.commands.append(shlex.join(args))
                found = _host(await run_nmap(args, _left(deadline)), scan.address)
                scan.host = found
                if found.timed_out:
                    raise DeadlineExceeded(f"nmap gave up on {scan.address} after its host timeout")
                open_ports = [p.port for p in found.open_ports]
                if not open_ports:
                    scan.service_detection = "no open ports"
                    return
                args = nmap_args(nmap, scan.address, open_ports, service_detection=True,
                                 max_rate=cfg.max_rate, host_timeout=min(cfg.host_timeout, _left(deadline)),
                                 parallelism=slots)
                scan.commands.append(shlex.join(args))
                scan.service_detection = "running"
                try:
                    detailed = _host(await run_nmap(args, _left(deadline)), scan.address)
                except DeadlineExceeded:
                    scan.service_detection = "stopped at the probe deadline"
                    raise
                if detailed.timed_out:
                    scan.service_detection = "host timeout: services not identified"
                    return
                scan.host = _merge(found, detailed)
                scan.service_detection = "done"
        finally:
            scan.elapsed = time.monotonic() - started


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("probe deadline reached before nmap could run")
    return left


def _host(xml: bytes, address: str) -> HostScan:
    try:
        run = parse_nmap_xml(xml)
    except NmapOutputError as exc:
        raise ToolUnavailable(str(exc)) from None
    if run.exit == "error":
        raise ToolUnavailable(f"nmap failed: {run.error or 'error exit'}")
    host = run.host(address)
    return host if host is not None else HostScan(address, state="down")


def _merge(found: HostScan, detailed: HostScan) -> HostScan:
    """Phase-1 open ports, with the services phase 2 identified on them."""
    by_port = {p.port: p for p in detailed.open_ports}
    ports = tuple(by_port.get(p.port, p) for p in found.open_ports)
    return HostScan(found.address, found.state, ports, timed_out=False)


async def locate_nmap(configured: str | None) -> tuple[str, str]:
    """The nmap binary to run and its version; ToolUnavailable when there is none that works."""
    import nmap  # python-nmap: checks that the binary really is nmap

    name = configured or "nmap"
    path = shutil.which(name)
    if path is None:
        where = f"at {configured}" if configured else "on PATH"
        raise ToolUnavailable(f"nmap not found {where}: install nmap (Debian: apt-get install nmap)")
    try:
        async with asyncio.timeout(_VERSION_CHECK_TIMEOUT):
            scanner = await asyncio.to_thread(nmap.PortScanner, nmap_search_path=(path,))
    except nmap.PortScannerError as exc:
        raise ToolUnavailable(f"{path} is not a working nmap: {one_line(exc, named=False, limit=200)}") from None
    except TimeoutError:
        raise ToolUnavailable(f"{path} -V did not answer within {_VERSION_CHECK_TIMEOUT:g}s") from None
    major, minor = scanner.nmap_version()
    return path, f"{major}.{minor}"
