"""Raw TCP/TLS connections (probes/net/connector.py) against real and hostile servers on loopback."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from probes.base import ConnectFailure, DeadlineExceeded, ErrorKind, OutOfScope, ProbeFailure
from probes.net.connector import Connector
from probes.net.scope import Pins
from tests.support import hostile
from tests.support.certs import Authority, write_pair
from tests.support.servers import Reply, Running, closed_port, http_server, raw_server, server_context

HOST = "gw.test"
TIMEOUT = 1.0
SLACK = 0.6


def _client_tls(trust: Path | None = None) -> ssl.SSLContext:
    if trust is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=str(trust))


@pytest.fixture(scope="module")
def tls_server_context(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    leaf = authority.leaf(HOST)
    cert, key = write_pair(tmp_path_factory.mktemp("gw-tls"), "gw", authority.chain_pem(leaf), leaf.key_pem)
    return server_context(cert, key)


def connector(*addresses: str, concurrency: int = 4) -> Connector:
    pins = Pins.of({HOST: addresses or ("127.0.0.1",)}, per_host_concurrency=concurrency)
    return Connector(pins, connect_timeout=TIMEOUT)


async def test_tls_connection_to_pinned_address_verifies_with_sni(
    tls_server_context: ssl.SSLContext, ca_bundle: Path
) -> None:
    c = connector("127.0.0.3")
    with http_server({"/": Reply(200, "ok")}, host="127.0.0.3", tls=tls_server_context) as srv:
        # Verification against the test CA passes only if SNI/hostname is the asset's name.
        async with c.open("GW.test.", "127.0.0.3", srv.port, ssl_context=_client_tls(ca_bundle),
                          server_hostname=HOST) as conn:
            assert conn.ssl_object is not None
            assert conn.ssl_object.version() in ("TLSv1.2", "TLSv1.3")
            conn.writer.write(b"GET / HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n")
            reply = await asyncio.wait_for(conn.reader.read(), 2)
    assert reply.startswith(b"HTTP/1.1 200")
    assert c.pins.connections == {HOST: 1}  # counted under the normalised host


async def test_plain_connection_has_no_ssl_object() -> None:
    c = connector()
    with raw_server(hostile.silent) as srv:
        async with c.open(HOST, "127.0.0.1", srv.port) as conn:
            assert conn.ssl_object is None
            assert (conn.address, conn.port) == ("127.0.0.1", srv.port)


def _closed() -> AbstractContextManager[Running]:
    from contextlib import nullcontext

    return nullcontext(Running("127.0.0.1", closed_port(), [], "tcp"))


def _plain_http() -> AbstractContextManager[Running]:
    return http_server({"/": Reply(200, "plain")})


HOSTILE: list[tuple[str, Callable[[], AbstractContextManager[Running]], bool, ErrorKind]] = [
    ("closed port", _closed, False, ErrorKind.CONNECT),
    ("closed TLS port", _closed, True, ErrorKind.CONNECT),
    ("plain HTTP on the TLS port", _plain_http, True, ErrorKind.PROTOCOL),
    ("silent TLS handshake", lambda: raw_server(hostile.silent), True, ErrorKind.TIMEOUT),
    ("garbage instead of TLS", lambda: raw_server(hostile.canned(b"\x00garbage\xff" * 20)), True,
     ErrorKind.PROTOCOL),
    ("half a ServerHello", lambda: raw_server(hostile.tls_half_hello), True, ErrorKind.PROTOCOL),
    ("TLS alert", lambda: raw_server(hostile.tls_alert), True, ErrorKind.PROTOCOL),
    ("hangs up before the handshake", lambda: raw_server(hostile.hang_up), True, ErrorKind.PROTOCOL),
]


@pytest.mark.parametrize(("server", "tls", "kind"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
async def test_hostile_peer_is_typed_failure_within_timeout(
    server: Callable[[], AbstractContextManager[Running]], tls: bool, kind: ErrorKind
) -> None:
    c = connector()
    with server() as srv:
        started = time.monotonic()
        with pytest.raises(ProbeFailure) as caught:
            async with c.open(HOST, "127.0.0.1", srv.port, ssl_context=_client_tls() if tls else None):
                pass
        elapsed = time.monotonic() - started
    assert caught.value.kind is kind, str(caught.value)
    assert elapsed < TIMEOUT + SLACK
    assert f"127.0.0.1:{srv.port}" in str(caught.value)


async def test_explicit_timeout_bounds_connect_and_handshake() -> None:
    c = connector()
    with raw_server(hostile.silent) as srv:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as caught:
            async with c.open(HOST, "127.0.0.1", srv.port, ssl_context=_client_tls(), timeout=0.3):
                pass
        assert time.monotonic() - started < 0.3 + SLACK
    # The server accepted the connection and stalled the handshake: the record must not say
    # only "connect" (a server that never answers), as it would for a plain connection.
    assert str(caught.value) == f"connect and TLS handshake with 127.0.0.1:{srv.port} timed out after 0.3s"


@pytest.mark.parametrize(
    ("pinned", "address"),
    [
        ("127.0.0.1", "127.0.0.2"),  # not a pin of the host
        ("169.254.169.254", "169.254.169.254"),  # metadata, even when pinned
        ("::ffff:169.254.169.254", "::ffff:169.254.169.254"),  # the same, IPv4-mapped
        ("64:ff9b::a9fe:a9fe", "64:ff9b::a9fe:a9fe"),  # the same, through NAT64
        ("fe80::1", "fe80::1"),
    ],
)
async def test_scope_is_enforced_before_any_socket(pinned: str, address: str) -> None:
    c = connector(pinned)
    with pytest.raises(OutOfScope):
        async with c.open(HOST, address, 80):
            pass
    with pytest.raises(OutOfScope):
        async with c.open("other.test", "127.0.0.1", 80):
            pass
    assert sum(c.pins.connections.values()) == 0


async def test_connection_holds_the_host_gate() -> None:
    c = connector(concurrency=1)
    entered = asyncio.Event()

    async def second(port: int) -> None:
        async with c.open(HOST, "127.0.0.1", port):
            entered.set()

    with raw_server(hostile.silent) as srv:
        async with c.open(HOST, "127.0.0.1", srv.port):
            task = asyncio.create_task(second(srv.port))
            await asyncio.sleep(0.2)
            assert not entered.is_set()  # waits for the gate, not for the server
        await asyncio.wait_for(task, 2)
    assert entered.is_set()
    assert c.pins.connections[HOST] == 2


async def test_refused_connection_is_quick_and_named() -> None:
    pins = Pins.of({HOST: ("127.0.0.1",)}, per_host_concurrency=4)
    c = Connector(pins, connect_timeout=10.0)  # a refusal must not wait for the timeout
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(ConnectFailure, match="refused"):
        async with c.open(HOST, "127.0.0.1", port):
            pass
    assert time.monotonic() - started < 5.0


# ------------------------------------------------------------------ exchange (raw request, raw answer)


def _echo_then(close: bool) -> Callable[[object], None]:
    """A peer that reads one request, answers b"ANSWER:" + it, then closes or waits for our FIN."""
    def behaviour(sock: object) -> None:
        import socket as socketlib

        assert isinstance(sock, socketlib.socket)
        data = sock.recv(1024)
        sock.sendall(b"ANSWER:" + data)
        if close:
            sock.shutdown(socketlib.SHUT_WR)
        sock.settimeout(5)
        while sock.recv(1024):  # to our FIN
            pass
    return behaviour


def _until(marker: bytes) -> Callable[[bytes], bytes | None]:
    got = bytearray()

    def feed(data: bytes) -> bytes | None:
        got.extend(data)
        return bytes(got) if marker in got else None
    return feed


async def test_exchange_returns_the_decided_answer_and_frees_the_slot_at_once() -> None:
    c = connector(concurrency=1)
    with raw_server(_echo_then(close=False)) as srv:
        answer = await c.exchange(HOST, "127.0.0.1", srv.port, b"hello", _until(b"hello"), answer_timeout=TIMEOUT)
        assert answer == b"ANSWER:hello"
        # The peer closed after our FIN: the slot is free now, not after the linger.
        assert c.pins.shared.open_now("127.0.0.1") == 0
        assert c.pins.connections[HOST] == 1


async def test_exchange_without_a_decision_is_none_when_the_peer_closes() -> None:
    c = connector()
    with raw_server(_echo_then(close=True)) as srv:
        assert await c.exchange(HOST, "127.0.0.1", srv.port, b"x", _until(b"never"), answer_timeout=TIMEOUT) is None


async def test_exchange_times_out_on_a_silent_peer_and_is_refused_quickly() -> None:
    c = connector()
    with raw_server(hostile.silent) as srv:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await c.exchange(HOST, "127.0.0.1", srv.port, b"x", _until(b"y"), answer_timeout=0.3)
        assert time.monotonic() - started < 5.0  # the answer wait (0.3 s), then the FIN wait (0.25 s)
    with pytest.raises(ConnectFailure, match="refused"):
        await c.exchange(HOST, "127.0.0.1", closed_port(), b"x", _until(b"y"), answer_timeout=TIMEOUT)
    await asyncio.sleep(0.2)  # a refused connect gives its slot back after the linger
    assert c.pins.shared.open_now("127.0.0.1") == 0


async def test_exchange_reports_a_reset_and_stays_in_scope() -> None:
    c = connector()
    with raw_server(hostile.hang_up) as srv:
        try:
            answer = await c.exchange(HOST, "127.0.0.1", srv.port, b"x", _until(b"y"), answer_timeout=TIMEOUT)
        except OSError:
            pass  # a reset
        else:
            assert answer is None  # or a plain close, as the kernel saw it
    with pytest.raises(OutOfScope):
        await c.exchange(HOST, "127.0.0.9", 443, b"x", _until(b"y"), answer_timeout=TIMEOUT)


async def test_exchange_cancelled_by_its_caller_closes_and_frees_the_slot() -> None:
    c = connector(concurrency=1)
    with raw_server(hostile.silent) as srv:
        task = asyncio.ensure_future(c.exchange(HOST, "127.0.0.1", srv.port, b"x", _until(b"y"), answer_timeout=30))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)  # the slot's linger
        assert c.pins.shared.open_now("127.0.0.1") == 0
