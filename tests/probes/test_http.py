"""Probe ``http`` against real HTTP/HTTPS servers and hostile peers on loopback.

The asset host ``site.test`` exists in no DNS: every connection reaches the
servers only through the address it is pinned to.
"""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any

import pytest

from probes.base import AssetKind, ErrorKind, Limits, ProbeResult, RunStatus, Target
from probes.http.probe import HttpProbe
from probes.registry import load_probe
from tests.support import hostile
from tests.support.certs import Authority, write_pair
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, Route, Running, Seen, closed_port, http_server, raw_server, server_context

HOST = "site.test"
LIMITS = Limits(connect_timeout=1.0, request_deadline=1.5, probe_deadline=3.0, max_redirects=5)
SLACK = 0.6
STRONG = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains; preload"}


@pytest.fixture(scope="module")
def tls(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    leaf = authority.leaf(HOST)
    cert, key = write_pair(tmp_path_factory.mktemp("http-probe"), "site", authority.chain_pem(leaf), leaf.key_pem)
    return server_context(cert, key)


def target(url: str, addresses: tuple[str, ...] = ("127.0.0.1",), http_port: int | None = None,
           **kw: Any) -> Target:
    settings = {"http": {"http_port": http_port}} if http_port is not None else None
    return make_target(url, addresses, settings=settings, **kw)


async def run(t: Target, limits: Limits = LIMITS) -> ProbeResult:
    async with probe_context(t, limits=limits) as ctx:
        return await HttpProbe().run(t, ctx)


def findings(result: ProbeResult) -> dict[tuple[str, str], Mapping[str, Any]]:
    return {(f.check_id, f.key): f.evidence for f in result.findings}


def plain_obs(result: ProbeResult, port: int, address: str = "127.0.0.1") -> dict[str, Any]:
    obs: dict[str, Any] = result.observations["plain"][f"{HOST}:{port}"]["addresses"][address]
    return obs


def https_obs(result: ProbeResult, port: int, address: str = "127.0.0.1") -> dict[str, Any]:
    obs: dict[str, Any] = result.observations["https"][f"{HOST}:{port}"]["addresses"][address]
    return obs


# -- applies, registry ------------------------------------------------------


def test_registered_and_applies_to_web_targets_only() -> None:
    probe = load_probe("http")
    assert isinstance(probe.loaded(), HttpProbe) and probe.name == "http" and probe.active is False
    for scheme, applies in (("http", True), ("https", True), ("wss", True), ("tls", False)):
        assert probe.applies(make_target(f"{scheme}://{HOST}:9999/", kind=AssetKind.TRADING)) is applies


# -- plain http:// assets ---------------------------------------------------


async def test_http_asset_upgrading_to_https_with_strong_hsts_is_clean(tls: ssl.SSLContext) -> None:
    with http_server({"/": Reply(200, "secure", headers=STRONG)}, tls=tls) as secure:
        upgrade = Reply(301, headers={"Location": f"https://{HOST}:{secure.port}/"})
        with http_server({"/": upgrade}) as plain:
            result = await run(target(f"http://{HOST}:{plain.port}/"))
    assert result.status is RunStatus.OK, result.error
    assert result.findings == ()
    obs = plain_obs(result, plain.port)
    assert (obs["state"], obs["status"], obs["location"]) == ("upgrades", 301, f"https://{HOST}:{secure.port}/")
    assert obs["server"].startswith("BaseHTTP/")
    landing = https_obs(result, secure.port)
    assert landing["hsts"]["max_age"] == 31536000
    assert landing["hsts"]["include_subdomains"] and landing["hsts"]["preload"]
    assert landing["status"] == 200 and landing["server"].startswith("BaseHTTP/")
    assert result.observations["https"][f"{HOST}:{secure.port}"]["role"] == "https_landing"
    assert plain.seen[0].headers["host"] == f"{HOST}:{plain.port}"


async def test_http_asset_landing_without_hsts_is_reported_on_the_landing(tls: ssl.SSLContext) -> None:
    with http_server({"/": Reply(200, "secure")}, tls=tls) as secure:
        upgrade = Reply(308, headers={"Location": f"https://{HOST}:{secure.port}/"})
        with http_server({"/": upgrade}) as plain:
            result = await run(target(f"http://{HOST}:{plain.port}/"))
    assert set(findings(result)) == {("http.hsts.missing", f"{HOST}:{secure.port}")}


@pytest.mark.parametrize(
    ("reply", "state", "finding"),
    [
        (Reply(200, "<h1>login</h1>"), "serves_content", True),
        (Reply(404, "<h1>Not Found</h1>"), "serves_content", True),
        (Reply(204, b""), "no_content", False),
        (Reply(503, "maintenance"), "server_error", False),
        (Reply(302, headers={"Location": "https://sso.elsewhere.test/"}), "upgrades_off_host", False),
        (Reply(302, headers={"Location": "http://cdn.elsewhere.test/"}), "redirects_to_plain", True),
        (Reply(301, headers={"Location": "ftp://site.test/"}), "bad_redirect", False),
    ],
    ids=["200", "404-with-content", "204-empty", "503", "https-off-host", "http-off-host", "ftp"],
)
async def test_http_asset_first_response_is_judged(reply: Reply, state: str, finding: bool) -> None:
    with http_server({"/": reply}) as plain:
        result = await run(target(f"http://{HOST}:{plain.port}/"))
    assert result.status is RunStatus.OK, result.error
    assert plain_obs(result, plain.port)["state"] == state
    found = findings(result)
    assert (("http.no_https", f"{HOST}:{plain.port}") in found) is finding
    assert len(plain.seen) == 1  # nothing off the host, nothing upgraded, was requested
    if finding:
        evidence = found[("http.no_https", f"{HOST}:{plain.port}")]
        assert evidence["addresses"] == ["127.0.0.1"] and evidence["reason"] == state


async def test_plain_redirects_within_host_are_followed_and_recorded() -> None:
    routes: dict[str, Route] = {
        "/": Reply(302, headers={"Location": "/start"}),
        "/start": Reply(301, headers={"Location": "/home"}),
        "/home": Reply(200, "<h1>plain home</h1>"),
    }
    with http_server(routes) as plain:
        result = await run(target(f"http://{HOST}:{plain.port}/"))
    base = f"http://{HOST}:{plain.port}"
    evidence = findings(result)[("http.no_https", f"{HOST}:{plain.port}")]
    assert evidence["chain"] == [f"{base}/", f"{base}/start", f"{base}/home"]
    assert evidence["final_url"] == f"{base}/home" and evidence["status"] == 200
    obs = plain_obs(result, plain.port)
    assert [h["status"] for h in obs["chain"]] == [302, 301, 200]
    assert (obs["status"], obs["location"]) == (302, f"{base}/start")  # the first response


async def test_plain_redirect_within_host_ending_in_https_is_fine(tls: ssl.SSLContext) -> None:
    with http_server({"/": Reply(200, "ok", headers=STRONG)}, tls=tls) as secure:
        routes: dict[str, Route] = {
            "/": Reply(302, headers={"Location": "/lang"}),
            "/lang": Reply(301, headers={"Location": f"https://{HOST}:{secure.port}/"}),
        }
        with http_server(routes) as plain:
            result = await run(target(f"http://{HOST}:{plain.port}/"))
    assert result.status is RunStatus.OK and result.findings == ()
    assert len(plain_obs(result, plain.port)["chain"]) == 2


# -- https:// assets and their http:// twin -----------------------------------


@pytest.mark.parametrize(
    ("headers", "reason", "max_age"),
    [
        ({}, "missing", None),
        ({"Strict-Transport-Security": "max-age=0"}, "short_max_age", 0),
        ({"Strict-Transport-Security": "max-age=100; includeSubDomains"}, "short_max_age", 100),
        ({"Strict-Transport-Security": "max-age=soon"}, "malformed", None),
        (STRONG, None, None),
        ({"Strict-Transport-Security": "max-age=15768000"}, None, None),
        ({"Strict-Transport-Security": "max-age=15551999"}, "short_max_age", 15551999),
    ],
    ids=["missing", "max-age-0", "max-age-100", "malformed", "one-year", "six-months", "just-under-180d"],
)
async def test_https_asset_hsts(
    tls: ssl.SSLContext, headers: dict[str, str], reason: str | None, max_age: int | None
) -> None:
    with http_server({"/": Reply(200, "hi", headers=headers)}, tls=tls) as secure:
        result = await run(target(f"https://{HOST}:{secure.port}/", http_port=closed_port()))
    assert result.status is RunStatus.OK, result.error
    found = findings(result)
    check = "http.hsts.short_max_age" if reason == "short_max_age" else "http.hsts.missing"
    key = (check, f"{HOST}:{secure.port}")
    if reason is None:
        assert found == {}
        return
    assert set(found) == {key}
    assert found[key]["reason"] == reason
    assert found[key].get("max_age") == max_age
    assert https_obs(result, secure.port)["hsts"]["state"] == reason


async def test_hsts_threshold_comes_from_the_http_setting(tls: ssl.SSLContext) -> None:
    headers = {"Strict-Transport-Security": "max-age=15768000"}
    with http_server({"/": Reply(200, "hi", headers=headers)}, tls=tls) as secure:
        t = make_target(f"https://{HOST}:{secure.port}/", ("127.0.0.1",),
                        settings={"http": {"http_port": closed_port(), "hsts_min_age": "365d"}})
        result = await run(t)
    found = findings(result)
    key = ("http.hsts.short_max_age", f"{HOST}:{secure.port}")
    assert set(found) == {key}
    assert found[key]["min_age"] == 31536000 and found[key]["max_age"] == 15768000
    assert https_obs(result, secure.port)["hsts"]["min_age"] == 31536000


async def test_hsts_set_after_an_in_host_redirect_counts(tls: ssl.SSLContext) -> None:
    routes: dict[str, Route] = {
        "/": Reply(302, headers={"Location": "/en/"}),
        "/en/": Reply(200, "page", headers=STRONG),
    }
    with http_server(routes, tls=tls) as secure:
        result = await run(target(f"https://{HOST}:{secure.port}/", http_port=closed_port()))
    assert result.findings == ()
    obs = https_obs(result, secure.port)
    assert obs["status"] == 302 and obs["hsts_from"] == f"https://{HOST}:{secure.port}/en/"
    assert [s.path for s in secure.seen] == ["/", "/en/"]


async def test_https_twin_serving_content_is_no_https(tls: ssl.SSLContext) -> None:
    with http_server({"/": Reply(200, "hi", headers=STRONG)}, tls=tls) as secure, \
            http_server({"*": Reply(200, "<h1>plain twin</h1>")}) as twin:
        result = await run(target(f"https://{HOST}:{secure.port}/app?x=1", http_port=twin.port))
    assert result.status is RunStatus.OK, result.error
    evidence = findings(result)[("http.no_https", f"{HOST}:{twin.port}")]
    assert evidence["url"] == f"http://{HOST}:{twin.port}/app?x=1"
    assert twin.seen[0].path == "/app?x=1" and twin.seen[0].headers["host"] == f"{HOST}:{twin.port}"
    assert result.observations["http_port"] == twin.port
    assert result.observations["plain"][f"{HOST}:{twin.port}"]["role"] == "http_twin"


async def test_https_twin_redirecting_to_https_is_fine(tls: ssl.SSLContext) -> None:
    with http_server({"/": Reply(200, "hi", headers=STRONG)}, tls=tls) as secure:
        upgrade = Reply(301, headers={"Location": f"https://{HOST}:{secure.port}/"})
        with http_server({"/": upgrade}) as twin:
            result = await run(target(f"https://{HOST}:{secure.port}/", http_port=twin.port))
    assert result.status is RunStatus.OK and result.findings == ()
    assert plain_obs(result, twin.port)["state"] == "upgrades"
    assert len(secure.seen) == 1  # the twin's upgrade is judged, not fetched again


async def test_closed_twin_is_fine_and_no_error(tls: ssl.SSLContext) -> None:
    port = closed_port()
    with http_server({"/": Reply(200, "hi", headers=STRONG)}, tls=tls) as secure:
        result = await run(target(f"https://{HOST}:{secure.port}/", http_port=port))
    assert result.status is RunStatus.OK and result.error is None and result.findings == ()
    assert plain_obs(result, port) == {"state": "closed", "status": None, "location": None,
                                       "server": None, "chain": []}


async def test_twin_defaults_to_port_80_on_the_pinned_address() -> None:
    # A fresh loopback address: nothing listens on its port 80, so the twin is closed.
    address = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    with raw_server(hostile.tls_alert, host=address) as secure:
        result = await run(target(f"wss://{HOST}:{secure.port}/feed", (address,)))
    assert result.observations["http_port"] == 80
    assert plain_obs(result, 80, address)["state"] == "closed"
    assert result.error is not None and result.error.kind is ErrorKind.PROTOCOL  # from the TLS port


async def test_every_address_is_asked_and_findings_list_the_failing_ones() -> None:
    addresses = ("127.0.0.21", "127.0.0.22")
    with two_servers(addresses, [Reply(301, headers={"Location": f"https://{HOST}/"}),
                                 Reply(200, "<h1>stale node</h1>")]) as port:
        result = await run(target(f"http://{HOST}:{port}/", addresses))
    evidence = findings(result)[("http.no_https", f"{HOST}:{port}")]
    assert evidence["addresses"] == ["127.0.0.22"]
    assert plain_obs(result, port, "127.0.0.21")["state"] == "upgrades"
    assert plain_obs(result, port, "127.0.0.22")["state"] == "serves_content"


@contextmanager
def two_servers(addresses: tuple[str, str], replies: list[Reply]) -> Iterator[int]:
    """The same port on two loopback addresses, each with its own reply."""
    for _ in range(20):
        with ExitStack() as stack:
            first = stack.enter_context(http_server({"*": replies[0]}, host=addresses[0]))
            try:
                stack.enter_context(http_server({"*": replies[1]}, host=addresses[1], port=first.port))
            except OSError:
                continue
            yield first.port
            return
    raise RuntimeError("no port free on both addresses")


async def test_invalid_http_port_setting_is_an_error_not_a_crash(tls: ssl.SSLContext) -> None:
    with http_server({"/": Reply(200, "hi", headers=STRONG)}, tls=tls) as secure:
        t = make_target(f"https://{HOST}:{secure.port}/", settings={"http": {"http_port": "eighty"}})
        result = await run(t)
    assert result.status is RunStatus.ERROR and result.error is not None
    assert "http_port" in result.error.message
    assert https_obs(result, secure.port)["hsts"]["state"] == "ok"  # gathered before the error


# -- hostile and broken servers ----------------------------------------------


def _closed() -> AbstractContextManager[Running]:
    return nullcontext(Running("127.0.0.1", closed_port(), [], "tcp"))


def _loop(seen: Seen) -> Reply:
    return Reply(302, headers={"Location": "/b" if seen.path == "/a" else "/a"})


HOSTILE: list[tuple[str, str, Callable[[], AbstractContextManager[Running]], ErrorKind]] = [
    ("closed port", "http", _closed, ErrorKind.CONNECT),
    ("closed TLS port", "https", _closed, ErrorKind.CONNECT),
    ("plain HTTP on the TLS port", "https", lambda: http_server({"*": Reply(200, "plain")}), ErrorKind.PROTOCOL),
    ("garbage bytes", "http", lambda: raw_server(hostile.garbage), ErrorKind.PROTOCOL),
    ("hangs up", "http", lambda: raw_server(hostile.hang_up), ErrorKind.PROTOCOL),
    ("never answers", "http", lambda: raw_server(hostile.silent), ErrorKind.TIMEOUT),
    ("never answers TLS", "https", lambda: raw_server(hostile.silent), ErrorKind.TIMEOUT),
    ("trickles the status line", "http", lambda: raw_server(hostile.trickle()), ErrorKind.TIMEOUT),
    ("trickles the body", "http", lambda: raw_server(hostile.trickle_body()), ErrorKind.TIMEOUT),
    ("header flood", "http", lambda: raw_server(hostile.header_flood()), ErrorKind.PROTOCOL),
    ("redirect loop", "http", lambda: http_server({"*": _loop}), ErrorKind.PROTOCOL),
    ("half a ServerHello", "https", lambda: raw_server(hostile.tls_half_hello), ErrorKind.PROTOCOL),
    ("TLS alert", "https", lambda: raw_server(hostile.tls_alert), ErrorKind.PROTOCOL),
]


@pytest.mark.parametrize(("scheme", "server", "kind"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
async def test_hostile_server_ends_as_typed_probe_error_within_deadline(
    scheme: str, server: Callable[[], AbstractContextManager[Running]], kind: ErrorKind
) -> None:
    with server() as srv:
        t = target(f"{scheme}://{HOST}:{srv.port}/a", http_port=closed_port())
        started = time.monotonic()
        result = await run(t)
        elapsed = time.monotonic() - started
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is kind, result.error.message
    assert result.error.probe == "http"
    assert elapsed < LIMITS.request_deadline + SLACK  # one request's deadline, not the probe's
    endpoint = "plain" if scheme == "http" else "https"
    recorded = result.observations[endpoint][f"{HOST}:{srv.port}"]["addresses"]["127.0.0.1"]
    assert recorded["error"]["kind"] == kind.value
    assert not any(f.check_id == "http.no_https" for f in result.findings)


async def test_probe_deadline_bounds_the_whole_probe() -> None:
    limits = Limits(connect_timeout=1.0, request_deadline=10.0, probe_deadline=1.0)
    with raw_server(hostile.trickle(interval=0.2)) as srv:
        started = time.monotonic()
        result = await run(target(f"http://{HOST}:{srv.port}/"), limits)
        elapsed = time.monotonic() - started
    assert result.error is not None and result.error.kind is ErrorKind.TIMEOUT
    assert elapsed < limits.probe_deadline + SLACK


async def test_silent_twin_after_a_good_https_asset_keeps_what_was_gathered(tls: ssl.SSLContext) -> None:
    with http_server({"/": Reply(200, "hi")}, tls=tls) as secure, raw_server(hostile.silent) as twin:
        started = time.monotonic()
        result = await run(target(f"https://{HOST}:{secure.port}/", http_port=twin.port))
        elapsed = time.monotonic() - started
    assert result.error is not None and result.error.kind is ErrorKind.TIMEOUT
    assert elapsed < LIMITS.probe_deadline + SLACK
    assert set(findings(result)) == {("http.hsts.missing", f"{HOST}:{secure.port}")}  # kept


@pytest.mark.parametrize("bomb", [False, True], ids=["1 GiB body", "gzip bomb"])
async def test_huge_plain_body_is_capped_and_still_judged(bomb: bool) -> None:
    hostile._gzip_zero_pieces()
    with raw_server(hostile.huge_body(gzip=bomb)) as srv:
        started = time.monotonic()
        result = await run(target(f"http://{HOST}:{srv.port}/"))
        elapsed = time.monotonic() - started
    assert result.status is RunStatus.OK, result.error
    final = plain_obs(result, srv.port)["chain"][-1]
    assert final["truncated"] is True and final["body_length"] == 16 * 1024
    assert ("http.no_https", f"{HOST}:{srv.port}") in findings(result)
    assert elapsed < LIMITS.request_deadline


async def test_tls_listener_on_the_twin_port_is_a_protocol_error(tls: ssl.SSLContext) -> None:
    # The twin is expected to speak HTTP; a TLS-only listener there is broken, not closed.
    with http_server({"/": Reply(200, "hi", headers=STRONG)}, tls=tls) as secure, \
            http_server({"/": Reply(200, "x")}, tls=tls) as tls_on_twin:
        result = await run(target(f"https://{HOST}:{secure.port}/", http_port=tls_on_twin.port))
    assert result.error is not None and result.error.kind is ErrorKind.PROTOCOL
    assert plain_obs(result, tls_on_twin.port)["error"]["kind"] == result.error.kind.value



# -- end-of-life software named in headers (software.eol) ---------------------


async def test_end_of_life_software_in_headers_is_found(tls: ssl.SSLContext) -> None:
    old = {**STRONG, "Server": "Apache/2.2.34 (Unix)", "X-Powered-By": "PHP/5.6.40"}
    with http_server({"/": Reply(200, "hi", headers=old)}, tls=tls) as secure:
        result = await run(target(f"https://{HOST}:{secure.port}/", http_port=closed_port()))
    eol = {f.key: f.evidence for f in result.findings if f.check_id == "software.eol"}
    assert set(eol) == {"apache-http-server:2.2", "php:5.6"}, eol
    for evidence in eol.values():
        assert evidence["days_past"] > 0
    assert {b["product"].lower() for b in result.observations["banners"]} >= {"apache", "php"}


async def test_supported_software_in_headers_is_not_found(tls: ssl.SSLContext) -> None:
    current = {**STRONG, "Server": "Apache/2.4.62 (Unix)"}
    with http_server({"/": Reply(200, "hi", headers=current)}, tls=tls) as secure:
        result = await run(target(f"https://{HOST}:{secure.port}/", http_port=closed_port()))
    assert [f for f in result.findings if f.check_id == "software.eol"] == []
    assert any(b["product"].lower() == "apache" for b in result.observations["banners"])
