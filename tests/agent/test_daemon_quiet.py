"""Manual scans honour quiet windows too: active probes wait, ``--force-active`` overrides and is recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agent.cli import main
from state.records import RunStatus
from state.store import Store
from tests.agent.daemon_lab import ADDRESSES, Lab, config_toml, make_lab
from tests.support.servers import closed_port

NAME = "d.daemon.test"
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Asia/Taipei"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with make_lab(tmp_path_factory.mktemp("quiet-lab")) as made:
        yield made


def scan(cfg: Path, db: str, now: datetime, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, object]:
    code = main(["--config", str(cfg), "--db", db, "--now", now.isoformat(), "scan", "--format", "json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    (doc,) = json.loads(out)["scans"]
    assert isinstance(doc, dict)
    return doc


def test_manual_scan_skips_active_probes_in_quiet_hours_unless_forced(lab: Lab, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    with lab.gates(NAME) as g:
        port = g[NAME].port
        shut = closed_port(ADDRESSES[NAME])  # nmap finds it closed at once: no slow service detection
        cfg = tmp_path / "posture.toml"
        # A trading endpoint: the twse window by default. Active probes allowed outside it.
        cfg.write_text(config_toml(lab.dns, lab.ca, f'[[assets]]\nurl = "tls://{NAME}:{port}"\nkind = "trading"\n'
                                   f"ports = [{shut}]\n", every="7d"))
        quiet = scan(cfg, db, MONDAY_10, capsys)
        forced = scan(cfg, db, MONDAY_10 + timedelta(minutes=1), capsys, "--force-active")
        after_close = scan(cfg, db, MONDAY_10 + timedelta(hours=5), capsys)
    ports = [doc["observations"]["ports"] for doc in (quiet, forced, after_close)]  # type: ignore[index]
    reason = f"quiet hours: tls://{NAME}:{port} is in its quiet window until 2026-03-02 14:00 (Asia/Taipei)"
    # Skipped in the quiet window: the scan is partial, not complete (issue 14).
    assert quiet["status"] == "partial" and ports[0]["status"] == "skipped" and ports[0]["skip_reason"] == reason
    assert forced["status"] == "complete" and after_close["status"] == "complete"
    assert quiet["observations"]["tls"]["status"] == "ok"  # type: ignore[index]  # passive probes still run
    for ran in ports[1:]:
        assert ran["status"] == "ok" and ran["nmap"]["path"] and ran["ports_scanned"] == 1
    with Store.open(db) as store:
        first, second, third = store.scans()
        assert [s.forced_active for s in (first, second, third)] == [False, True, False]
        runs = {r.probe: r for r in store.scan(first.id).probe_runs}
        assert runs["tls"].status == RunStatus.OK and runs["ports"].status == RunStatus.SKIPPED
        assert runs["ports"].skip_reason == reason
        assert {r.probe: r.status for r in store.scan(second.id).probe_runs}["ports"] == RunStatus.OK


def test_a_neighbour_in_its_quiet_window_protects_its_address_from_another_assets_port_scan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A website on the trading gateway's address: in market hours its port scan would walk the
    gateway's port too. It is skipped, the gateway named, and the gateway sees no connection."""
    from tests.support.counting import counting_server
    from tests.support.dnsserver import dns_server

    address = "127.0.9.5"
    with counting_server(host=address) as site, counting_server(host=address) as gateway, \
            dns_server({"www.quiet.test": address, "order.quiet.test": address}) as dns:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(
            f'[agent]\nresolver = "{dns.address}"\nrequest_timeout = 5\n'
            f"[http]\nhttp_port = {closed_port(address)}\n[ports]\nports = [{site.port}, {gateway.port}]\n"
            f'[[assets]]\nname = "www"\nurl = "http://www.quiet.test:{site.port}/"\n'
            f'[[assets]]\nname = "order"\nurl = "tls://order.quiet.test:{gateway.port}"\nkind = "trading"\n')
        db = f"sqlite:///{tmp_path / 'n.db'}"
        www = f"http://www.quiet.test:{site.port}/"
        quiet = scan(cfg, db, MONDAY_10, capsys, www)  # the website alone; the gateway is only configured
        assert gateway.accepted == 0, "nmap walked the gateway's port in market hours"
        after_close = scan(cfg, db, MONDAY_10 + timedelta(hours=5), capsys, www)
        assert gateway.accepted > 0  # out of the window the port scan covers the whole address again
    ports = quiet["observations"]["ports"]  # type: ignore[index]
    assert quiet["status"] == "partial" and ports["status"] == "skipped"
    assert ports["skip_reason"] == (
        f"left alone for a neighbour: order (trading) shares {address} (its port {gateway.port}): order is in its "
        "quiet window until 2026-03-02 14:00 (Asia/Taipei)")
    assert quiet["observations"]["http"]["status"] == "ok"  # type: ignore[index]  # the rest of the scan ran
    assert after_close["observations"]["ports"]["status"] == "ok"  # type: ignore[index]


def test_a_neighbour_on_the_same_service_makes_the_scan_passive(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Two names for one service (same address and port), one of them trading: in market hours the
    other name's active probes wait too, and say for whom."""
    from tests.support.counting import counting_server
    from tests.support.dnsserver import dns_server

    address = "127.0.9.6"
    with counting_server(host=address) as site, \
            dns_server({"www.quiet.test": address, "api.quiet.test": address}) as dns:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(
            f'[agent]\nresolver = "{dns.address}"\nrequest_timeout = 5\n'
            f"[http]\nhttp_port = {closed_port(address)}\n[ports]\nports = [{site.port}]\n"
            f'[[assets]]\nname = "www"\nurl = "http://www.quiet.test:{site.port}/"\n'
            f'[[assets]]\nname = "api"\nurl = "http://api.quiet.test:{site.port}/"\nkind = "trading"\n')
        db = f"sqlite:///{tmp_path / 'n.db'}"
        doc = scan(cfg, db, MONDAY_10, capsys, f"http://www.quiet.test:{site.port}/", "--force-active")
    obs = doc["observations"]
    assert isinstance(obs, dict)
    why = ("left alone for a neighbour: api (trading) is the same service "
           f"({address} port {site.port}): api is in its quiet window until 2026-03-02 14:00 (Asia/Taipei)")
    assert (obs["leak"]["status"], obs["leak"]["skip_reason"]) == ("skipped", why)
    assert (obs["ports"]["status"], obs["ports"]["skip_reason"]) == ("skipped", why)
    assert doc["status"] == "partial"
    with Store.open(db) as store:
        assert [s.forced_active for s in store.scans()] == [False]  # nothing active was forced through
    assert not any(s.method == "POSTURE" for s in site.seen)  # edge's active part held back too
