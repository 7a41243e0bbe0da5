"""Scope and safety (issue 23): the address policy, the origin rule and process-wide limits,
proven at real servers on loopback (connections and requests counted where they arrive)
through a real dnsmasq that answers configured names with loopback and private addresses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from tests.support.certs import Authority, write_pair
from tests.support.counting import Counted, counting_server
from tests.support.dnsserver import DnsServer, dns_server
from tests.support.outcome import narrowed_ok
from tests.support.servers import Reply, Seen, closed_port, server_context

ENV = "POSTURE_ALLOW_ADDRESSES"


def _scan(capsys: pytest.CaptureFixture[str], cfg: Path, db: str, *args: str) -> tuple[int, dict[str, Any], str]:
    code = main(["--config", str(cfg), "--db", db, "scan", "--format", "json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _config(tmp_path: Path, dns: DnsServer, assets: str, agent: str = "", extra: str = "") -> Path:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(f'[agent]\nresolver = "{dns.address}"\nrequest_timeout = 5\nprobe_timeout = 30\n{agent}\n'
                   f'{extra}\n{assets}')
    return cfg


# -- the address policy -------------------------------------------------------------------


@pytest.fixture
def no_env_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session allows loopback (tests/conftest.py): these tests need the policy's defaults."""
    monkeypatch.delenv(ENV, raising=False)


def test_loopback_and_private_answers_get_no_connection_and_no_nmap(
        no_env_allow: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = {"evil.test": "127.0.0.1", "inside.test": ["10.20.30.40", "127.0.0.1"], "meta.test": "169.254.169.254"}
    with counting_server() as site, dns_server(records) as dns:
        assets = "".join(f'[[assets]]\nname = "{n}"\nurl = "http://{n}.test:{site.port}/"\n\n'
                         for n in ("evil", "inside", "meta"))
        cfg = _config(tmp_path, dns, assets, extra=f"[ports]\nports = [{site.port}]\n")
        code, doc, err = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}")
        assert code == 1 and "was refused by the address policy" in err
        scans = {s["asset"]: s for s in doc["scans"]}
        assert all(s["status"] == "failed" for s in scans.values())
        assert scans["evil"]["observations"]["dns"]["refused"] == {"127.0.0.1": "loopback address"}
        assert scans["inside"]["observations"]["dns"]["refused"] == {
            "10.20.30.40": "private address (RFC 1918)", "127.0.0.1": "loopback address"}
        assert scans["meta"]["observations"]["dns"]["refused"] == {"169.254.169.254": "cloud metadata address"}
        for s in scans.values():  # no probe ran at all: nmap never saw an address
            assert all(step["outcome"] == "skipped" for step in s["probes"] if step["probe"] != "dns")
        time.sleep(0.2)
        assert site.accepted == 0 and site.requests == 0
        # The table says it too.
        assert main(["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'p.db'}", "scan", "--probe", "http"]) == 1
        out = capsys.readouterr().out
        assert "refused 127.0.0.1: loopback address" in out and "refused 10.20.30.40: private address" in out


def test_allowed_network_is_probed_and_the_rest_stays_refused(
        no_env_allow: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with counting_server() as site, dns_server({"inside.test": ["10.20.30.40", "127.0.0.1"]}) as dns:
        assets = f'[[assets]]\nname = "inside"\nurl = "http://inside.test:{site.port}/"\n'
        cfg = _config(tmp_path, dns, assets, agent='allow_addresses = ["127.0.0.0/8"]')
        code, doc, _ = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}", "--probe", "http")
        scan = doc["scans"][0]
        assert code == 0 and narrowed_ok(scan)
        assert scan["observations"]["dns"]["refused"] == {"10.20.30.40": "private address (RFC 1918)"}
        assert site.requests > 0  # the control: the same server is reached once allowed


@pytest.mark.parametrize("where", ["env", "asset"])
def test_allow_from_the_environment_or_the_asset(
        where: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with counting_server() as site, dns_server({"lab.test": "127.0.0.1"}) as dns:
        asset = f'[[assets]]\nname = "lab"\nurl = "http://lab.test:{site.port}/"\n'
        if where == "env":
            monkeypatch.setenv(ENV, "192.0.2.0/24, 127.0.0.1/32")
        else:
            asset += 'allow_addresses = ["127.0.0.0/8"]\n'
        cfg = _config(tmp_path, dns, asset)
        code, doc, _ = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}", "--probe", "http")
        assert code == 0 and narrowed_ok(doc["scans"][0]) and site.requests > 0


