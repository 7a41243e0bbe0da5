"""The edge probe against real servers on loopback: vendor signatures served by
HTTP servers, CNAME chains from dnsmasq, and a real WAF (nginx + ModSecurity +
OWASP CRS) blocking the active probe."""

from __future__ import annotations

import json
import socket
import struct
import time
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest

from probes.base import AssetKind, ErrorKind, Limits, ProbeResult, RunStatus, Severity, Target
from probes.edge.judge import COVERED_REASON, UNKNOWN_WAF
from probes.edge.probe import ATTACK_PARAMS, EdgeProbe, attack_query
from probes.edge.signatures import Role, Signal, Signature, load_signatures
from probes.net.dns import resolve
from probes.registry import load_probe
from tests.support.certs import Authority, write_pair
from tests.support.context import make_target, probe_context
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, Running, Seen, closed_port, http_server, raw_server, server_context
from tests.support.waf import modsecurity_waf

SIGS = load_signatures()
SERVED = [s for s in SIGS.signatures if s.signal is not Signal.CNAME]


def findings_of(result: ProbeResult) -> dict[str, Any]:
    return {f.check_id: f for f in result.findings}


async def run(target: Target, limits: Limits | None = None) -> ProbeResult:
    async with probe_context(target, limits=limits) as ctx:
        return await EdgeProbe().run(target, ctx)


def reply_for(sig: Signature) -> Reply:
    header = sig.example_header()
    if header is not None:
        return Reply(200, "<html><body>page</body></html>", headers={header[0]: header[1]})
    return Reply(403, sig.example)


# ---------------------------------------------------------------- passive signatures from real servers


@pytest.fixture(scope="module")
def signature_server() -> Iterator[Running]:
    def route(seen: Seen) -> Reply:
        index = int(seen.path.split("?")[0].rsplit("/", 1)[-1])
        return reply_for(SERVED[index])

    with http_server({"*": route}) as srv:
        yield srv


@pytest.mark.parametrize("index", range(len(SERVED)), ids=[f"{s.vendor}-{s.signal}" for s in SERVED])
async def test_vendor_signature_served_by_a_real_server(signature_server: Running, index: int) -> None:
    sig = SERVED[index]
    target = make_target(signature_server.url_for("127.0.0.1", f"/sig/{index}"), active=False)
    result = await run(target)
    assert result.status is RunStatus.OK, result.error
    obs = result.observations
    assert obs["baseline"]["status"] == (403 if sig.signal is Signal.BODY else 200)
    waf, cdn = obs["waf"], obs["cdn"]
    if sig.conclusive:
        # Passively only a WAF-only marker proves a WAF; a CDN that sells one proves the CDN.
        assert (sig.vendor in waf["vendors"]) is sig.role.proves_waf
        assert (sig.vendor in cdn["vendors"]) is sig.role.cdn
        assert (sig.vendor in obs["proxy"]["vendors"]) is (sig.role is Role.PROXY)
        raised = set(findings_of(result))
        assert ("edge.waf.absent" in raised) is not sig.role.proves_waf
        assert ("edge.cdn.absent" in raised) is not sig.role.cdn
        evidence = (waf["evidence"] if sig.role.waf else cdn["evidence"] if sig.role.cdn
                    else obs["proxy"]["evidence"])
        assert any(e["vendor"] == sig.vendor and e["source"] == sig.source for e in evidence)
    else:
        assert sig.vendor in waf["hints"] + cdn["hints"]
        assert sig.vendor not in waf["vendors"] + cdn["vendors"]


# ---------------------------------------------------------------- CNAME chains through dnsmasq

