"""One pooled, pinned client per host for a whole scan, with TLS session resumption (issue 21):
connections, resumed handshakes and concurrency counted at a real TLS server on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from probes.base import Limits
from probes.net.http import HttpClient
from probes.net.scope import AddressLimits, Pins
from tests.support.certs import Authority, write_pair
from tests.support.counting import counting_server
from tests.support.dnsserver import dns_server
from tests.support.servers import Reply, Seen, closed_port, server_context


@pytest.fixture(autouse=True)
def patient_followers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connections wait for the first one's session however slowly this machine runs the test
    server (the product waits half a second, then does a full handshake: a count, not a failure)."""
    monkeypatch.setattr("probes.net.resume.FIRST_WAIT", 60.0)


@pytest.fixture
def site_tls(authority: Authority, tmp_path: Path) -> Any:
    leaf = authority.leaf("site.test")
    cert, key = write_pair(tmp_path, "site", authority.chain_pem(leaf), leaf.key_pem)
    return server_context(cert, key)


def _slow(seen: Seen) -> Reply:
    time.sleep(0.05)  # requests overlap, so a loose limit or a missed session would show
    return Reply(200, "<html><head><title>t</title></head><body>hello</body></html>")


async def test_parallel_requests_cost_one_full_handshake(site_tls: Any) -> None:
    """A burst of requests to a new host: the first connection's session is offered to the rest."""
    with counting_server({"*": _slow}, tls=site_tls) as srv:
        limits = AddressLimits(4, 1000)
        client = HttpClient(Pins.of({"site.test": ["127.0.0.1"]}, limits=limits), Limits(per_host_concurrency=4))
        try:
            async with asyncio.timeout(30):
                await asyncio.gather(*(client.request("GET", f"https://site.test:{srv.port}/{i}")
                                       for i in range(12)))
                # A request on a fresh connection (edge's "connection: close") resumes too.
                for _ in range(3):
                    await client.request("GET", f"https://site.test:{srv.port}/", headers={"connection": "close"})
        finally:
            await client.aclose()
        srv.settled()
    assert srv.requests == 15
    assert 4 <= srv.accepted <= 7, srv.accepted  # a pool of at most 4, then 3 fresh connections
    assert srv.resumed == srv.accepted - 1, (srv.resumed, srv.accepted)  # one full handshake in all
    assert srv.peak <= 4


async def test_a_server_without_tickets_still_answers_with_full_handshakes(site_tls: Any) -> None:
    import ssl

    site_tls.options |= ssl.OP_NO_TICKET
    site_tls.num_tickets = 0
    with counting_server({"*": _slow}, tls=site_tls) as srv:
        client = HttpClient(Pins.of({"site.test": ["127.0.0.1"]}, limits=AddressLimits(4, 1000)), Limits())
        try:
            async with asyncio.timeout(30):
                got = await asyncio.gather(*(client.request("GET", f"https://site.test:{srv.port}/{i}")
                                             for i in range(8)))
        finally:
            await client.aclose()
        srv.settled()
    assert [g.status for g in got] == [200] * 8
    assert srv.resumed == 0 and srv.accepted >= 1


