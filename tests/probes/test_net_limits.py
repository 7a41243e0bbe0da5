"""Per-address limits (probes/net/scope.py AddressLimits) shared by HTTP pools and raw connections,
counted at a real server on loopback."""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from pathlib import Path

import pytest

from probes.base import BudgetExhausted, Limits
from probes.net.connector import Connector
from probes.net.http import HttpClient
from probes.net.scope import AddressLimits, Pins
from tests.support.counting import counting_server
from tests.support.servers import Reply, Seen


def _slow(seen: Seen) -> Reply:
    time.sleep(0.05)
    return Reply(200, "ok")


async def test_kept_alive_and_raw_connections_share_the_address_limit() -> None:
    limits = AddressLimits(2, 1000)
    with counting_server({"*": _slow}) as srv:
        # Two scans' worth of clients (two pin tables, two HTTP clients) over one limiter.
        pins_a = Pins.of({"a.test": ["127.0.0.1"]}, limits=limits)
        pins_b = Pins.of({"b.test": ["127.0.0.1"]}, limits=limits)
        http_a, http_b = HttpClient(pins_a, Limits(per_host_concurrency=2)), HttpClient(pins_b, Limits())
        raw = Connector(pins_b, connect_timeout=2)

        async def get(client: HttpClient, host: str, i: int) -> None:
            await client.request("GET", f"http://{host}:{srv.port}/{i}")

        async def hold_raw() -> None:
            async with raw.open("b.test", "127.0.0.1", srv.port):
                await asyncio.sleep(0.1)

        try:
            async with asyncio.timeout(20):
                await asyncio.gather(*(get(http_a, "a.test", i) for i in range(8)),
                                     *(get(http_b, "b.test", i) for i in range(8)),
                                     *(hold_raw() for _ in range(4)))
                # Kept-alive connections idle in the pools now hold both slots: a raw connection
                # still gets one (an idle pooled connection is closed for it), no deadlock.
                await hold_raw()
        finally:
            await http_a.aclose()
            await http_b.aclose()
        await asyncio.sleep(0.2)
    assert srv.peak <= 2, srv.peak
    assert limits.peak("127.0.0.1") <= 2
    assert srv.requests == 16


async def test_budget_is_per_address_across_clients_and_windows() -> None:
    now = [0.0]
    limits = AddressLimits(4, 5, window=60, clock=lambda: now[0])
    with counting_server() as srv:
        clients = [HttpClient(Pins.of({h: ["127.0.0.1"]}, limits=limits)) for h in ("a.test", "b.test")]
        try:
            for i in range(5):
                await clients[i % 2].request("GET", f"http://{'ab'[i % 2]}.test:{srv.port}/")
            with pytest.raises(BudgetExhausted, match="budget of 5"):
                await clients[0].request("GET", f"http://a.test:{srv.port}/")
            now[0] = 61.0  # a new window
            await clients[1].request("GET", f"http://b.test:{srv.port}/")
        finally:
            for c in clients:
                await c.aclose()
    assert srv.requests == 6


async def test_the_daemon_keeps_one_limiter_across_sighup(tmp_path: Path) -> None:
    from agent.config import config_hash, parse_config
    from agent.scheduling.daemon import Daemon
    from agent.session import Session
    from state.store import Store

    cfg_path = tmp_path / "posture.toml"
    cfg_path.write_text("[agent]\nper_host_concurrency = 3\n")
    cfg = parse_config(cfg_path.read_text())
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with Store.open(url) as store:
        daemon = Daemon(argparse.Namespace(config=str(cfg_path)), Session(cfg, config_hash(cfg), url, None), store)
        first = daemon.settings.opts.address_limits
        assert first is not None and first.per_address_concurrency == 3
        cfg_path.write_text("[agent]\nper_host_concurrency = 3\nhost_budget = 50\n")
        await daemon._reload()
        assert daemon.settings.opts.address_limits is first  # jobs before and after share the limits


def test_the_counting_server_sees_connections_held_together_and_not_closed_ones() -> None:
    """The peak the limit tests rely on can fail: three sockets held open count three,
    and a socket whose FIN has arrived no longer counts, however busy the server is."""
    with counting_server() as srv:
        held = [socket.create_connection((srv.host, srv.port)) for _ in range(3)]
        deadline = time.monotonic() + 5
        while srv.accepted < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.peak == 3, srv.peak
        for s in held:
            s.close()
    with counting_server() as srv:
        for _ in range(3):
            s = socket.create_connection((srv.host, srv.port))
            s.shutdown(socket.SHUT_WR)  # FIN sent before the next connect
            s.close()
        deadline = time.monotonic() + 5
        while srv.accepted < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.accepted == 3 and srv.peak <= 1, (srv.accepted, srv.peak)


async def test_time_queued_for_a_connection_slot_is_not_the_servers() -> None:
    """One slot per address, two requests to a server that takes 1.2 s each, a 2 s deadline: the
    second waits 1.2 s for the slot (posture's own queue), then gets its own 2 s for the server.
    Counted against the server it would time out and be recorded as unanswered."""

    def slow(seen: Seen) -> Reply:
        time.sleep(1.2)
        return Reply(200, "ok", {"connection": "close"})

    with counting_server({"*": slow}) as srv:
        pins = Pins.of({"q.test": ["127.0.0.1"]}, limits=AddressLimits(1, 1000))
        client = HttpClient(pins, Limits(per_host_concurrency=1, request_deadline=2.0))
        try:
            started = time.monotonic()
            first, second = await asyncio.gather(*(client.request("GET", f"http://q.test:{srv.port}/{i}")
                                                   for i in range(2)))
            took = time.monotonic() - started
        finally:
            await client.aclose()
    assert (first.status, second.status) == (200, 200)
    assert took >= 2.4 and srv.peak == 1  # one after the other: the limit held
