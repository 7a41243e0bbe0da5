"""The CLI end to end against real local servers, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from tests.support.certs import Authority, write_pair
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, Running, closed_port, http_server, raw_server, server_context

HOST_GOOD = "127.0.0.21"
HOST_BAD = "127.0.0.22"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ca = Authority("cli test root")
    d = tmp_path_factory.mktemp("cli-lab")
    leaf = ca.leaf("www.cli.test")
    cert, key = write_pair(d, "www", ca.chain_pem(leaf), leaf.key_pem)
    bundle = ca.write_trust(d / "ca.pem")

    def garbage(sock: socket.socket) -> None:
        sock.recv(4096)
        sock.sendall(b"\x00garbage, not TLS\r\n" * 8)

    routes = {"/": Reply(200, "<html><body>broker</body></html>", {"Strict-Transport-Security": "max-age=100"})}
    dns = DnsServer({"www.cli.test": HOST_GOOD, "broken.cli.test": HOST_BAD}).start()
    with http_server(routes, host=HOST_GOOD, tls=server_context(cert, key)) as www, raw_server(
        garbage, host=HOST_BAD
    ) as broken:
        yield {"dns": dns.address, "bundle": str(bundle), "www": www, "broken": broken, "dir": d}
    dns.stop()


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def www_url(lab: dict[str, Any]) -> str:
    www: Running = lab["www"]
    return f"https://www.cli.test:{www.port}/"


def scan_args(db: str, lab: dict[str, Any], *urls: str) -> list[str]:
    return ["--db", db, "scan", *urls, "--resolver", lab["dns"], "--ca-bundle", lab["bundle"],
            "--probe", "tls", "--probe", "http", "--format", "json"]


def test_scan_json_and_stable_finding_ids(lab: dict[str, Any], store_url: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    code, out, err = run_cli(["--now", first.isoformat(), *scan_args(store_url, lab, www_url(lab))], capsys)
    assert code == 0, err
    doc = json.loads(out)
    (scan,) = doc["scans"]
    assert set(scan) >= {"target", "status", "started_at", "finished_at", "findings", "observations", "errors"}
    assert scan["target"] == www_url(lab)
    # Narrowed with --probe: the probes not asked for are skipped, so the scan is partial (issue 14).
    assert scan["status"] == "partial" and scan["counts_for_cadence"] is False
    outcomes = {p["probe"]: p["outcome"] for p in scan["probes"]}
    assert outcomes["tls"] == outcomes["http"] == outcomes["reach"] == "ran" and outcomes["edge"] == "skipped"
    started_at = datetime.fromisoformat(scan["started_at"].replace("Z", "+00:00"))
    assert timedelta(0) <= started_at - first < timedelta(seconds=60)  # the --now clock runs on from --now
    assert scan["observations"]["dns"]["addresses"] == [HOST_GOOD]
    assert scan["observations"]["tls"]["status"] == "ok"
    hsts = [f for f in scan["findings"] if f["check_id"] == "http.hsts.short_max_age"]  # present, too short
    assert len(hsts) == 1
    f = hsts[0]
    assert set(f) >= {"id", "check_id", "key", "severity", "title", "evidence", "references"}
    assert f["severity"] == "low" and f["references"] == ["NSG-14.1"] and f["evidence"]["max_age"] == 100
    assert not [x for x in scan["findings"] if x["check_id"].startswith("tls.cert")]

    week = first + timedelta(days=7)
    code, out, _ = run_cli(["--now", week.isoformat(), *scan_args(store_url, lab, www_url(lab))], capsys)
    again = json.loads(out)["scans"][0]
    assert code == 0
    assert {x["check_id"]: x["id"] for x in again["findings"]} == {x["check_id"]: x["id"] for x in scan["findings"]}

    code, out, _ = run_cli(["--db", store_url, "findings", "--ad-hoc", "--format", "json"], capsys)
    listed = json.loads(out)["findings"]
    assert code == 0
    assert [x["id"] for x in listed if x["check_id"] == "http.hsts.short_max_age"] == [f["id"]]
    assert listed[0]["first_seen"][:10] == first.date().isoformat()
    assert listed[0]["last_seen"][:10] == week.date().isoformat()


def test_one_failing_probe_leaves_a_partial_scan(lab: dict[str, Any], store_url: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    broken: Running = lab["broken"]
    url = f"https://broken.cli.test:{broken.port}/"
    started = time.monotonic()
    _, out, _ = run_cli(scan_args(store_url, lab, url, www_url(lab)), capsys)
    assert time.monotonic() - started < 30
    scans = {s["target"]: s for s in json.loads(out)["scans"]}
    bad, good = scans[url], scans[www_url(lab)]
    assert good["status"] == "partial"  # narrowed with --probe
    assert bad["status"] in ("partial", "failed")
    # TLS refused on every address is an unreachable service (the reach step fails), else tls fails.
    assert {e["probe"] for e in bad["errors"]} & {"tls", "reach"}
    assert all(e["kind"] in ("protocol", "connect", "timeout") for e in bad["errors"])
    from state.store import Store

    with Store.open(store_url) as store:
        stored = {s.asset: s for s in store.scans()}
    assert stored[url].status.value == bad["status"] and stored[url].finished_at is not None
    assert stored[www_url(lab)].status.value == "partial"


def test_unknown_name_is_a_failed_scan_with_one_line(lab: dict[str, Any], sqlite_url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(scan_args(sqlite_url, lab, "https://nowhere.cli.test/"), capsys)
    assert code == 1
    (scan,) = json.loads(out)["scans"]
    assert scan["status"] == "failed"
    assert "NXDOMAIN" in scan["errors"][0]["error"]
    assert err.count("\n") == 1 and "nowhere.cli.test" in err


def test_configured_assets_and_table_output(lab: dict[str, Any], sqlite_url: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "posture.toml"
    config.write_text(
        f'[agent]\nresolver = "{lab["dns"]}"\nca_bundle = "{lab["bundle"]}"\n\n'
        f'[[assets]]\nname = "official-site"\nurl = "{www_url(lab)}"\nallowed_ports = [443]\n'
    )
    code, out, err = run_cli(["--config", str(config), "--db", sqlite_url, "scan", "--probe", "http"], capsys)
    assert code == 0, err
    assert "official-site" in out and "http.hsts.short_max_age" in out and "1 scan(s)" in out
    # A URL given on the command line that matches a configured asset is that asset.
    code, out, _ = run_cli(["--config", str(config), "--db", sqlite_url, "scan", www_url(lab).rstrip("/"),
                            "--probe", "http", "--format", "json"], capsys)
    assert json.loads(out)["scans"][0]["asset"] == "official-site"
    code, out, _ = run_cli(["--config", str(config), "config", "check"], capsys)
    assert code == 0 and "official-site" in out and "ports 443" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["scan", "ftp://x.test/"], "unparsable URL"),
        (["scan", "https://x.test/", "--probe", "nope"], "unknown probe"),
        (["scan", "https://x.test/", "--resolver", "dns.example"], "--resolver"),
        (["--now", "yesterday", "scan", "https://x.test/"], "--now"),
        (["--config", "/nonexistent/posture.toml", "config", "check"], "does not exist"),
        (["frobnicate"], "invalid choice"),
        (["scan", "--format", "xml"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], fragment: str, sqlite_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code, _, err = run_cli(["--db", sqlite_url, *args], capsys)
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
        _, err = capsys.readouterr()
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_malformed_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[assets]]\nurl = "https://x.test/"\nkind = "bank"\n')
    code, _, err = run_cli(["--config", str(config), "config", "check"], capsys)
    assert code == 2 and "assets[0].kind" in err and err.count("\n") == 1


def test_unreachable_database_is_a_runtime_failure(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code, _, err = run_cli(["--db", f"postgresql+psycopg://u:secret@127.0.0.1:{port}/x", "findings"], capsys)
    assert code == 1
    assert "cannot open database" in err and "secret" not in err and err.count("\n") == 1


def test_the_module_entry_point_works() -> None:
    # How light --help is, is tests/agent/test_startup_imports.py's (what it imports, not a duration).
    proc = subprocess.run([sys.executable, "-m", "agent", "--help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "scan" in proc.stdout


def test_a_librarys_log_record_is_one_posture_line_never_a_traceback() -> None:
    """psycopg's pool, procrastinate and asyncio log through ``logging``; Python's last-resort
    handler would print their message raw and a traceback with it. The entry point installs a
    handler that prints them as posture prints everything: one escaped line, prefixed."""
    code = ("import logging, sys\n"
            "from agent.cli import install_log_lines\n"
            "install_log_lines(); install_log_lines()  # once per process, however often asked\n"
            "try:\n    1 / 0\nexcept ZeroDivisionError:\n"
            "    logging.getLogger('psycopg.pool').exception('error connecting in %r:\\nretrying', 'pool-1')\n"
            "logging.getLogger('procrastinate').info('not shown: below warning')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "posture: psycopg.pool: error connecting in 'pool-1':\\x0aretrying: ZeroDivisionError: division by zero"]
