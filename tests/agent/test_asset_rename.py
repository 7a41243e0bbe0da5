"""An asset renamed in the config (same URL) keeps its identity: scans, findings, first-seen
dates and deadlines carry over. Otherwise the next scan would open the same weakness anew with
a fresh deadline, and the old finding, overdue, would sit under a name nothing scans or alerts.
A real HTTP server and DNS on loopback; SQLite and PostgreSQL (``store_url``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.cli import main
from tests.support.dnsserver import dns_server
from tests.support.servers import Reply, http_server

T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
HOST = "127.0.9.8"


def _config(path: Path, dns: str, name: str, port: int, extra: str = "") -> None:
    path.write_text(f'[agent]\nresolver = "{dns}"\nrequest_timeout = 5\n'
                    f'[[assets]]\nname = "{name}"\nurl = "http://www.rename.test:{port}/"\n{extra}')


def _run(capsys: pytest.CaptureFixture[str], cfg: Path, db: str, at: datetime, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(cfg), "--db", db, "--now", at.isoformat(), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_renamed_asset_keeps_its_findings_and_deadlines(tmp_path: Path, store_url: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    with http_server({"*": Reply(200, "<html><body>plain http</body></html>")}, host=HOST) as site, \
            dns_server({"www.rename.test": HOST}) as dns:
        _config(cfg, dns.address, "gw5", site.port)
        code, out, err = _run(capsys, cfg, store_url, T0, "scan", "--probe", "http", "--format", "json")
        assert code == 0, err
        (first,) = [f for f in json.loads(out)["scans"][0]["findings"] if f["check_id"] == "http.no_https"]
        _config(cfg, dns.address, "order-gw5", site.port)
        later = T0 + timedelta(days=60)
        code, out, err = _run(capsys, cfg, store_url, later, "scan", "--probe", "http", "--format", "json")
        assert code == 0, err
        assert "asset 'gw5' is now 'order-gw5' (same URL): its scans and findings carry over" in err
        (again,) = [f for f in json.loads(out)["scans"][0]["findings"] if f["check_id"] == "http.no_https"]
    assert again["id"] == first["id"] and again["first_seen"] == first["first_seen"]
    code, out, err = _run(capsys, cfg, store_url, later, "findings", "--format", "json", "--overdue")
    assert code == 0, err
    assert [(f["asset"], f["id"]) for f in json.loads(out)["findings"]] == [("order-gw5", first["id"])]
    code, out, err = _run(capsys, cfg, store_url, later, "history", "order-gw5", "--format", "json")
    assert code == 0, err
    assert [e["type"] for e in json.loads(out)["history"]].count("scan") == 2  # the scan under the old name too
    code, out, err = _run(capsys, cfg, store_url, later, "history", "gw5")
    assert code == 2  # no asset of that name any more


def test_two_stored_candidates_are_not_guessed_between(tmp_path: Path, store_url: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Two old names with the URL (stored by a posture before renames carried over), both gone
    from the config: posture does not guess between them; the configured name is a new asset."""
    from state.records import AssetRecord
    from state.store import Store

    cfg = tmp_path / "posture.toml"
    with http_server({"*": Reply(200, "<html><body>plain http</body></html>")}, host=HOST) as site, \
            dns_server({"www.rename.test": HOST}) as dns:
        url = f"http://www.rename.test:{site.port}/"
        with Store.open(store_url) as store:
            for name in ("a", "b"):
                store.upsert_asset(AssetRecord(name=name, url=url, kind="website", configured=True), T0)
        _config(cfg, dns.address, "c", site.port)
        code, _, err = _run(capsys, cfg, store_url, T0 + timedelta(days=1), "scan", "--probe", "http")
        assert code == 0 and "is now" not in err, err
    with Store.open(store_url) as store:
        assert sorted(a.name for a in store.assets()) == ["a", "b", "c"]
