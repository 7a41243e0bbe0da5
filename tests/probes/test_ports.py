"""The `ports` probe against real listeners on loopback, scanned by the real nmap.

127.0.0.81 carries a TLS web server on 443, plain listeners on 3389 (RDP),
5432 (PostgreSQL) and 8080 (alternative web) and a fake SSH server saying an
end-of-life ``SSH-2.0-OpenSSH_7.4``; 127.0.0.82 runs the system's real
OpenSSH sshd on 22. One module fixture runs the probe three ways at once
(default allowed ports, an agreed list, a tls:// asset) since nmap's service
detection of the TLS port takes the better part of 15 seconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shlex
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from probes.base import ErrorKind, Finding, Limits, ProbeResult, RunStatus, Severity, Target
from probes.eol.check import default_eol_data, judge
from probes.ports.probe import PortsProbe
from tests.support.certs import Authority, write_pair
from tests.support.context import make_target, probe_context
from tests.support.listeners import (
    banner,
    close_at_once,
    installed_sshd_version,
    processes_mentioning,
    read_banner,
    silent,
    sshd_server,
)
from tests.support.servers import http_server, raw_server, server_context

NOW = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)
SITE = "127.0.0.81"  # TLS site, RDP/PostgreSQL/alt-web listeners, old OpenSSH banner
SSHD = "127.0.0.82"  # the real sshd
LIMITS = Limits(connect_timeout=2.0, request_deadline=5.0, probe_deadline=60.0)


@dataclass
class Scans:
    default: ProbeResult  # allowed_ports unset, default port list
    agreed: ProbeResult  # allowed_ports {22, 443, 3389, 8080}, a configured port list
    tls_asset: ProbeResult  # tls://gw.ports.test:443
    sshd_banner: str


async def _run(target: Target, limits: Limits = LIMITS) -> ProbeResult:
    async with probe_context(target, limits=limits, now=NOW) as ctx:
        return await PortsProbe().run(target, ctx)


@pytest.fixture(scope="module")
def scans(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scans]:
    leaf = authority.leaf("ports.test", "gw.ports.test")
    cert, key = write_pair(tmp_path_factory.mktemp("ports-tls"), "leaf", authority.chain_pem(leaf), leaf.key_pem)
    with ExitStack() as stack:
        stack.enter_context(http_server(host=SITE, port=443, tls=server_context(cert, key)))
        for port in (3389, 5432, 8080):
            stack.enter_context(raw_server(close_at_once, host=SITE, port=port))
        stack.enter_context(raw_server(banner(b"SSH-2.0-OpenSSH_7.4\r\n"), host=SITE, port=22))
        stack.enter_context(sshd_server(SSHD, 22, tmp_path_factory.mktemp("sshd")))
        default = make_target("https://ports.test/", (SITE, SSHD))
        agreed = make_target(
            "https://ports.test/",
            (SITE, SSHD),
            allowed_ports=frozenset({22, 443, 3389, 8080}),
            settings={"ports": {"ports": [9, 22, 443, 3389, 5432, 8080]}},
        )
        tls_asset = make_target("tls://gw.ports.test:443", (SITE,), settings={"ports": {"ports": [443, 3389]}})

        async def all_three() -> list[ProbeResult]:
            return list(await asyncio.gather(_run(default), _run(agreed), _run(tls_asset)))

        default_result, agreed_result, tls_result = asyncio.run(all_three())
        yield Scans(default_result, agreed_result, tls_result, read_banner(SSHD, 22).decode().strip())


def _found(result: ProbeResult, check_id: str) -> dict[str, Finding]:
    return {f.key: f for f in result.findings if f.check_id == check_id}


def test_open_ports_not_agreed_are_found_with_their_class_severity(scans: Scans) -> None:
    r = scans.default
    assert r.status is RunStatus.OK, r.error
    ports = _found(r, "ports.unexpected_open")
    assert {"22", "3389", "5432", "8080"} <= set(ports)
    assert "443" not in ports  # the asset's own port is agreed by default

    rdp, pg, alt, ssh = ports["3389"], ports["5432"], ports["8080"], ports["22"]
    assert rdp.severity is Severity.HIGH and "remote administration" in (rdp.severity_reason or "")
    assert pg.severity is Severity.HIGH and "database" in (pg.severity_reason or "")
    assert alt.severity is None and alt.severity_reason is None  # the catalog's medium
    assert alt.evidence["class"] == "alternative web port"
    assert rdp.evidence["addresses"] == [SITE]
    assert rdp.evidence["allowed_ports"] == [80, 443]
    # One finding per port, listing every address that has it open.
    assert ssh.evidence["addresses"] == [SITE, SSHD]
    assert ssh.severity is Severity.HIGH and ssh.evidence["service"] == "ssh"
    assert r.observations["allowed_from"].startswith("default")


def test_agreed_ports_give_no_finding(scans: Scans) -> None:
    r = scans.agreed
    assert r.status is RunStatus.OK, r.error
    ports = _found(r, "ports.unexpected_open")
    assert set(ports) == {"5432"}
    assert ports["5432"].severity is Severity.HIGH
    assert ports["5432"].evidence["allowed_ports"] == [22, 443, 3389, 8080]
    assert r.observations["allowed_from"] == "configured"
    assert r.observations["port_list"] == "configured"
    assert r.observations["ports_scanned"] == 6


def test_tls_asset_agrees_its_own_port_only(scans: Scans) -> None:
    r = scans.tls_asset
    assert PortsProbe().applies(make_target("tls://gw.ports.test:443"))
    assert r.status is RunStatus.OK, r.error
    assert set(_found(r, "ports.unexpected_open")) == {"3389"}
    assert r.observations["allowed_ports"] == [443]
    https = next(p for p in r.observations["addresses"][SITE]["open"] if p["port"] == 443)
    assert https["tunnel"] == "ssl"


def test_end_of_life_ssh_banner_is_found_and_the_current_one_is_not(scans: Scans) -> None:
    for r in (scans.default, scans.agreed):
        eol = _found(r, "software.eol")
        assert "openssh:7" in eol
        ev = eol["openssh:7"].evidence
        assert (ev["product"], ev["version"], ev["cycle"], ev["end_date"]) == ("OpenSSH", "7.4", "7", "2024-06-30")
        assert ev["days_past"] == (NOW.date() - dt.date(2024, 6, 30)).days
        assert [s["where"] for s in ev["seen"]] == [f"{SITE}:22/tcp (ssh)"]
        assert ev["data_date"] and "OpenSSH" in ev["data_source"]
        assert eol["openssh:7"].severity is None  # software.eol's catalog default (high)
        # Nothing end-of-life was seen on the real sshd's address.
        for finding in eol.values():
            assert all(not s["where"].startswith(SSHD) for s in finding.evidence["seen"])

    # The real sshd was identified, so "not end of life" is a verdict, not a blind spot.
    installed = installed_sshd_version()
    assert scans.sshd_banner.startswith(f"SSH-2.0-OpenSSH_{installed}")
    seen = next(p for p in scans.default.observations["addresses"][SSHD]["open"] if p["port"] == 22)
    assert seen["product"] == "OpenSSH" and seen["version"].startswith(installed)
    verdict = judge(default_eol_data(), "OpenSSH", seen["version"], NOW.date())
    assert verdict is None or not verdict.is_eol


def test_nmap_is_given_pinned_ip_literals_only(scans: Scans) -> None:
    obs = scans.default.observations
    assert obs["nmap"]["version"]
    for address in (SITE, SSHD):
        scanned = obs["addresses"][address]
        assert scanned["service_detection"] == "done"
        connect, service = (shlex.split(c) for c in scanned["commands"])
        for argv in (connect, service):
            assert argv[-1] == address
            assert {"-n", "-Pn", "-sT", "--unprivileged", "--max-rate", "--host-timeout"} <= set(argv)
            assert "ports.test" not in " ".join(argv)
        assert "-sV" not in connect
        assert {"-sV", "--version-light"} <= set(service)
        assert service[service.index("-p") + 1] == ",".join(str(p["port"]) for p in scanned["open"])
    assert obs["elapsed"] < LIMITS.probe_deadline


async def test_missing_nmap_is_a_tool_error() -> None:
    target = make_target("https://ports.test/", ("127.0.0.84",),
                         settings={"ports": {"nmap_path": "/nonexistent/bin/nmap"}})
    r = await _run(target)
    assert r.status is RunStatus.ERROR and r.error is not None
    assert r.error.kind is ErrorKind.TOOL
    assert "nmap not found at /nonexistent/bin/nmap" in r.error.message
    assert r.findings == ()


async def test_a_binary_that_is_not_nmap_is_a_tool_error(tmp_path: Path) -> None:
    fake = tmp_path / "nmap"
    fake.write_text("#!/bin/sh\necho 'this is not nmap'\n")
    fake.chmod(0o755)
    target = make_target("https://ports.test/", ("127.0.0.84",), settings={"ports": {"nmap_path": str(fake)}})
    r = await _run(target)
    assert r.error is not None and r.error.kind is ErrorKind.TOOL
    assert "not a working nmap" in r.error.message


async def test_inactive_asset_is_skipped() -> None:
    r = await _run(make_target("https://ports.test/", ("127.0.0.84",), active=False))
    assert r.status is RunStatus.SKIPPED and r.skip_reason


async def test_an_address_not_pinned_is_refused_before_nmap_runs() -> None:
    pinned = make_target("https://ports.test/", ("127.0.0.84",))
    other = make_target("https://ports.test/", ("127.0.0.85",))
    async with probe_context(pinned, limits=LIMITS, now=NOW) as ctx:
        r = await PortsProbe().run(other, ctx)
    assert r.error is not None and r.error.kind is ErrorKind.SCOPE
    assert "nmap" not in r.observations


async def test_bad_settings_are_an_error_naming_the_setting() -> None:
    target = make_target("https://ports.test/", ("127.0.0.84",), settings={"ports": {"ports": [0, 22]}})
    r = await _run(target)
    assert r.error is not None and "ports setting" in r.error.message


async def test_the_deadline_stops_nmap_and_keeps_what_was_found() -> None:
    slow = "127.0.0.83"
    # A silent open port makes service detection wait for a banner for many seconds.
    with raw_server(silent(30), host=slow, port=3306):
        target = make_target("https://slow.test/", (slow,), settings={"ports": {"ports": [3306]}})
        limits = Limits(connect_timeout=2.0, request_deadline=5.0, probe_deadline=4.5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        r = await _run(target, limits)
        took = loop.time() - started
        assert processes_mentioning(slow) == []  # nmap was killed, not left running
    assert r.status is RunStatus.ERROR and r.error is not None
    assert r.error.kind is ErrorKind.TIMEOUT
    assert took < limits.probe_deadline
    # The connect scan finished before the deadline: its open port is still reported.
    found = _found(r, "ports.unexpected_open")
    assert set(found) == {"3306"} and found["3306"].severity is Severity.HIGH
    assert r.observations["addresses"][slow]["service_detection"] == "stopped at the probe deadline"


async def test_cancelling_the_probe_kills_nmap() -> None:
    slow = "127.0.0.86"
    with raw_server(silent(30), host=slow, port=5900):
        target = make_target("https://slow.test/", (slow,), settings={"ports": {"ports": [5900]}})
        task = asyncio.create_task(_run(target))
        for _ in range(100):  # until service detection (the slow nmap run) is under way
            await asyncio.sleep(0.05)
            if any("-sV" in _cmdline(pid) for pid in processes_mentioning(slow)):
                break
        else:
            pytest.fail("nmap service detection never started")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert processes_mentioning(slow) == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def test_an_asset_with_no_reachable_address_has_nothing_to_scan() -> None:
    target = make_target("https://ports.test/", (), settings={"ports": {"nmap_path": "/nonexistent/nmap"}})
    r = await _run(target)
    assert r.status is RunStatus.OK and r.findings == () and r.observations["addresses"] == {}