def test_malformed_allow_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(ENV, "127.0.0.0/8,not-a-network")
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[agent]\nresolver = "127.0.0.1:9"\n')
    assert main(["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'p.db'}", "scan", "http://lab.test/"]) == 2
    err = capsys.readouterr().err
    assert "not-a-network" in err and len(err.strip().splitlines()) == 1
    cfg.write_text('[agent]\nallow_addresses = ["127.0.0.0/33"]\n')
    monkeypatch.delenv(ENV)
    assert main(["--config", str(cfg), "config", "check"]) == 2
    assert "allow_addresses" in capsys.readouterr().err


def test_answer_outside_expected_addresses_is_a_finding_and_not_probed(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with counting_server() as site, dns_server({"www.test": ["127.0.0.1", "127.0.9.9"]}) as dns:
        asset = (f'[[assets]]\nname = "www"\nurl = "http://www.test:{site.port}/"\n'
                 'addresses = ["127.0.9.0/28"]\n')
        cfg = _config(tmp_path, dns, asset)
        _, doc, _ = _scan(capsys, cfg, store_url, "--probe", "http")
        scan = doc["scans"][0]
        found = [f for f in scan["findings"] if f["check_id"] == "dns.unexpected_address"]
        assert len(found) == 1 and found[0]["severity"] == "high"
        assert found[0]["evidence"]["addresses"] == ["127.0.0.1"] and "NSG-18.2" in found[0]["references"]
        assert scan["observations"]["dns"]["refused"] == {"127.0.0.1": "outside the asset's expected addresses"}
        assert site.accepted == 0  # 127.0.9.9 is expected (nothing listens there); 127.0.0.1 never touched
        # Stored and tracked like any finding.
        assert main(["--config", str(cfg), "--db", store_url, "findings", "--format", "json"]) == 0
        stored = json.loads(capsys.readouterr().out)["findings"]
        # Nothing listens on the expected address either: the asset is unreachable too.
        assert sorted(f["check_id"] for f in stored) == ["asset.unreachable", "dns.unexpected_address"]
    # Every answer unexpected: failed, with the finding still recorded.
    with counting_server() as site, dns_server({"www.test": "127.0.0.1"}) as dns:
        asset = (f'[[assets]]\nname = "www"\nurl = "http://www.test:{site.port}/"\n'
                 'addresses = ["127.0.9.0/28"]\n')
        cfg = _config(tmp_path, dns, asset)
        code, doc, _ = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'q.db'}")
        scan = doc["scans"][0]
        assert code == 1 and scan["status"] == "failed"
        assert [f["check_id"] for f in scan["findings"]] == ["dns.unexpected_address"]
        assert site.accepted == 0