CHAINS: dict[str, tuple[list[str], str | None, bool]] = {
    # name -> (chain served by dnsmasq, CDN vendor expected, whether the CNAME proves a WAF too)
    # A CDN that sells a WAF (Cloudflare, Imperva) proves no WAF by its CNAME (issue 16).
    "www.broker.test": (["www.broker.test.edgekey.net", "e1234.a.akamaiedge.net"], "Akamai", False),
    "trade.broker.test": (["d111111abcdef8.cloudfront.net"], "AWS CloudFront", False),
    "api.broker.test": (["api.broker.test.cdn.cloudflare.net"], "Cloudflare", False),
    "ir.broker.test": (["ir-broker.cdn.hinet.net"], "HiNet CDN", False),
    "shop.broker.test": (["abcd1.x.incapdns.net"], "Imperva", False),
    "news.broker.test": (["news.broker.test.eo.dnse3.com"], "Tencent Cloud", False),
    "img.broker.test": (["img.broker.test.c.cdnhwc3.com"], "Huawei Cloud", False),
    "cdn.broker.test": (["cdn.broker.test.wscdns.com", "x.wsglb0.com"], "Wangsu", False),
    "plain.broker.test": ([], None, False),
}


@pytest.fixture(scope="module")
def chain_dns() -> Iterator[DnsServer]:
    records: dict[str, str] = {}
    cnames: dict[str, str] = {}
    for name, (chain, _, _) in CHAINS.items():
        hops = [name, *chain]
        cnames.update(pairwise(hops))
        records[hops[-1]] = "127.0.0.1"
    server = DnsServer(records, cnames, zones=["test", "net", "com"]).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("name", sorted(CHAINS))
async def test_cname_chain_from_loopback_dns(chain_dns: DnsServer, name: str) -> None:
    chain, vendor, proves_waf = CHAINS[name]
    res = await resolve(name, chain_dns.address)
    assert list(res.cname_chain) == chain
    with http_server() as origin:
        target = make_target(origin.url_for(name), res.usable, cname_chain=res.cname_chain, active=False)
        result = await run(target)
    assert result.status is RunStatus.OK, result.error
    cdn = result.observations["cdn"]
    raised = findings_of(result)
    assert ("edge.waf.absent" in raised) is not proves_waf
    if vendor is None:
        assert cdn["vendors"] == [] and "edge.cdn.absent" in raised
    else:
        assert cdn["vendors"] == [vendor]
        assert cdn["evidence"][0]["request"] == "dns"
        assert cdn["evidence"][0]["matched"] == f"CNAME {chain[0]}"
        assert "edge.cdn.absent" not in raised
    assert result.observations["cname_chain"] == chain


# ---------------------------------------------------------------- plain origins and active probing


async def test_plain_origin_yields_both_findings() -> None:
    with http_server() as origin:
        target = make_target(origin.url_for("127.0.0.1"))
        result = await run(target)
        paths = [s.path for s in origin.seen]
        connections = [s.headers.get("connection") for s in origin.seen]
    assert result.status is RunStatus.OK
    json.dumps(result.observations)
    json.dumps([f.evidence for f in result.findings])
    # One connection per request, so a reset can only belong to the request that caused it.
    assert connections == ["close"] * 3
    found = findings_of(result)
    assert set(found) == {"edge.waf.absent", "edge.cdn.absent"}
    for f in found.values():
        assert f.key == "127.0.0.1" and f.severity is None
        assert f.evidence["covered_by_declaration"] is False
    active = result.observations["active"]
    assert active["outcome"] == "not_blocked"
    assert [r["kind"] for r in active["requests"]] == ["control", "attack"]
    # Baseline, control, attack: never more than two extra requests.
    assert len(paths) == 3 and paths[0] == "/"
    assert paths[2] == "/?" + attack_query()
    control = paths[1].split("?", 1)[1].split("&")
    assert [p.split("=")[0] for p in control] == [k for k, _ in ATTACK_PARAMS]
    assert all(p.split("=")[1].isalnum() for p in control)


@pytest.mark.parametrize("status", [404, 405, 403])
async def test_origin_refusing_odd_queries_is_not_a_waf(status: int) -> None:
    def route(seen: Seen) -> Reply:
        if "?" in seen.path:
            return Reply(status, f"<h1>{status}</h1>", headers={"Allow": "GET"} if status == 405 else {})
        return Reply(200, "<html>home</html>")

    with http_server({"*": route}) as origin:
        result = await run(make_target(origin.url_for("127.0.0.1")))
        assert len(origin.seen) == 3
    assert result.observations["active"]["outcome"] == "not_blocked"
    assert result.observations["waf"]["vendors"] == []
    assert "edge.waf.absent" in findings_of(result)


