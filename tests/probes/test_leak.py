"""The leak probe against real local HTTP servers (tests.support.servers) on 127.0.6.x."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import pytest

from probes.base import ErrorKind, Limits, ProbeResult, RunStatus
from probes.leak.probe import LeakProbe
from probes.leak.provoke import MAX_REQUESTS, UNSUPPORTED_METHOD
from probes.net.web import http_url
from probes.registry import load_probe
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, Running, Seen, closed_port, http_server, raw_server

HOST = "127.0.6.60"
HOME = """<!doctype html><html><head><title>Fixture Securities</title></head><body>
<h1>Fixture Securities</h1>
<p>Our blog explains SQL errors, exceptions, stack traces and what a Traceback is.</p>
<a href="/products?id=7">Product 7</a> <a href="/about">About</a> <a href="/logout?next=/">Log out</a>
</body></html>"""
PRODUCT = "<html><body><p>Product 7: a bond fund.</p></body></html>"
NOT_FOUND = Reply(404, "<h1>Not Found</h1><p>The page does not exist. Error code 404.</p>")
TRACE = 'Traceback (most recent call last):\n  File "/srv/shop/views.py", line 41, in product\nValueError: bad id\n'
PHP_FATAL = ("<br />\n<b>Fatal error</b>:  Uncaught TypeError: price(): Argument #1 ($id) must be of type int in "
             "<b>/var/www/html/products.php</b> on line <b>6</b><br />")
Route = Callable[[Seen], Reply]


def site(
    *,
    home: str = HOME,
    param: Reply | None = None,
    not_found: Reply = NOT_FOUND,
    extra: Mapping[str, Reply] | None = None,
) -> dict[str, Route | Reply]:
    """A small site: home, /products?id=7, and chosen answers to the provocations."""

    def route(seen: Seen) -> Reply:
        path, _, query = seen.path.partition("?")
        if seen.method == UNSUPPORTED_METHOD:
            return Reply(405, "<h1>Method Not Allowed</h1>")
        if extra and seen.path in extra:
            return extra[seen.path]
        if path == "/":
            return Reply(200, home)
        if path == "/products":
            return Reply(200, PRODUCT) if query == "id=7" else (param or Reply(400, "<p>Invalid product.</p>"))
        if path == "/about":
            return Reply(200, "<html><body><p>About us</p></body></html>")
        return not_found

    return {"*": route}


@contextmanager
def serving(routes: dict[str, Route | Reply]) -> Iterator[Running]:
    with http_server(routes, host=HOST) as srv:
        yield srv


async def scan(srv: Running, *, limits: Limits | None = None, active: bool = True) -> ProbeResult:
    target = make_target(srv.url, (srv.host,), active=active)
    async with probe_context(target, limits=limits) as ctx:
        return await LeakProbe().run(target, ctx)


def leak_keys(result: ProbeResult) -> set[str]:
    return {f.key for f in result.findings if f.check_id != "leak.version_banner"}


def test_registered_and_active_for_web_assets_only() -> None:
    probe = load_probe("leak")
    assert isinstance(probe.loaded(), LeakProbe) and probe.active is True
    assert probe.applies(make_target("https://broker.test/"))
    assert not probe.applies(make_target("https://broker.test/", active=False))
    assert not probe.applies(make_target("tls://orders.broker.test:9443"))


async def test_inactive_asset_gets_no_request_at_all() -> None:
    with serving(site()) as srv:
        result = await scan(srv, active=False)
    assert result.status is RunStatus.SKIPPED and "active" in (result.skip_reason or "")
    assert srv.seen == []


async def test_plain_site_sends_each_provocation_once_and_finds_nothing() -> None:
    with serving(site()) as srv:
        result = await scan(srv)
    assert result.status is RunStatus.OK, result.error
    assert leak_keys(result) == set()  # the home page's words about errors are not a leak
    sent = [(s.method, s.path) for s in srv.seen]
    assert len(sent) == result.observations["request_count"] <= MAX_REQUESTS
    not_found = sorted(p for m, p in sent if p.startswith("/posture-"))
    token = not_found[0].removeprefix("/posture-")
    assert not_found == sorted(f"/posture-{token}{s}" for s in ("", ".aspx", ".php", ".jsp", ".do"))
    assert ("GET", "/%posture%zz") in sent  # malformed percent-encoding arrived byte for byte
    assert (UNSUPPORTED_METHOD, "/") in sent
    assert {p for _, p in sent if p.startswith("/products")} == {
        "/products?id=7", "/products?id=7%27", "/products?id=posture"}
    assert not any("logout" in p for _, p in sent)  # a link that changes state is never followed
    assert all(s.headers.get("accept", "").startswith("text/html") for s in srv.seen)


async def test_fatal_error_answered_with_200_is_found_with_its_evidence() -> None:
    with serving(site(param=Reply(200, PHP_FATAL))) as srv:
        first = await scan(srv)
        second = await scan(srv)
    assert leak_keys(first) == {"param_quote:php.error_with_path", "param_type:php.error_with_path"}
    f = next(f for f in first.findings if f.key == "param_quote:php.error_with_path")
    ev = f.evidence
    assert ev["request"] == {"method": "GET", "path": "/products?id=7%27", "parameter": "id"}
    assert (ev["status"], ev["content_type"], ev["signature"], ev["provocation"]) == (
        200, "text/html", "php.error_with_path", "param_quote")
    assert "products.php on line 6" in str(ev["excerpt"]) and len(str(ev["excerpt"])) <= 300
    json.dumps({"observations": first.observations, "evidence": [dict(f.evidence) for f in first.findings]})
    # keys never carry the random path: the next scan finds the same findings
    assert {f.key for f in second.findings} == {f.key for f in first.findings}
    paths = [{s.path for s in srv.seen if s.path.startswith("/posture-")}]
    assert len(paths[0]) == 10  # two scans, two different random tokens


async def test_signature_already_on_the_home_page_is_not_blamed_on_the_provocation() -> None:
    article = f"<article><h2>Our old error page</h2><pre>{TRACE}</pre></article>"
    routes = site(home=HOME + article, not_found=Reply(404, "<h1>Not Found</h1>" + article))
    with serving(routes) as srv:
        result = await scan(srv)
    assert leak_keys(result) == set()
    assert result.observations["suppressed_by_normal_page"] == {"python.traceback": ["home"]}


async def test_error_page_reached_by_redirect_names_the_request_posture_sent() -> None:
    extra = {"/error?code=404": Reply(500, f"<pre>{TRACE}</pre>")}
    routes = site(not_found=Reply(302, "", headers={"Location": "/error?code=404"}), extra=extra)
    with serving(routes) as srv:
        result = await scan(srv)
    assert leak_keys(result) == {"not_found:python.traceback", "bad_encoding:python.traceback"}
    f = next(f for f in result.findings if f.key == "not_found:python.traceback")
    assert str(f.evidence["request"]["path"]).startswith("/posture-")
    assert str(f.evidence["final_url"]).endswith("/error?code=404")
    assert len(f.evidence["also_matched"]) == 4


async def test_home_behind_a_redirect_and_relative_links() -> None:
    extra = {"/": Reply(302, "", headers={"Location": "/zh-tw/"}),
             "/zh-tw/": Reply(200, '<a href="news?id=3">News</a>'),
             "/zh-tw/news?id=3": Reply(200, "<p>News 3</p>"),
             "/zh-tw/news?id=3%27": Reply(500, f"<pre>{TRACE}</pre>")}
    with serving(site(extra=extra)) as srv:
        result = await scan(srv)
    assert leak_keys(result) == {"param_quote:python.traceback"}
    assert "/zh-tw/news?id=posture" in {s.path for s in srv.seen}


async def test_parameters_found_on_a_linked_page_when_the_home_page_has_none() -> None:
    extra = {"/": Reply(200, '<a href="/about">About</a>'),
             "/about": Reply(200, '<a href="/report?year=2025">Annual report</a>'),
             "/report?year=2025": Reply(200, "<p>Report</p>"),
             "/report?year=2025%27": Reply(500, "<p>ORA-01756: quoted string not properly terminated</p>")}
    with serving(site(extra=extra)) as srv:
        result = await scan(srv)
    assert leak_keys(result) == {"param_quote:oracle.error"}
    roles = [r["role"] for r in result.observations["requests"]]
    assert roles.count("discovery") == 1 and roles.count("reference") == 1
    assert len(srv.seen) <= MAX_REQUESTS


async def test_a_variant_is_compared_with_its_page_even_when_that_page_redirects() -> None:
    quoted = ("<p>From our FAQ: You have an error in your SQL syntax; check the manual that corresponds to your "
              "MySQL server version</p>")
    extra = {"/": Reply(200, '<a href="/faq?id=4">FAQ</a>'),
             "/faq?id=4": Reply(301, "", headers={"Location": "/faq/4"}),
             "/faq/4": Reply(200, quoted),
             "/faq?id=4%27": Reply(200, quoted), "/faq?id=posture": Reply(200, quoted)}
    with serving(site(extra=extra)) as srv:
        result = await scan(srv)
    assert leak_keys(result) == set()
    assert "mysql.error" in result.observations["suppressed_by_normal_page"]


async def test_binary_answers_are_not_read() -> None:
    with serving(site(not_found=Reply(500, TRACE, content_type="image/png"))) as srv:
        result = await scan(srv)
    assert leak_keys(result) == set()


async def test_bodies_are_capped_at_one_mebibyte() -> None:
    filler = "<p>" + "x" * (1 << 20) + "</p>"
    extra = {"/posture-late": Reply(500, filler + f"<pre>{TRACE}</pre>")}
    late = Reply(500, filler + f"<pre>{TRACE}</pre>")
    early = Reply(500, f"<pre>{TRACE}</pre>" + filler)
    with serving(site(not_found=late, param=early, extra=extra)) as srv:
        result = await scan(srv)
    assert leak_keys(result) == {"param_quote:python.traceback", "param_type:python.traceback"}
    f = next(f for f in result.findings if f.key == "param_quote:python.traceback")
    assert f.evidence["truncated"] is True
    log = result.observations["requests"]
    assert all(r.get("bytes", 0) <= 1 << 20 for r in log)


async def test_version_banners_come_from_the_home_page_headers() -> None:
    home = Reply(200, HOME, headers={"X-Powered-By": "PHP/7.4.3", "X-AspNet-Version": "4.0.30319"})
    with serving(site(extra={"/": home})) as srv:
        result = await scan(srv)
    banners = {f.key: f.evidence for f in result.findings if f.check_id == "leak.version_banner"}
    # BaseHTTPRequestHandler itself says "Server: BaseHTTP/0.6 Python/3.x"
    assert set(banners) == {"banner:x-powered-by:php", "banner:x-aspnet-version:asp.net",
                            "banner:server:basehttp", "banner:server:python"}
    assert banners["banner:x-powered-by:php"]["provocation"] == "baseline"
    assert banners["banner:x-powered-by:php"]["version"] == "7.4.3"


async def test_deadline_ends_the_probe_with_what_it_judged() -> None:
    def slow(seen: Seen) -> Reply:
        time.sleep(3)
        return NOT_FOUND

    routes = site(param=Reply(200, PHP_FATAL))
    inner = routes["*"]
    assert callable(inner)
    routes["*"] = lambda seen: slow(seen) if seen.path.endswith(".do") else inner(seen)
    limits = Limits(connect_timeout=2.0, request_deadline=5.0, probe_deadline=1.0)
    started = time.monotonic()
    with serving(routes) as srv:
        result = await scan(srv, limits=limits)
    assert time.monotonic() - started < 3.0
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.TIMEOUT
    assert "param_quote:php.error_with_path" in leak_keys(result)  # judged before the deadline


async def test_budget_exhaustion_is_an_error_carrying_partial_results() -> None:
    limits = Limits(connect_timeout=2.0, request_deadline=5.0, probe_deadline=30.0, host_budget=3)
    with serving(site()) as srv:
        result = await scan(srv, limits=limits)
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.BUDGET
    assert 1 <= len(srv.seen) <= 3  # requests cancelled once the budget ran out never left
    assert any(f.key == "banner:server:basehttp" for f in result.findings)


async def test_unreachable_home_page_is_a_connect_error() -> None:
    port = closed_port(HOST)
    target = make_target(f"http://{HOST}:{port}/", (HOST,))
    async with probe_context(target) as ctx:
        result = await LeakProbe().run(target, ctx)
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.CONNECT
    assert result.findings == ()


def _drops_malformed_paths(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            return
        data += chunk
    if b"%posture%zz" in data.split(b"\r\n", 1)[0]:
        return  # hang up without a word, as some front ends do
    body = b"<p>ok</p>"
    sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nConnection: close\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


async def test_a_refused_provocation_is_logged_and_the_rest_go_on() -> None:
    with raw_server(_drops_malformed_paths, host=HOST) as srv:
        target = make_target(f"http://{HOST}:{srv.port}/", (HOST,))
        async with probe_context(target) as ctx:
            result = await LeakProbe().run(target, ctx)
    assert result.status is RunStatus.OK, result.error
    log = result.observations["requests"]
    refused = [r for r in log if r["kind"] == "bad_encoding"]
    assert len(refused) == 1 and refused[0]["error_kind"] == "protocol"
    assert sum(1 for r in log if r.get("status") == 404) >= 5


def _hanging(paths: tuple[str, ...], release: threading.Event) -> dict[str, Route | Reply]:
    """site(), except that requests whose path ends with one of ``paths`` get no answer in time."""
    routes = site(param=Reply(200, PHP_FATAL))
    inner = routes["*"]
    assert callable(inner)

    def route(seen: Seen) -> Reply:
        if seen.path.endswith(paths):
            release.wait(30)  # answered only after the client gave up
        return inner(seen)

    return {"*": route}


async def test_provocations_without_an_answer_make_an_error_that_keeps_what_was_judged() -> None:
    # A timeout is no answer: what a .php or .aspx provocation could show was not seen, so the
    # run must not be OK (storage would take yesterday's finding of that kind as fixed).
    release = threading.Event()
    limits = Limits(connect_timeout=2.0, request_deadline=3.0, probe_deadline=30.0)
    try:
        with serving(_hanging((".php", ".aspx"), release)) as srv:
            result = await scan(srv, limits=limits)
    finally:
        release.set()
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.TIMEOUT
    assert result.error.message.startswith("2 of 9 provocations got no answer: not_found (2x, timeout);")
    assert "param_quote:php.error_with_path" in leak_keys(result)  # what was answered is judged
    log = result.observations["requests"]
    assert sum(1 for r in log if r.get("error_kind") == "timeout") == 2


async def test_a_gateway_answering_for_the_application_is_no_answer() -> None:
    routes = site(not_found=Reply(503, "<h1>503 Service Unavailable</h1>"))
    with serving(routes) as srv:
        result = await scan(srv)
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.PROTOCOL
    assert "not_found (5x, HTTP 503)" in result.error.message


async def test_a_parameter_page_without_an_answer_is_an_error() -> None:
    # The parameter provocations start from /products?id=7: without it they are never sent.
    release = threading.Event()
    limits = Limits(connect_timeout=2.0, request_deadline=3.0, probe_deadline=30.0)
    try:
        with serving(_hanging(("/products?id=7",), release)) as srv:
            result = await scan(srv, limits=limits)
    finally:
        release.set()
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.TIMEOUT
    assert "the page whose parameters are provoked got no answer (timeout)" in result.error.message
    assert not any(r["kind"] in ("param_quote", "param_type") for r in result.observations["requests"])


def test_websocket_endpoints_are_provoked_over_https() -> None:
    target = make_target("wss://quotes.broker.test/stream?v=2")
    assert http_url(target) == "https://quotes.broker.test/stream?v=2"
    assert http_url(make_target("http://broker.test")) == "http://broker.test/"


@pytest.mark.parametrize("scheme", ["tls"])
async def test_non_web_targets_are_skipped(scheme: str) -> None:
    target = make_target(f"{scheme}://orders.broker.test:9443", (HOST,))
    async with probe_context(target) as ctx:
        result = await LeakProbe().run(target, ctx)
    assert result.status is RunStatus.SKIPPED
