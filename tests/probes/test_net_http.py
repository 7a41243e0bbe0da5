"""The shared HTTP layer (probes/net/http.py) against real, hostile and broken servers on loopback."""

from __future__ import annotations

import gzip
import ssl
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from probes.base import (
    BudgetExhausted,
    ConnectFailure,
    DeadlineExceeded,
    ErrorKind,
    Limits,
    OutOfScope,
    ProbeFailure,
    ProtocolFailure,
)
from probes.net.http import HttpClient
from probes.net.scope import Pins
from tests.support import hostile
from tests.support.certs import Authority, write_pair
from tests.support.servers import Reply, Running, Seen, closed_port, http_server, raw_server, server_context

HOST = "site.test"
LIMITS = Limits(connect_timeout=1.0, request_deadline=1.5, max_body=1 << 20, max_redirects=5)
SLACK = 0.6  # seconds a typed failure may arrive after its deadline


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    c = HttpClient(Pins.of({HOST: ["127.0.0.1"]}), LIMITS)
    yield c
    await c.aclose()


@pytest.fixture(scope="module")
def tls_context(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    leaf = authority.leaf(HOST)
    cert, key = write_pair(tmp_path_factory.mktemp("http-tls"), "site", authority.chain_pem(leaf), leaf.key_pem)
    return server_context(cert, key)


@contextmanager
def no_server() -> Iterator[Running]:
    yield Running("127.0.0.1", closed_port(), [], "tcp")


def plain_http_server() -> AbstractContextManager[Running]:
    return http_server({"/": Reply(200, "<h1>plain</h1>")})


# (name, scheme spoken, server, ErrorKind, the deadline that must stop it)
HOSTILE: list[tuple[str, str, Callable[[], AbstractContextManager[Running]], ErrorKind, float]] = [
    ("closed port", "http", no_server, ErrorKind.CONNECT, LIMITS.connect_timeout),
    ("closed TLS port", "https", no_server, ErrorKind.CONNECT, LIMITS.connect_timeout),
    ("plain HTTP on the TLS port", "https", plain_http_server, ErrorKind.PROTOCOL, LIMITS.connect_timeout),
    ("garbage bytes", "http", lambda: raw_server(hostile.garbage), ErrorKind.PROTOCOL, LIMITS.request_deadline),
    ("hangs up", "http", lambda: raw_server(hostile.hang_up), ErrorKind.PROTOCOL, LIMITS.request_deadline),
    ("never answers", "http", lambda: raw_server(hostile.silent), ErrorKind.TIMEOUT, LIMITS.request_deadline),
    ("silent TLS handshake", "https", lambda: raw_server(hostile.silent), ErrorKind.TIMEOUT,
     LIMITS.connect_timeout),
    ("trickles the status line", "http", lambda: raw_server(hostile.trickle()), ErrorKind.TIMEOUT,
     LIMITS.request_deadline),
    ("trickles the body", "http", lambda: raw_server(hostile.trickle_body()), ErrorKind.TIMEOUT,
     LIMITS.request_deadline),
    ("header flood", "http", lambda: raw_server(hostile.header_flood()), ErrorKind.PROTOCOL,
     LIMITS.request_deadline),
    ("half a ServerHello", "https", lambda: raw_server(hostile.tls_half_hello), ErrorKind.PROTOCOL,
     LIMITS.connect_timeout),
    ("TLS alert", "https", lambda: raw_server(hostile.tls_alert), ErrorKind.PROTOCOL, LIMITS.connect_timeout),
]


@pytest.mark.parametrize(("scheme", "server", "kind", "deadline"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
async def test_hostile_server_ends_as_typed_failure_within_deadline(
    client: HttpClient,
    scheme: str,
    server: Callable[[], AbstractContextManager[Running]],
    kind: ErrorKind,
    deadline: float,
) -> None:
    with server() as srv:
        started = time.monotonic()
        with pytest.raises(ProbeFailure) as caught:
            await client.request("GET", f"{scheme}://{HOST}:{srv.port}/")
        elapsed = time.monotonic() - started
    assert caught.value.kind is kind, str(caught.value)
    assert elapsed < deadline + SLACK
    assert "\n" not in str(caught.value)


async def test_explicit_deadline_beats_request_deadline(client: HttpClient) -> None:
    with raw_server(hostile.trickle(interval=0.1)) as srv:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            await client.request("GET", f"http://{HOST}:{srv.port}/", deadline=0.4)
        assert time.monotonic() - started < 0.4 + SLACK


@pytest.mark.parametrize("bomb", [False, True], ids=["1 GiB body", "endless gzip bomb"])
async def test_huge_body_is_capped_truncated_and_memory_bounded(client: HttpClient, bomb: bool) -> None:
    hostile._gzip_zero_pieces()  # build the bomb before measuring
    with raw_server(hostile.huge_body(gzip=bomb)) as srv:
        tracemalloc.start()
        try:
            started = time.monotonic()
            ex = await client.request("GET", f"http://{HOST}:{srv.port}/", max_body=256 * 1024)
            elapsed = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert ex.status == 200
    assert ex.truncated
    assert len(ex.body) == 256 * 1024
    assert set(ex.body) == ({0} if bomb else {ord("A")})
    # Unbounded, one read of the bomb inflates to tens of MiB; bounded, memory stays near the cap.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert elapsed < LIMITS.request_deadline


async def test_default_cap_is_limits_max_body(client: HttpClient) -> None:
    with raw_server(hostile.huge_body()) as srv:
        ex = await client.request("GET", f"http://{HOST}:{srv.port}/")
    assert ex.truncated and len(ex.body) == LIMITS.max_body


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("identity", lambda b: b),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "identity"],
)
async def test_encoded_bodies_are_decoded_and_capped_exactly(
    client: HttpClient, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    page = b"<html>" + b"x" * 994  # 1000 bytes
    headers = {"Content-Encoding": encoding}
    with http_server({"/": Reply(200, encode(page), headers=headers)}) as srv:
        whole = await client.request("GET", f"http://{HOST}:{srv.port}/", max_body=1000)
        cut = await client.request("GET", f"http://{HOST}:{srv.port}/", max_body=999)
    assert (whole.body, whole.truncated) == (page, False)
    assert (cut.body, cut.truncated) == (page[:999], True)
    assert srv.seen[0].headers["accept-encoding"] == "gzip, deflate"


async def test_undecodable_gzip_is_protocol_failure(client: HttpClient) -> None:
    broken = Reply(200, b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})
    with http_server({"/": broken}) as srv, pytest.raises(ProtocolFailure):
        await client.request("GET", f"http://{HOST}:{srv.port}/")


async def test_unknown_encoding_is_kept_as_sent(client: HttpClient) -> None:
    with http_server({"/": Reply(200, b"\x00br-bytes", headers={"Content-Encoding": "br"})}) as srv:
        ex = await client.request("GET", f"http://{HOST}:{srv.port}/")
    assert ex.body == b"\x00br-bytes"


def _loop(seen: Seen) -> Reply:
    return Reply(302, headers={"Location": "/b" if seen.path == "/a" else "/a"})


async def test_redirect_loop_is_protocol_failure(client: HttpClient) -> None:
    with http_server({"*": _loop}) as srv:
        started = time.monotonic()
        with pytest.raises(ProtocolFailure, match="redirect loop"):
            await client.request("GET", f"http://{HOST}:{srv.port}/a", follow_redirects=True)
        assert time.monotonic() - started < LIMITS.request_deadline
    assert [s.path for s in srv.seen] == ["/a", "/b"]  # the loop is seen on its first repeat


async def test_too_many_redirects_is_protocol_failure(client: HttpClient) -> None:
    def deeper(seen: Seen) -> Reply:
        return Reply(301, headers={"Location": f"/{int(seen.path.strip('/') or 0) + 1}"})

    with http_server({"*": deeper}) as srv, pytest.raises(ProtocolFailure, match="too many"):
        await client.request("GET", f"http://{HOST}:{srv.port}/", follow_redirects=True)
    assert len(srv.seen) == LIMITS.max_redirects + 1


async def test_redirects_followed_within_host_and_returned_off_host(client: HttpClient) -> None:
    routes: dict[str, Reply | Callable[[Seen], Reply]] = {
        "/": Reply(301, headers={"Location": "/en/"}),
        "/en/": Reply(302, headers={"Location": "https://elsewhere.test/sso"}),
    }
    with http_server(routes) as srv:
        ex = await client.request("GET", f"http://{HOST}:{srv.port}/", follow_redirects=True)
    assert ex.status == 302
    assert ex.location == "https://elsewhere.test/sso"
    assert [(h.status, h.location) for h in ex.redirects] == [(301, f"http://{HOST}:{srv.port}/en/")]
    assert [s.path for s in srv.seen] == ["/", "/en/"]


@pytest.mark.parametrize("location", ["http://[bad", "ftp://site.test/x", "javascript:alert(1)", "https://:443/", "https://h:99999/"])
async def test_hostile_location_is_returned_not_followed(client: HttpClient, location: str) -> None:
    body = f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
    with raw_server(hostile.canned(body)) as srv:
        ex = await client.request("GET", f"http://{HOST}:{srv.port}/", follow_redirects=True)
    assert ex.status == 302
    assert ex.location is not None
    assert ex.redirects == ()


async def test_refuses_non_http_urls(client: HttpClient) -> None:
    with pytest.raises(ProtocolFailure):
        await client.request("GET", f"ftp://{HOST}/")


async def test_connects_only_to_the_pinned_address_with_the_real_host(tls_context: ssl.SSLContext) -> None:
    # The name exists nowhere; only the pin says where it lives.
    with http_server({"/": Reply(200, "ok")}, host="127.0.0.2", tls=tls_context) as srv:
        c = HttpClient(Pins.of({HOST: ["127.0.0.2"]}), LIMITS)
        try:
            ex = await c.request("GET", f"https://{HOST}:{srv.port}/")
        finally:
            await c.aclose()
    assert (ex.status, ex.address, ex.body) == (200, "127.0.0.2", b"ok")
    assert srv.seen[0].headers["host"] == f"{HOST}:{srv.port}"
    assert c.pins.connections[HOST] == 1 and c.pins.requests[HOST] == 1


async def test_scope_is_enforced(client: HttpClient) -> None:
    with pytest.raises(OutOfScope):
        await client.request("GET", "http://other.test/")
    with pytest.raises(OutOfScope):
        await client.request("GET", f"http://{HOST}/", address="127.0.0.9")
    meta = HttpClient(Pins.of({"meta.test": ["169.254.169.254"], "mapped.test": ["::ffff:169.254.169.254"]}))
    for host in ("meta.test", "mapped.test"):
        with pytest.raises(OutOfScope):
            await meta.request("GET", f"http://{host}/")
    assert sum(meta.pins.connections.values()) == 0


async def test_budget_is_enforced() -> None:
    c = HttpClient(Pins.of({HOST: ["127.0.0.1"]}, host_budget=2), LIMITS)
    with http_server() as srv:
        for _ in range(2):
            await c.request("GET", f"http://{HOST}:{srv.port}/")
        with pytest.raises(BudgetExhausted):
            await c.request("GET", f"http://{HOST}:{srv.port}/")
    await c.aclose()
    assert len(srv.seen) == 2


async def test_raw_path_is_sent_byte_for_byte(client: HttpClient) -> None:
    with http_server({"*": Reply(404, "nf")}) as srv:
        ex = await client.request("GET", f"http://{HOST}:{srv.port}/", raw_path=b"/%zz/..%2f?x=%")
    assert srv.seen[0].path == "/%zz/..%2f?x=%"
    assert ex.path_sent == "/%zz/..%2f?x=%"


async def test_connect_failure_names_host_and_address(client: HttpClient) -> None:
    port = closed_port()
    with pytest.raises(ConnectFailure, match=r"site\.test \(127\.0\.0\.1\)"):
        await client.request("GET", f"http://{HOST}:{port}/")


async def test_a_page_read_by_several_probes_is_requested_once_per_scan() -> None:
    """``page``: concurrent and later readers of one page in one asset's scan share one request;
    another scan (another scoped client) asks again; a different address or sample size is its own."""
    import asyncio

    root = HttpClient(Pins.of({HOST: ["127.0.0.1"]}), LIMITS)
    try:
        with http_server({"/": Reply(200, "home", headers={"strict-transport-security": "max-age=9"})}) as srv:
            url = f"http://{HOST}:{srv.port}/"
            scan = root.scoped([("http", HOST, srv.port)])
            got = await asyncio.gather(*(scan.page(url, "127.0.0.1", max_body=64, deadline=1.5) for _ in range(3)))
            again = await scan.page(url, "127.0.0.1", max_body=64, deadline=1.5)
            assert len(srv.seen) == 1
            assert {g.header("strict-transport-security") for g in (*got, again)} == {"max-age=9"}
            await scan.page(url, "127.0.0.1", max_body=128, deadline=1.5)  # another sample: its own request
            assert len(srv.seen) == 2
            await scan.release()
            later = root.scoped([("http", HOST, srv.port)])
            await later.page(url, "127.0.0.1", max_body=64, deadline=1.5)
            assert len(srv.seen) == 3  # a new scan never sees the last scan's answer
            await later.release()
    finally:
        await root.aclose()


async def test_a_shared_page_failure_reaches_every_reader_and_a_short_wait_cancels_no_one() -> None:
    import asyncio

    root = HttpClient(Pins.of({HOST: ["127.0.0.1"]}), LIMITS)
    try:
        with no_server() as srv:
            scan = root.scoped([("http", HOST, srv.port)])
            url = f"http://{HOST}:{srv.port}/"
            results = await asyncio.gather(*(scan.page(url, "127.0.0.1", max_body=64, deadline=1.5)
                                             for _ in range(2)), return_exceptions=True)
            assert all(isinstance(r, ConnectFailure) for r in results), results
            await scan.release()
        def slowly(seen: Seen) -> Reply:
            time.sleep(1.0)  # answers after a second
            return Reply(200, "late")

        with http_server({"/": slowly}) as slow:
            scan = root.scoped([("http", HOST, slow.port)])
            url = f"http://{HOST}:{slow.port}/"
            patient = asyncio.ensure_future(scan.page(url, "127.0.0.1", max_body=64, deadline=5.0))
            await asyncio.sleep(0)
            with pytest.raises(DeadlineExceeded):
                await scan.page(url, "127.0.0.1", max_body=64, deadline=0.2)
            assert (await patient).status == 200  # the impatient reader did not cancel the request
            assert len(slow.seen) == 1
            await scan.release()
    finally:
        await root.aclose()
