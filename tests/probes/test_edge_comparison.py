"""Issue 16, WAF and CDN, against real servers on loopback: a CDN is not a WAF, blocks
are found by comparing the attack with the control (whatever the status), a gateway's
own error page is not a WAF, and the attack request is harmless by construction.

Impersonations are real HTTP servers started here that answer with a vendor's headers
or block pages; the gateway and the log-only WAF are real nginx (+ ModSecurity + CRS).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from probes.base import ProbeResult, RunStatus, Target
from probes.edge.judge import UNKNOWN_WAF
from probes.edge.probe import ATTACK_PARAMS, EdgeProbe
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, Seen, http_server, raw_server
from tests.support.waf import modsecurity_waf

HOME = ("<!doctype html><html><head><title>Fixture Securities</title></head><body><h1>Fixture Securities</h1>"
        "<p>Online trading, research reports, account opening and market news for our customers.</p>"
        "<p>Call centre 0800-000-000.</p></body></html>")
CF = {"CF-Ray": "8a1b2c3d4e5f6a7b-TPE", "Server": "cloudflare", "CF-Cache-Status": "DYNAMIC"}


async def run(target: Target) -> ProbeResult:
    async with probe_context(target) as ctx:
        result = await EdgeProbe().run(target, ctx)
    assert result.status is RunStatus.OK, result.error
    return result


def checks(result: ProbeResult) -> set[str]:
    return {f.check_id for f in result.findings}


def is_attack(seen: Seen) -> bool:
    return "posture_xss=%3Cscript" in seen.path


def site(attack: Reply, headers: dict[str, str] | None = None) -> dict[str, Any]:
    def route(seen: Seen) -> Reply:
        return attack if is_attack(seen) else Reply(200, HOME, headers=dict(headers or {}))

    return {"*": route}


async def test_cdn_only_cloudflare_keeps_the_waf_finding() -> None:
    with http_server(site(Reply(200, HOME, headers=CF), CF)) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
    obs = result.observations
    assert obs["cdn"]["vendors"] == ["Cloudflare"]
    assert obs["waf"]["vendors"] == [] and obs["active"]["outcome"] == "not_blocked"
    assert checks(result) == {"edge.waf.absent"}
    waf = next(f for f in result.findings if f.check_id == "edge.waf.absent")
    assert waf.evidence["observed"]["note"] == (
        "CDN Cloudflare in front; the attack request was not blocked (the WAF may be off or in log-only mode)")


async def test_cdn_only_cloudflare_declared_waf_is_covered() -> None:
    with http_server(site(Reply(200, HOME, headers=CF), CF)) as srv:
        target = make_target(srv.url_for("127.0.0.1"), declared={"waf": "Cloudflare WAF managed rules, log only"})
        result = await run(target)
    (waf,) = result.findings
    assert waf.check_id == "edge.waf.absent" and waf.evidence["covered_by_declaration"] is True


async def test_cloudflare_that_blocks_is_the_waf() -> None:
    block = Reply(403, "<title>Attention Required! | Cloudflare</title><h1>Sorry, you have been blocked</h1>", CF)
    with http_server(site(block, CF)) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
    assert result.observations["waf"]["vendors"] == ["Cloudflare"]
    assert checks(result) == set()


@pytest.mark.parametrize(("status", "body"), [
    (200, "<html><body><h1>Request Rejected</h1><p>The requested URL was refused by policy. "
          "Your support ID is: 1234567890</p></body></html>"),
    (418, "<html><body><h1>Blocked</h1></body></html>"),
    (999, ""),
    (200, "<html><body><h1>很抱歉，您的請求已被攔截</h1><p>事件編號 5531</p></body></html>"),
])
async def test_block_pages_are_found_whatever_the_status(status: int, body: str) -> None:
    with http_server(site(Reply(status, body))) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
    active = result.observations["active"]
    assert active["outcome"] == "blocked", active
    assert result.observations["waf"]["vendors"] == [UNKNOWN_WAF]
    assert "edge.waf.absent" not in checks(result)


async def test_pooled_backends_with_different_server_headers_are_not_a_waf() -> None:
    count = {"n": 0}

    def route(seen: Seen) -> Reply:
        count["n"] += 1
        return Reply(200, HOME, headers={"Server": "nginx" if count["n"] < 3 else "Apache/2.4.62 (Debian)"})

    with http_server({"*": route}) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
    assert result.observations["active"]["outcome"] == "not_blocked"
    assert "edge.waf.absent" in checks(result)


def _reset_on_attack(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return
        data += chunk
    if b"posture_xss=%3Cscript" in data:
        sock.close()  # the origin dies on this request: the gateway in front answers 502
        return
    body = HOME.encode()
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                 % (len(body), body))


async def test_a_real_gateways_502_is_not_a_waf() -> None:
    # Real nginx in front (ModSecurity log-only so it blocks nothing); the origin fails on the attack.
    with raw_server(_reset_on_attack) as origin, \
            modsecurity_waf(f"http://127.0.0.1:{origin.port}", rule_engine="DetectionOnly") as gateway:
        result = await run(make_target(gateway.url_for("127.0.0.1")))
    active = result.observations["active"]
    assert active["requests"][1]["status"] == 502, active
    assert active["outcome"] == "not_blocked" and "gateway" in active["reason"]
    assert "edge.waf.absent" in checks(result)


async def test_a_real_waf_in_log_only_mode_is_not_a_waf() -> None:
    with http_server() as origin, modsecurity_waf(origin.url, rule_engine="DetectionOnly") as waf:
        result = await run(make_target(waf.url_for("127.0.0.1")))
        reached = [s.path for s in origin.seen]
    assert result.observations["active"]["outcome"] == "not_blocked"
    assert "edge.waf.absent" in checks(result)
    assert any(is_attack(Seen("GET", p, {})) for p in reached)  # the attack went through to the origin


async def test_fortigate_ips_block_page_is_fortigate() -> None:
    page = ("<html><head><title>Web Filter Violation</title></head><body><h1>FortiGuard Intrusion Prevention - "
            "Access Blocked</h1><p>Web Page Blocked</p><img class='fgd_icon' src='//globalurl.fortinet.net/x.png'>"
            "</body></html>")
    with http_server(site(Reply(403, page))) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
    assert result.observations["waf"]["vendors"] == ["Fortinet FortiGate"]


@pytest.mark.parametrize(("headers", "vendor", "role"), [
    ({"X-Data-Origin": "naxsi/waf"}, "NAXSI", "waf"),
    ({"Set-Cookie": "rbzid=Zm9vYmFy; path=/"}, "Reblaze", "waf"),
    ({"Server": "ECS (tpe/9B3A)"}, "Edgio / Edgecast", "cdn"),
    ({"Set-Cookie": "AWSALB=abc/def; Path=/", "Server": "awselb/2.0"}, "AWS Elastic Load Balancing", "proxy"),
    ({"Set-Cookie": "MRHSession=0123456789abcdef; path=/"}, "F5 BIG-IP APM", "proxy"),
    ({"Set-Cookie": "ANsession=0a1b2c3d; path=/"}, "Array Networks", "proxy"),
    ({"X-Sucuri-ID": "16014", "Server": "Sucuri/Cloudproxy"}, "Sucuri", "cdn"),
    ({"X-Iinfo": "9-12345-0 0NNN RT(1700000000000 0) q(0 -1 -1 -1) r(0 -1)"}, "Imperva", "cdn"),
])
async def test_vendor_impersonations(headers: dict[str, str], vendor: str, role: str) -> None:
    with http_server(site(Reply(200, HOME, headers=headers), headers)) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
    obs = result.observations
    assert vendor in obs[role]["vendors"]
    assert ("edge.waf.absent" in checks(result)) is (role != "waf")


async def test_the_attack_request_is_harmless_by_construction() -> None:
    with http_server() as origin:
        await run(make_target(origin.url_for("127.0.0.1")))
        seen = list(origin.seen)
    assert [s.method for s in seen] == ["GET"] * 3
    attack = seen[2]
    params = parse_qsl(urlsplit(attack.path).query, keep_blank_values=True)
    assert [k for k, _ in params] == [k for k, _ in ATTACK_PARAMS]
    assert all(k.startswith("posture_") for k, _ in params)  # no name an application reads
    assert dict(params) == dict(ATTACK_PARAMS)
    sent = {k.lower() for k in attack.headers}
    assert "content-length" not in sent and "cookie" not in sent and "transfer-encoding" not in sent
    for _, value in ATTACK_PARAMS:
        lowered = value.lower()
        assert not any(word in lowered for word in ("drop ", "delete ", "update ", "insert ", ";", "sleep(", "|"))


async def test_modsecurity_still_blocks_the_posture_only_parameters() -> None:
    with http_server() as origin, modsecurity_waf(origin.url) as waf:
        result = await run(make_target(waf.url_for("127.0.0.1")))
        # each hostile value alone trips the Core Rule Set at its default paranoia level
        alone = {}
        for name, value in ATTACK_PARAMS:
            try:
                urllib.request.urlopen(waf.url_for("127.0.0.1", "/?" + urlencode({name: value})), timeout=5)
                alone[name] = 200
            except urllib.error.HTTPError as exc:
                alone[name] = exc.code
        log = waf.error_log()
    assert result.observations["active"]["outcome"] == "blocked"
    assert "Access denied with code 403" in log
    assert alone == {name: 403 for name, _ in ATTACK_PARAMS}
