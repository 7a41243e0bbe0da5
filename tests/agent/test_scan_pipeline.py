"""Issue 15, for pipelines: ``scan --fail-on`` (exit 3), the scan JSON's schema, bare host names, the
TLS line of the scan table, ``eol show`` as a table. The CLI runs as a subprocess against real local
servers (a TLS web server and a DNS server on loopback), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.site_lab import broker_site

HOST = "127.0.0.23"
NOW = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with broker_site(tmp_path_factory.mktemp("pipeline-lab"), "www.pipe.test", HOST, "pipeline test root") as site:
        yield site


def posture(db: str, *args: str, now: datetime = NOW) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent", "--db", db, "--now", now.isoformat(), *args],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))


def scan(lab: dict[str, Any], db: str, *extra: str, url: str | None = None,
         now: datetime = NOW) -> subprocess.CompletedProcess[str]:
    target = url or f"https://www.pipe.test:{lab['port']}/"
    return posture(db, "scan", target, "--resolver", lab["dns"], "--ca-bundle", lab["bundle"],
                   "--probe", "http", *extra, now=now)


def test_fail_on_exit_3_only_for_open_findings_at_or_above(lab: dict[str, Any], store_url: str) -> None:
    plain = scan(lab, store_url)
    assert plain.returncode == 0, plain.stderr  # findings alone never change the exit code
    low = scan(lab, store_url, "--fail-on", "low")
    assert low.returncode == 3, low.stderr
    assert "at or above low" in low.stderr and "exit 3" in low.stderr and low.stderr.count("\n") == 1
    assert scan(lab, store_url, "--fail-on", "info").returncode == 3  # at or above: low counts for info
    medium = scan(lab, store_url, "--fail-on", "medium")
    assert medium.returncode == 0, medium.stderr
    bad = scan(lab, store_url, "--fail-on", "severe")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
    # an accepted risk does not fail the pipeline; reopened, it does again
    doc = json.loads(scan(lab, store_url, "--format", "json").stdout)
    (fid,) = [f["id"] for f in doc["scans"][0]["findings"] if f["check_id"] == "http.hsts.short_max_age"]
    until = (NOW + timedelta(days=30)).date().isoformat()
    acc = posture(store_url, "findings", "accept", str(fid), "--reason", "CDN change booked", "--until", until,
                  "--by", "ops")
    assert acc.returncode == 0, acc.stderr
    assert scan(lab, store_url, "--fail-on", "low").returncode == 0
    assert posture(store_url, "findings", "reopen", str(fid), "--reason", "no", "--by", "ciso").returncode == 0
    assert scan(lab, store_url, "--fail-on", "low").returncode == 3


def test_fail_on_counts_stored_open_findings_the_scan_could_not_look_at_again(
        tmp_path: Path, store_url: str) -> None:
    """A gate must not pass a scan that did not look: the service is down, the http probe cannot
    run, and the low finding it opened before is still open in the record."""
    with broker_site(tmp_path, "www.gone.test", "127.0.0.24", "gone test root") as site:
        first = scan(site, store_url, "--fail-on", "low", url=f"https://www.gone.test:{site['port']}/")
        assert first.returncode == 3, first.stderr
        args = ("--fail-on", "low")
        url = f"https://www.gone.test:{site['port']}/"
    down = scan(site, store_url, *args, url=url, now=NOW + timedelta(minutes=5))
    assert down.returncode == 3, down.stderr
    assert "not checked again, their probe did not run in full" in down.stderr and "(http)" in down.stderr
    assert "scan of" in down.stderr and "failed" in down.stderr  # the failed scan is still named
    # Above the finding's severity the gate passes: only a failed scan's exit 1 remains.
    assert scan(site, store_url, "--fail-on", "medium", url=url, now=NOW + timedelta(minutes=6)).returncode == 1


def test_scan_json_schema(lab: dict[str, Any], store_url: str) -> None:
    proc = scan(lab, store_url, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 2
    (s,) = doc["scans"]
    assert isinstance(s["id"], int)
    from state.store import Store

    with Store.open(store_url) as store:
        assert store.scan(s["id"]).scan.asset == s["asset"]
    (f,) = [f for f in s["findings"] if f["check_id"] == "http.hsts.short_max_age"]
    assert f["state"] == "open"
    assert f["first_seen"][:10] == NOW.date().isoformat()
    assert f["deadline"] is not None and f["deadline"] > f["first_seen"]  # low has a deadline by default
    summary = doc["summary"]
    assert summary["scans"] == 1 and summary["findings"] == len(s["findings"])
    assert set(summary["by_severity"]) == {"critical", "high", "medium", "low", "info"}
    assert sum(summary["by_severity"].values()) == len(s["findings"])
    assert summary["by_state"] == {"open": len(s["findings"])}
    # seen again a week later: first_seen stays, the state too
    later = scan(lab, store_url, "--format", "json", now=NOW + timedelta(days=7))
    (g,) = [x for x in json.loads(later.stdout)["scans"][0]["findings"] if x["check_id"] == f["check_id"]]
    assert g["id"] == f["id"] and g["first_seen"] == f["first_seen"] and g["deadline"] == f["deadline"]


def test_bare_host_name_means_https(lab: dict[str, Any], sqlite_url: str) -> None:
    proc = scan(lab, sqlite_url, "--format", "json", url=f"www.pipe.test:{lab['port']}")
    assert proc.returncode == 0, proc.stderr
    (s,) = json.loads(proc.stdout)["scans"]
    assert s["target"] == f"https://www.pipe.test:{lab['port']}/"
    assert s["observations"]["http"]["status"] == "ok"


def test_scan_table_shows_tls_grade_and_protocols(lab: dict[str, Any], sqlite_url: str) -> None:
    proc = posture(sqlite_url, "scan", f"https://www.pipe.test:{lab['port']}/", "--resolver", lab["dns"],
                   "--ca-bundle", lab["bundle"], "--probe", "tls", "--probe", "http")
    assert proc.returncode == 0, proc.stderr
    (line,) = [x for x in proc.stdout.splitlines() if x.strip().startswith("tls:")]
    assert "grade " in line and "grade not computed" not in line
    assert "TLSv1.2" in line or "TLSv1.3" in line
    assert "SSLv3" not in line and "TLSv1.0" not in line  # the test server offers modern versions only


def test_help_documents_exit_3() -> None:
    proc = subprocess.run([sys.executable, "-m", "agent", "scan", "--help"], capture_output=True, text=True,
                          timeout=30, env=dict(os.environ))
    assert proc.returncode == 0 and "--fail-on" in proc.stdout and "3" in proc.stdout


def test_eol_show_table_and_json(sqlite_url: str, tmp_path: Path) -> None:
    table = posture(sqlite_url, "eol", "show", now=datetime(2026, 11, 21, tzinfo=UTC))
    assert table.returncode == 0, table.stderr
    assert not table.stdout.lstrip().startswith("{")
    lines = table.stdout.splitlines()
    assert any(x.startswith("PRODUCT") and "END OF LIFE" in x for x in lines)
    (apache22,) = [x for x in lines if x.startswith("Apache HTTP Server") and " 2.2 " in x]
    assert "2017-07-11" in apache22 and "ended" in apache22
    js = posture(sqlite_url, "eol", "show", "--format", "json")
    assert js.returncode == 0 and "products" in json.loads(js.stdout)
    one = posture(sqlite_url, "eol", "show", "nginx", "--format", "json")
    assert list(json.loads(one.stdout)["products"]) == ["nginx"]
    missing = posture(sqlite_url, "eol", "show", "no-such-product")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_fail_on_beside_a_failed_scan(lab: dict[str, Any], sqlite_url: str) -> None:
    good = f"https://www.pipe.test:{lab['port']}/"
    both = posture(sqlite_url, "scan", good, "https://nowhere.pipe.test/", "--resolver", lab["dns"],
                   "--ca-bundle", lab["bundle"], "--probe", "http", "--fail-on", "low")
    assert both.returncode == 3  # the finding decides; the failed scan is still named
    assert "scan of https://nowhere.pipe.test/ failed" in both.stderr and "exit 3" in both.stderr
    only_failed = posture(sqlite_url, "scan", "https://nowhere.pipe.test/", "--resolver", lab["dns"],
                          "--probe", "http", "--fail-on", "low")
    assert only_failed.returncode == 1 and "exit 3" not in only_failed.stderr
