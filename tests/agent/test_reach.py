"""The scan's reach step (agent/scanning/reach.py) against real servers on loopback: what counts as
reaching a TLS service, and the handshake it keeps for the tls probe."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from agent.scanning import reach
from probes.net.handshake import capture_key
from tests.support import hostile
from tests.support.certs import Authority, write_pair
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, closed_port, http_server, raw_server, server_context

HOST = "gw.reach.test"


@pytest.fixture
def gw_tls(authority: Authority, tmp_path: Path) -> ssl.SSLContext:
    leaf = authority.leaf(HOST)
    cert, key = write_pair(tmp_path, "gw", authority.chain_pem(leaf), leaf.key_pem)
    return server_context(cert, key)


async def _reach(url: str, address: str) -> reach.Reach:
    target = make_target(url, (address,))
    async with probe_context(target) as ctx:
        return await reach.collect(target, ctx.connector, 3.0)


async def test_a_tls_service_is_reached_and_its_handshake_kept(gw_tls: ssl.SSLContext) -> None:
    with http_server({"/": Reply(200, "x")}, host="127.0.6.1", tls=gw_tls) as srv:
        got = await _reach(f"https://{HOST}:{srv.port}/", "127.0.6.1")
    assert got.reached and got.addresses == {"127.0.6.1": "ok"}
    cap = got.captured[capture_key("127.0.6.1", srv.port, HOST)]
    assert cap.chain and cap.protocol == "TLSv1.3"


async def test_a_server_that_alerts_in_the_handshake_speaks_tls(gw_tls: ssl.SSLContext) -> None:
    """A TLS 1.2 server that wants a client certificate ends the handshake with an alert: the
    service is there (reached), and no chain is kept from a handshake that did not finish."""
    gw_tls.verify_mode = ssl.CERT_REQUIRED  # no client certificate is sent: the server alerts
    gw_tls.maximum_version = ssl.TLSVersion.TLSv1_2
    with http_server({"/": Reply(200, "x")}, host="127.0.6.2", tls=gw_tls) as srv:
        got = await _reach(f"https://{HOST}:{srv.port}/", "127.0.6.2")
    assert got.reached, got.addresses
    assert got.captured == {}


@pytest.mark.parametrize(("name", "server"), [
    ("plain HTTP on the TLS port", lambda: http_server({"/": Reply(200, "x")}, host="127.0.6.3")),
    ("closes at once", lambda: raw_server(hostile.hang_up, host="127.0.6.3")),
    ("answers garbage", lambda: raw_server(hostile.garbage, host="127.0.6.3")),
])
async def test_what_does_not_speak_tls_is_not_reached(name: str, server: Any) -> None:
    with server() as srv:
        got = await _reach(f"https://{HOST}:{srv.port}/", "127.0.6.3")
    assert not got.reached, (name, got.addresses)
    assert got.captured == {}


async def test_nothing_listening_is_not_reached_and_a_plain_service_needs_no_hello() -> None:
    got = await _reach(f"https://{HOST}:{closed_port('127.0.6.4')}/", "127.0.6.4")
    assert not got.reached and "refused" in got.addresses["127.0.6.4"]
    with http_server({"/": Reply(200, "x")}, host="127.0.6.5") as srv:
        plain = await _reach(f"http://{HOST}:{srv.port}/", "127.0.6.5")
    assert plain.reached and plain.captured == {}