def test_two_assets_on_one_host_keep_their_own_addresses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each asset connects only where its own resolution and policy allow, even when another asset
    names the same host: the second asset's pins must not re-point the first one's requests."""
    with counting_server(host="127.0.9.1") as one, dns_server({"www.test": ["127.0.9.1", "127.0.9.2"]}) as dns, \
            counting_server(host="127.0.9.2", port=one.port) as two:
        assets = (f'[[assets]]\nname = "one"\nurl = "http://www.test:{one.port}/"\naddresses = ["127.0.9.1/32"]\n\n'
                  f'[[assets]]\nname = "two"\nurl = "http://www.test:{one.port}/two"\naddresses = ["127.0.9.2/32"]\n')
        cfg = _config(tmp_path, dns, assets, agent="processes = 1",
                      extra=f"[http]\nhttp_port = {closed_port()}\n")
        for _ in range(3):  # whichever asset resolves last, the other keeps its own address
            _code, doc, err = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}", "--probe", "http")
            http = {s["asset"]: s["observations"]["http"] for s in doc["scans"]}
            assert {a: h["status"] for a, h in http.items()} == {"one": "ok", "two": "ok"}, (http, err)
        assert {r.path for r in one.seen} == {"/"} and {r.path for r in two.seen} == {"/two"}


# -- the origin rule --------------------------------------------------------------------


@pytest.fixture
def site_tls(authority: Authority, tmp_path: Path) -> Any:
    leaf = authority.leaf("site.test")
    cert, key = write_pair(tmp_path, "site", authority.chain_pem(leaf), leaf.key_pem)
    return server_context(cert, key)


@pytest.fixture
def other_ports(site_tls: Any) -> Iterator[tuple[Counted, Counted]]:
    """Two more servers on the same host: plain HTTP (like :8080) and HTTPS (like :8443)."""
    with counting_server() as plain, counting_server(tls=site_tls) as tls:
        yield plain, tls


def _page(plain: Counted, tls: Counted) -> dict[str, Any]:
    other_http = f"http://site.test:{plain.port}"
    other_https = f"https://site.test:{tls.port}"
    html = (f'<html><head><script src="{other_https}/app.js"></script>'
            f'<link rel="stylesheet" href="{other_http}/s.css"></head><body>'
            f'<img src="{other_http}/pixel.png"><a href="/away">away</a>'
            f'<a href="{other_https}/login?id=1">login</a><a href="/more?q=1">more</a>'
            f'<iframe src="{other_http}/frame"></iframe>'
            f'<script>fetch("{other_https}/api"); new Image().src = "{other_http}/beacon";</script>'
            '</body></html>')
    return {
        "/": Reply(200, html),
        "/away": Reply(302, "", {"location": f"{other_https}/landing"}),
        "/more": Reply(301, "", {"location": f"{other_http}/more"}),
        "*": Reply(200, html),
    }


@pytest.mark.parametrize("active", [False, True])
def test_other_ports_of_the_same_host_are_out_of_scope(
        active: bool, other_ports: tuple[Counted, Counted], site_tls: Any, ca_bundle: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    plain, tls = other_ports
    with counting_server(_page(plain, tls), tls=site_tls) as site, dns_server({"site.test": "127.0.0.1"}) as dns:
        asset = (f'[[assets]]\nname = "site"\nurl = "https://site.test:{site.port}/"\n'
                 f'active_probes = {str(active).lower()}\n')
        cfg = _config(tmp_path, dns, asset, agent=f'ca_bundle = "{ca_bundle}"',
                      extra=f"[http]\nhttp_port = {closed_port()}\n[ports]\nports = [{closed_port()}]\n")
        _code, doc, _ = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}", "--probe", "http", "--probe", "social",
                             "--probe", "leak", "--probe", "edge")
        scan = doc["scans"][0]
        assert site.requests > 0, scan
        assert "social" in scan["observations"] and scan["observations"]["social"]["status"] in ("ok", "error")
        time.sleep(0.3)
        assert (plain.accepted, tls.accepted) == (0, 0), scan["observations"].get("social")


def test_listed_origin_is_in_scope(other_ports: tuple[Counted, Counted], site_tls: Any, ca_bundle: Path,
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain, tls = other_ports
    with counting_server(_page(plain, tls), tls=site_tls) as site, dns_server({"site.test": "127.0.0.1"}) as dns:
        asset = (f'[[assets]]\nname = "site"\nurl = "https://site.test:{site.port}/"\n'
                 f'active_probes = false\norigins = ["https://site.test:{tls.port}"]\n')
        cfg = _config(tmp_path, dns, asset, agent=f'ca_bundle = "{ca_bundle}"',
                      extra=f"[http]\nhttp_port = {closed_port()}\n")
        _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}", "--probe", "social")
        time.sleep(0.3)
        assert tls.requests > 0 and plain.accepted == 0  # the listed origin only


def test_origins_key_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[[assets]]\nurl = "https://a.test/"\norigins = ["ftp://static.a.test"]\n')
    assert main(["--config", str(cfg), "config", "check"]) == 2
    assert "origin" in capsys.readouterr().err


# -- process-wide limits ----------------------------------------------------------------


def _slow(seen: Seen) -> Reply:
    time.sleep(0.05)  # requests overlap, so a loose limit would show at the server
    links = "".join(f'<a href="/p{i}">p{i}</a>' for i in range(40))
    return Reply(200, f"<html><body>{links}</body></html>")


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_three_assets_on_one_host_share_concurrency_and_budget(
        scheme: str, site_tls: Any, ca_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ("a.test", "b.test", "c.test")
    tls = site_tls if scheme == "https" else None
    with counting_server({"*": _slow}, tls=tls) as site, dns_server({n: "127.0.0.1" for n in names}) as dns:
        assets = "".join(f'[[assets]]\nname = "{n}"\nurl = "{scheme}://{n}:{site.port}/"\n\n' for n in names)
        cfg = _config(tmp_path, dns, assets,
                      agent=f'ca_bundle = "{ca_bundle}"\nper_host_concurrency = 2\nhost_budget = 20',
                      extra=(f'[schedule]\nscan_every = "7d"\njitter = "0"\n[http]\nhttp_port = {closed_port()}\n'
                             f'[ports]\nports = [{site.port}]\n[social]\nmax_pages = 30\n'))
        code = main(["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'p.db'}", "run", "--once",
                     "--format", "json"])
        _out, err = capsys.readouterr()
        assert code in (0, 1), err
        # nmap's connect scan and every probe's sockets count: never more than 2 open at once.
        assert site.peak <= 2, (site.peak, site.accepted)
        # Only posture's HTTP requests are budgeted; nmap's version probes are not HTTP from posture.
        posture_requests = sum(1 for s in site.seen if s.headers.get("user-agent", "").startswith("posture/"))
        assert 0 < posture_requests <= 20, posture_requests
        assert site.accepted > 3


def test_budget_cut_crawl_is_partial_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with counting_server({"*": _slow}) as site, dns_server({"crawl.test": "127.0.0.1"}) as dns:
        asset = f'[[assets]]\nname = "crawl"\nurl = "http://crawl.test:{site.port}/"\n'
        cfg = _config(tmp_path, dns, asset, agent="host_budget = 10",
                      extra="[social]\nmax_pages = 30\nbrowser = false\n")
        _code, doc, _ = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}", "--probe", "http", "--probe", "social")
        scan = doc["scans"][0]
        assert scan["status"] == "partial", scan["status"]
        social = scan["observations"]["social"]
        assert social["status"] == "error" and social["crawl"]["budget_exhausted"] is True
        err = next(e for e in scan["errors"] if e["probe"] == "social")
        assert err["kind"] == "budget" and "partial result" in err["error"]
        assert site.requests <= 10


def test_wss_asset_is_judged_as_its_https_origin(site_tls: Any, ca_bundle: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with counting_server(tls=site_tls) as site, dns_server({"site.test": "127.0.0.1"}) as dns:
        asset = f'[[assets]]\nname = "feed"\nurl = "wss://site.test:{site.port}/stream"\nkind = "trading"\n'
        cfg = _config(tmp_path, dns, asset, agent=f'ca_bundle = "{ca_bundle}"',
                      extra=f"[http]\nhttp_port = {closed_port()}\n")
        code, doc, err = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}", "--probe", "tls", "--probe", "http",
                               "--probe", "edge")
        scan = doc["scans"][0]
        assert scan["errors"] == [] and narrowed_ok(scan), (scan["errors"], err)
        assert any(s.path == "/stream" for s in site.seen)  # the https origin it upgrades from was judged
        assert code == 0


def test_listed_origin_on_another_host_is_resolved_under_the_policy(
        authority: Authority, ca_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leaf = authority.leaf("site.test", "static.test")
    cert, key = write_pair(tmp_path, "both", authority.chain_pem(leaf), leaf.key_pem)
    ctx = server_context(cert, key)
    with counting_server(tls=ctx) as static, counting_server(tls=ctx) as other:
        page = (f'<html><body><img src="https://static.test:{static.port}/logo.png">'
                f'<script src="https://cdn.test:{other.port}/x.js"></script></body></html>')
        records = {"site.test": "127.0.0.1", "static.test": "127.0.0.1", "cdn.test": "10.9.9.9"}
        with counting_server({"*": Reply(200, page)}, tls=ctx) as site, dns_server(records) as dns:
            asset = (f'[[assets]]\nname = "site"\nurl = "https://site.test:{site.port}/"\nactive_probes = false\n'
                     f'origins = ["https://static.test:{static.port}", "https://cdn.test:{other.port}"]\n')
            cfg = _config(tmp_path, dns, asset, agent=f'ca_bundle = "{ca_bundle}"',
                          extra=f"[http]\nhttp_port = {closed_port()}\n")
            _, doc, _ = _scan(capsys, cfg, f"sqlite:///{tmp_path / 'p.db'}", "--probe", "social")
            time.sleep(0.3)
            origins = doc["scans"][0]["observations"]["dns"]["origins"]
            assert origins["cdn.test"]["refused"] == {"10.9.9.9": "private address (RFC 1918)"}
            assert origins["static.test"]["refused"] == {}
            assert static.requests > 0 and other.accepted == 0
            failed = doc["scans"][0]["observations"]["social"]["browser"]["traffic"]["failed"]
            assert [f["error"] for f in failed if "cdn.test" in f["url"]] == [  # the reason, not "not configured"
                "cdn.test is not probed: no address this machine may probe (10.9.9.9: private address (RFC 1918))"]