async def test_active_probes_off_sends_no_extra_request() -> None:
    with http_server() as origin:
        result = await run(make_target(origin.url_for("127.0.0.1"), active=False))
        paths = [s.path for s in origin.seen]
    assert paths == ["/"]
    active = result.observations["active"]
    assert active["outcome"] == "not_run" and active["requests"] == []
    assert set(findings_of(result)) == {"edge.waf.absent", "edge.cdn.absent"}


async def test_declared_clean_pipe_covers_cdn_finding() -> None:
    declared = {"ddos": "HiNet clean pipe, contract 2024-117"}
    with http_server() as origin:
        result = await run(make_target(origin.url_for("127.0.0.1"), declared=declared))
    found = findings_of(result)
    cdn = found["edge.cdn.absent"]
    assert cdn.severity is Severity.INFO and cdn.severity_reason == COVERED_REASON
    assert cdn.evidence["covered_by_declaration"] is True
    assert cdn.evidence["declared"] == "HiNet clean pipe, contract 2024-117"
    assert cdn.evidence["observed"]["cdn"] == []
    waf = found["edge.waf.absent"]
    assert waf.severity is None and waf.evidence["covered_by_declaration"] is False
    assert result.observations["declared"] == declared


async def test_redirect_is_followed_and_extras_go_to_the_final_page() -> None:
    routes = {
        "/": Reply(302, "", headers={"Location": "/zh-tw/index.html"}),
        "/zh-tw/index.html": Reply(200, "<html>home</html>", headers={"X-Served-By": "cache-tpe1234-TPE"}),
    }
    with http_server(routes) as origin:
        result = await run(make_target(origin.url_for("127.0.0.1")))
        paths = [s.path for s in origin.seen]
    assert paths[:2] == ["/", "/zh-tw/index.html"]
    assert all(p.startswith("/zh-tw/index.html?posture_xss=") for p in paths[2:]) and len(paths) == 4
    assert result.observations["cdn"]["vendors"] == ["Fastly"]