def _scan(tmp_path: Path, cfg_text: str, *probes: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(cfg_text)
    args = ["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'p.db'}", "scan", "--format", "json"]
    for p in probes:
        args += ["--probe", p]
    code = main(args)
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    doc: dict[str, Any] = json.loads(out)
    return doc


@pytest.mark.parametrize("per_host", [1, 2])
def test_http_edge_and_leak_share_connections_and_the_per_host_limit(
        per_host: int, site_tls: Any, ca_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The three HTTP probes of one asset go through one pool: few connections, almost all resumed,
    never more open at once than the per-host limit, counted at the server."""
    with counting_server({"*": _slow}, tls=site_tls) as site, dns_server({"site.test": "127.0.0.1"}) as dns:
        cfg = (f'[agent]\nresolver = "{dns.address}"\nrequest_timeout = 10\nprobe_timeout = 60\n'
               f'ca_bundle = "{ca_bundle}"\nper_host_concurrency = {per_host}\n\n'
               f'[http]\nhttp_port = {closed_port()}\n\n'
               f'[[assets]]\nname = "site"\nurl = "https://site.test:{site.port}/"\n')
        doc = _scan(tmp_path, cfg, "http", "edge", "leak", capsys=capsys)
        site.settled()
    runs = {r["probe"]: r for r in doc["scans"][0]["probe_runs"]} if "probe_runs" in doc["scans"][0] else {}
    assert doc["scans"][0]["status"] in ("complete", "partial"), doc["scans"][0]
    for name in ("http", "edge", "leak"):
        assert not runs or runs[name]["status"] == "ok", runs.get(name)
    posture = [s for s in site.seen if s.headers.get("user-agent", "").startswith("posture/")]
    # The reach step's TCP connect; edge's requests on fresh connections (its rule); the pool's own,
    # one per slot, and as many again for connections the server closed after a malformed request
    # (leak's provocations) or that were closed to free a slot. Unshared (a pool per probe, or a
    # connection per request) it would be one per request.
    fresh = sum(1 for s in posture if s.headers.get("connection", "").lower() == "close")
    bound = 1 + fresh + 2 * per_host
    assert len(posture) >= 8
    assert site.accepted <= bound, (site.accepted, bound, len(posture))
    assert site.accepted < len(posture)  # connections are shared: fewer than the requests
    # Every TLS connection after the first resumed the first one's session.
    tls_connections = site.accepted - 1  # the reach step's connect sends no hello
    assert site.resumed >= tls_connections - 1, (site.resumed, site.accepted)
    assert site.peak <= per_host, (site.peak, per_host)


async def test_a_raw_connection_frees_its_slot_once_the_server_has_closed_too() -> None:
    """Our FIN, then the server's: the server holds nothing, so the slot is free at once; a server
    that keeps its side open keeps the slot taken for the linger (it still counts it)."""
    import socket
    import threading

    from probes.net.connector import Connector

    limits = AddressLimits(1, 100, linger=30.0)  # a linger no test waits out: "at once" is provable
    with counting_server() as closes:
        pins = Pins.of({"site.test": ["127.0.0.1"]}, limits=limits)
        connector = Connector(pins, connect_timeout=5)
        async with connector.open("site.test", "127.0.0.1", closes.port):
            assert limits.open_now("127.0.0.1") == 1
        assert limits.open_now("127.0.0.1") == 0  # free at once: the server closed its side

    held: list[socket.socket] = []
    with socket.create_server(("127.0.0.2", 0)) as listener:
        def accept() -> None:
            conn, _ = listener.accept()
            held.append(conn)  # never closed until the test ends: FIN received, side kept open

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        limits = AddressLimits(1, 100, linger=30.0)
        pins = Pins.of({"other.test": ["127.0.0.2"]}, limits=limits)
        connector = Connector(pins, connect_timeout=5)
        async with connector.open("other.test", "127.0.0.2", listener.getsockname()[1]):
            pass
        assert limits.open_now("127.0.0.2") == 1  # the server may still count it: the slot lingers
        thread.join(5)
        for s in held:
            s.close()


async def test_a_pool_is_closed_when_the_last_asset_using_its_host_is_done(site_tls: Any) -> None:
    with counting_server({"*": _slow}, tls=site_tls) as srv:
        limits = AddressLimits(4, 1000, linger=0)
        root = HttpClient(Pins.of({"site.test": ["127.0.0.1"]}, limits=limits), Limits())
        origin = ("https", "site.test", srv.port)
        a, b = root.scoped([origin]), root.scoped([origin])  # two assets on one host
        try:
            await a.request("GET", f"https://site.test:{srv.port}/a")
            await b.request("GET", f"https://site.test:{srv.port}/b")
            await a.release()
            await b.request("GET", f"https://site.test:{srv.port}/b2")  # b's pool is still there
            assert limits.open_now("127.0.0.1") == 1
            await b.release()
            async with asyncio.timeout(10):  # the slot is given back by a loop callback (linger 0)
                while limits.open_now("127.0.0.1"):
                    await asyncio.sleep(0.01)
            assert not root._transports  # nothing kept alive for the rest of the run
        finally:
            await root.aclose()
        srv.settled()
    assert srv.accepted == 1 and srv.requests == 3


async def test_a_slow_first_answer_does_not_hold_the_other_requests(
        site_tls: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The leader's session comes with its first answer; when that answer is slow the others go on
    with full handshakes after a short wait instead of queueing behind it."""
    import threading

    monkeypatch.setattr("probes.net.resume.FIRST_WAIT", 0.2)
    gate = threading.Event()

    def route(seen: Seen) -> Reply:
        if seen.path == "/slow":
            gate.wait(60)  # held until the others are done: they cannot have waited for it
        return Reply(200, "ok")

    with counting_server({"*": route}, tls=site_tls) as srv:
        client = HttpClient(Pins.of({"site.test": ["127.0.0.1"]}, limits=AddressLimits(4, 1000)),
                            Limits(request_deadline=120))
        try:
            async with asyncio.timeout(90):
                slow = asyncio.create_task(client.request("GET", f"https://site.test:{srv.port}/slow"))
                while srv.accepted < 1:  # the slow request's connection leads
                    await asyncio.sleep(0.01)
                others = await asyncio.gather(*(client.request("GET", f"https://site.test:{srv.port}/{i}")
                                                for i in range(3)))
                gate.set()
                first = await slow
        finally:
            gate.set()
            await client.aclose()
    assert [o.status for o in others] == [200] * 3 and first.status == 200


def test_the_reach_steps_handshake_is_the_tls_probes_capture(
        site_tls: Any, ca_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tls:// asset: the scan's reach step completes one handshake, and the tls probe judges the
    chain of that same handshake: one completed handshake at the server for both, not two (the
    suite scan's raw hellos never complete one)."""
    with counting_server(tls=site_tls) as site, dns_server({"site.test": "127.0.0.1"}) as dns:
        cfg = (f'[agent]\nresolver = "{dns.address}"\nca_bundle = "{ca_bundle}"\n\n'
               f'[[assets]]\nname = "gw"\nurl = "tls://site.test:{site.port}"\n')
        doc = _scan(tmp_path, cfg, "tls", capsys=capsys)
        site.settled()
    scan = doc["scans"][0]
    steps = {s["probe"]: s["outcome"] for s in scan["probes"]}
    assert steps["reach"] == "ran" and steps["tls"] == "ran", scan["probes"]
    tls_obs = scan["observations"]["tls"]["addresses"]["127.0.0.1"]
    assert tls_obs["trust"]["trusted"] is True and tls_obs["protocol"] == "TLSv1.3"
    assert site.accepted > 10  # the suite scan's hellos came
    assert site.handshakes == 1, site.handshakes


def test_the_http_probes_resume_the_reach_steps_session(
        site_tls: Any, ca_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An https asset: the reach step's handshake is the only full one; every HTTP connection of
    the scan resumes its session (one signature at the server for the whole scan's TLS)."""
    with counting_server({"*": _slow}, tls=site_tls) as site, dns_server({"site.test": "127.0.0.1"}) as dns:
        cfg = (f'[agent]\nresolver = "{dns.address}"\nca_bundle = "{ca_bundle}"\n\n'
               f'[http]\nhttp_port = {closed_port()}\n\n'
               f'[[assets]]\nname = "site"\nurl = "https://site.test:{site.port}/"\n')
        doc = _scan(tmp_path, cfg, "http", capsys=capsys)
        site.settled()
    steps = {s["probe"]: s["outcome"] for s in doc["scans"][0]["probes"]}
    assert steps["reach"] == "ran" and steps["http"] == "ran", doc["scans"][0]["probes"]
    assert site.requests >= 1
    assert site.handshakes >= 2 and site.resumed == site.handshakes - 1, (site.handshakes, site.resumed)
