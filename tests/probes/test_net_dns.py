"""Name resolution (probes/net/dns.py) through a real dnsmasq on loopback; never the machine's resolver."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from probes.base import ResolveFailure
from probes.net.dns import parse_resolver, resolve
from probes.net.scope import env_allow, parse_networks, refusal_reason
from tests.support.dnsserver import DnsServer, free_udp_port
from tests.support.netns import IsolatedDnsServer, run_isolated

TIMEOUT = 1.0
ALLOW = env_allow()  # tests/conftest.py allows 127.0.0.0/8 for the session
SLACK = 0.6

RECORDS = {
    "origin.test": ["127.0.0.5", "::1"],
    "v4.test": "127.0.0.6",
    "v6only.test": "::1",
    "meta.test": "169.254.169.254",
    "mixed.test": ["127.0.0.7", "169.254.169.254"],
    "mapped.test": "::ffff:169.254.169.254",
    "linklocal.test": ["fe80::1", "169.254.10.10"],
}
CNAMES = {"www.test": "edge.test", "edge.test": "origin.test"}


class _WithTxt(DnsServer):
    def args(self) -> list[str]:
        return [*super().args(), "--txt-record=txtonly.test,hello"]


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    server = _WithTxt(RECORDS, CNAMES).start()
    try:
        yield server
    finally:
        server.stop()


async def test_cname_chain_and_both_families_are_recorded(dns: DnsServer) -> None:
    res = await resolve("WWW.test.", dns.address, timeout=TIMEOUT, allow=ALLOW)
    assert res.name == "www.test"
    assert res.resolver == dns.address
    assert res.cname_chain == ("edge.test", "origin.test")
    assert res.addresses == ("127.0.0.5", "::1")
    assert res.usable == ("127.0.0.5", "::1")
    assert res.to_json()["cname_chain"] == ["edge.test", "origin.test"]


@pytest.mark.parametrize(("name", "addresses"), [("v4.test", ("127.0.0.6",)), ("v6only.test", ("::1",))])
async def test_one_family_missing_is_not_an_error(dns: DnsServer, name: str, addresses: tuple[str, ...]) -> None:
    res = await resolve(name, dns.address, timeout=TIMEOUT, allow=ALLOW)
    assert res.addresses == addresses and res.cname_chain == ()


@pytest.mark.parametrize(
    ("name", "message"),
    [("nowhere.test", "no such domain"), ("txtonly.test", "no A or AAAA record")],
)
async def test_unknown_name_is_a_quick_typed_failure(dns: DnsServer, name: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(ResolveFailure, match=message):  # an answer, not the 10 s timeout
        await resolve(name, dns.address, timeout=10.0, allow=ALLOW)
    assert time.monotonic() - started < 5.0


async def test_resolver_that_refuses_is_a_typed_failure(dns: DnsServer) -> None:
    # Outside its local zones this dnsmasq has no upstream: it refuses, and forwards nothing.
    with pytest.raises(ResolveFailure, match="failed to answer"):
        await resolve("posture.invalid", dns.address, timeout=TIMEOUT, allow=ALLOW)


async def test_resolver_that_never_answers_fails_within_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))  # receives the queries, answers none
        port = sink.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ResolveFailure, match="timed out"):
            await resolve("www.test", f"127.0.0.1:{port}", timeout=TIMEOUT, allow=ALLOW)
        elapsed = time.monotonic() - started
    # A and AAAA share the one timeout; asked one after the other they took twice as long.
    assert elapsed < TIMEOUT + SLACK


async def test_resolver_on_a_closed_port_fails_within_the_timeout() -> None:
    port = free_udp_port()
    started = time.monotonic()
    with pytest.raises(ResolveFailure):
        await resolve("www.test", f"127.0.0.1:{port}", timeout=TIMEOUT, allow=ALLOW)
    assert time.monotonic() - started < TIMEOUT + SLACK


@pytest.mark.parametrize("spec", ["dns.example", "127.0.0.1:0", "127.0.0.1:99999", "[::1]:x"])
async def test_invalid_resolver_is_a_resolve_failure(spec: str) -> None:
    with pytest.raises(ResolveFailure, match="invalid resolver"):
        await resolve("www.test", spec, timeout=TIMEOUT, allow=ALLOW)


@pytest.mark.parametrize("name", ["meta.test", "mapped.test", "linklocal.test"])
async def test_names_that_only_lead_to_forbidden_addresses_have_nothing_usable(dns: DnsServer, name: str) -> None:
    res = await resolve(name, dns.address, timeout=TIMEOUT, allow=ALLOW)
    assert res.usable == () and set(res.refused) == set(res.addresses) and res.refused


async def test_forbidden_addresses_are_refused_and_recorded(dns: DnsServer) -> None:
    res = await resolve("mixed.test", dns.address, timeout=TIMEOUT, allow=ALLOW)
    assert res.usable == ("127.0.0.7",)
    assert res.refused == {"169.254.169.254": "cloud metadata address"}
    assert res.addresses == ("127.0.0.7", "169.254.169.254")


@pytest.mark.parametrize(
    ("literal", "usable"),
    [("127.0.0.9", ("127.0.0.9",)), ("[::1]", ("::1",))],
)
async def test_ip_literals_need_no_dns(literal: str, usable: tuple[str, ...]) -> None:
    res = await resolve(literal, "127.0.0.1:9", timeout=TIMEOUT, allow=ALLOW)  # the resolver is never asked
    assert (res.resolver, res.usable) == ("literal", usable)


@pytest.mark.parametrize("literal", ["169.254.169.254", "fd00:ec2::254", "::ffff:a9fe:a9fe", "ff02::1"])
async def test_forbidden_ip_literals_are_refused(literal: str) -> None:
    res = await resolve(literal, allow=parse_networks(["0.0.0.0/0", "::/0"]))  # wide allows never admit these
    assert res.usable == () and list(res.refused) == [literal.strip("[]")]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("203.0.113.7", "documentation address (RFC 5737)"),
        ("2001:db8::7", "documentation address (RFC 3849)"),
        ("::ffff:127.0.0.1", "loopback address (embedded in ::ffff:7f00:1)"),
        ("10.1.2.3", "private address (RFC 1918)"),
        ("172.31.0.1", "private address (RFC 1918)"),
        ("192.168.1.1", "private address (RFC 1918)"),
        ("fd12::1", "private address (unique local, RFC 4193)"),
        ("100.64.0.1", "shared address space (CGNAT, RFC 6598)"),
        ("198.18.0.1", "benchmarking address (RFC 2544)"),
        ("240.0.0.1", "reserved address (future use)"),
        ("8.8.8.8", None),
        ("2606:4700::1", None),
        ("169.254.169.254", "cloud metadata address"),
        ("169.254.170.2", "cloud metadata address"),
        ("100.100.100.200", "cloud metadata address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("169.254.1.1", "link-local address"),
        ("fe80::1", "link-local address"),
        ("224.0.0.1", "multicast address"),
        ("ff02::1", "multicast address"),
        ("0.0.0.0", "unspecified address"),
        ("::", "unspecified address"),
        ("255.255.255.255", "broadcast address"),
        ("::ffff:169.254.169.254", "cloud metadata address (embedded in ::ffff:a9fe:a9fe)"),
        ("::ffff:169.254.3.4", "link-local address (embedded in ::ffff:a9fe:304)"),
        ("64:ff9b::169.254.169.254", "cloud metadata address (embedded in 64:ff9b::a9fe:a9fe)"),
        ("site.test", "not an IP address"),
    ],
)
def test_refusal_reason(address: str, reason: str | None) -> None:
    assert refusal_reason(address) == reason


@pytest.mark.parametrize(
    ("address", "allow", "refused"),
    [
        ("127.0.0.1", ["127.0.0.0/8"], False),
        ("10.1.2.3", ["127.0.0.0/8"], True),
        ("10.1.2.3", ["10.0.0.0/8"], False),
        ("::ffff:10.1.2.3", ["10.0.0.0/8"], False),
        # Metadata and link-local: a network never admits them, only the exact address.
        ("169.254.169.254", ["169.254.0.0/16"], True),
        ("169.254.169.254", ["0.0.0.0/0"], True),
        ("169.254.169.254", ["169.254.169.254/32"], False),
        ("100.100.100.200", ["100.64.0.0/10"], True),
        ("100.64.0.1", ["100.64.0.0/10"], False),
        ("fe80::1", ["fe80::/10"], True),
        ("fe80::1", ["fe80::1"], False),
    ],
)
def test_allow_lets_listed_networks_through(address: str, allow: list[str], refused: bool) -> None:
    assert (refusal_reason(address, parse_networks(allow)) is not None) is refused


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
     ("[::1]:53", ("::1", 53)), ("[::1]", ("::1", 53)), (" ::1 ", ("::1", 53))],
)
def test_parse_resolver(spec: str, parsed: tuple[str, int]) -> None:
    assert parse_resolver(spec) == parsed


async def isolated_resolution() -> dict[str, Any]:
    """Runs inside a network namespace with only loopback: no IPv6 route but ::1."""
    server = IsolatedDnsServer({"dual.test": ["127.0.0.8", "2001:db8::8"], "v6.test": "2001:db8::9"}).start()
    try:
        out: dict[str, Any] = {}
        for name in ("dual.test", "v6.test"):
            # 2001:db8:: (documentation) stands for an unreachable IPv6 address here: allowed.
            allow = (*ALLOW, *parse_networks(["2001:db8::/32"]))
            res = await resolve(name, server.address, timeout=TIMEOUT, allow=allow)
            out[name] = {**res.to_json(), "usable": list(res.usable)}
        return out
    finally:
        server.stop()


def test_unreachable_address_family_is_recorded_as_skipped() -> None:
    out = run_isolated(f"{__name__}:isolated_resolution")
    dual, v6 = out["dual.test"], out["v6.test"]
    assert dual["usable"] == ["127.0.0.8"]
    assert list(dual["skipped"]) == ["2001:db8::8"]
    assert "no route" in dual["skipped"]["2001:db8::8"]
    assert dual["addresses"] == ["127.0.0.8", "2001:db8::8"]
    # Only an unreachable family: nothing to probe, but skipped, not failed or refused.
    assert v6["usable"] == [] and list(v6["skipped"]) == ["2001:db8::9"] and v6["refused"] == {}