def _reset_on_attack(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return
        data += chunk
    if b"script" in data:
        # An inline IPS/WAF tearing the connection down: RST, no response.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        return
    body = b"<html>ok</html>"
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


async def test_connection_reset_on_attack_proves_a_waf() -> None:
    with raw_server(_reset_on_attack) as srv:
        result = await run(make_target(f"http://127.0.0.1:{srv.port}/"))
    active = result.observations["active"]
    assert active["outcome"] == "blocked", active
    assert any("connection dropped" in c for c in active["changes"])
    assert active["requests"][1]["failure"] == "dropped"
    assert result.observations["waf"]["vendors"] == [UNKNOWN_WAF]
    assert set(findings_of(result)) == {"edge.cdn.absent"}


def _silent_on_attack(sock: socket.socket) -> None:
    data = sock.recv(65536)
    if b"script" in data:
        time.sleep(2.5)  # a WAF that swallows the request: no answer at all
        return
    body = b"<html>ok</html>"
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


async def test_silence_on_attack_is_no_proof_of_a_waf() -> None:
    # A WAF may swallow the request, or the server was merely slow: no block was observed, so
    # the missing-WAF finding stands and says why (a dropped connection, by contrast, is a block).
    limits = Limits(connect_timeout=1.0, request_deadline=1.0, probe_deadline=10.0)
    with raw_server(_silent_on_attack) as srv:
        result = await run(make_target(f"http://127.0.0.1:{srv.port}/"), limits)
    active = result.observations["active"]
    assert active["outcome"] == "inconclusive", active
    assert active["requests"][1]["failure"] == "timeout"
    assert "no answer" in active["reason"]
    assert "edge.waf.absent" in findings_of(result)


async def test_spent_host_budget_leaves_the_passive_verdict() -> None:
    limits = Limits(connect_timeout=2.0, request_deadline=5.0, probe_deadline=30.0, host_budget=1)
    with http_server() as origin:
        result = await run(make_target(origin.url_for("127.0.0.1")), limits)
        assert len(origin.seen) == 1
    # The active check was not made: a partial result that says so, never a plain "ok".
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.BUDGET and "partial result" in result.error.message
    active = result.observations["active"]
    assert active["outcome"] == "not_run" and "budget" in active["reason"]
    assert set(findings_of(result)) == {"edge.waf.absent", "edge.cdn.absent"}


# ---------------------------------------------------------------- a real WAF: nginx + ModSecurity + CRS


async def test_modsecurity_blocks_the_attack_and_is_reported_as_a_waf() -> None:
    with http_server() as origin, modsecurity_waf(origin.url) as waf:
        result = await run(make_target(waf.url_for("127.0.0.1")))
        origin_paths = [s.path for s in origin.seen]
        log = waf.error_log()
    active = result.observations["active"]
    assert active["outcome"] == "blocked", active
    assert any("status 200 -> 403" in c for c in active["changes"]), active["changes"]
    assert result.observations["waf"]["vendors"] == [UNKNOWN_WAF]
    assert set(findings_of(result)) == {"edge.cdn.absent"}
    # The WAF let the baseline and the control through to the origin and stopped the attack.
    assert len(origin_paths) == 2 and all("script" not in p for p in origin_paths)
    assert "ModSecurity: Access denied with code 403" in log


async def test_modsecurity_branded_block_page_names_the_vendor() -> None:
    page = "<html><body><h1>Not Acceptable</h1>This error was generated by Mod_Security.</body></html>"
    with http_server() as origin, modsecurity_waf(origin.url, block_page=page) as waf:
        result = await run(make_target(waf.url_for("127.0.0.1")))
    assert result.observations["waf"]["vendors"] == ["ModSecurity"]
    evidence = result.observations["waf"]["evidence"]
    assert evidence[0]["request"] == "attack" and evidence[0]["signal"] == "body"
    assert "edge.waf.absent" not in findings_of(result)


async def test_modsecurity_is_invisible_without_active_probes() -> None:
    with http_server() as origin, modsecurity_waf(origin.url) as waf:
        result = await run(make_target(waf.url_for("127.0.0.1"), active=False))
        assert len(origin.seen) == 1
    assert "edge.waf.absent" in findings_of(result)
    assert result.observations["active"]["outcome"] == "not_run"


# ---------------------------------------------------------------- scope, schemes, errors


async def test_wss_target_is_probed_over_https(authority: Authority, tmp_path: Any) -> None:
    leaf = authority.leaf("quotes.broker.test", "127.0.0.1")
    cert, key = write_pair(tmp_path, "leaf", authority.chain_pem(leaf), leaf.key_pem)
    routes = {"/stream": Reply(426, "upgrade required", headers={"CF-Ray": "8a1b2c3d4e5f6a7b-TPE"})}
    with http_server(routes, tls=server_context(cert, key)) as srv:
        target = make_target(f"wss://quotes.broker.test:{srv.port}/stream", kind=AssetKind.TRADING)
        result = await run(target)
        assert [s.path.split("?")[0] for s in srv.seen] == ["/stream"] * 3
    assert result.observations["baseline"]["url"].startswith("https://quotes.broker.test:")
    # Cloudflare in front, the attack answered like the control: a CDN, not (yet) a WAF.
    assert result.observations["cdn"]["vendors"] == ["Cloudflare"]
    assert result.observations["waf"]["vendors"] == []
    assert set(findings_of(result)) == {"edge.waf.absent"}


async def test_unreachable_asset_is_a_connect_error_with_what_was_gathered() -> None:
    target = make_target(f"http://127.0.0.1:{closed_port()}/", cname_chain=("x.edgekey.net",))
    result = await run(target)
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.CONNECT
    assert result.observations["cname_chain"] == ["x.edgekey.net"]
    assert result.findings == ()


@pytest.mark.parametrize(("url", "applies"), [
    ("https://www.broker.test/", True), ("http://www.broker.test/", True),
    ("wss://quotes.broker.test/ws", True), ("tls://order.broker.test:7001", False),
])
def test_applies_to_web_targets_only(url: str, applies: bool) -> None:
    probe = load_probe("edge")
    assert probe.name == "edge" and probe.active is False
    assert probe.applies(make_target(url)) is applies
