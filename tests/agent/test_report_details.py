"""What the report shows for each finding (advice, evidence, every decision), declared controls
beside what was observed, and a readable chart when the period has one scan day."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from probes.catalog import load_catalog
from state.store import Store
from tests.state.factory import T0, finding, run, scan

DAY = timedelta(days=1)
CONFIG = """
[agent]
timezone = "Asia/Taipei"

[[assets]]
name = "www"
url = "https://www.broker.test/"
[assets.declared]
waf = "雲端 WAF 代管合約 2025-001"
ddos = "ISP 清洗服務"
"""
CERT = {"address": "127.0.0.1:443", "subject": "CN=www.broker.test", "not_after": "2025-03-01T00:00:00Z",
        "issuer": "CN=Test CA"}
LEAK = {"request": "GET /.git/config", "status": 200, "excerpt": "[core]\n\trepositoryformatversion = 0"}
EDGE = {"waf": {"vendors": [], "hints": []}, "cdn": {"vendors": ["Cloudflare"], "hints": ["cf-ray"]}}


def history(url: str) -> dict[str, int]:
    with Store.open(url) as store:
        first = store.record_scan(scan(T0, [
            run("tls", finding("tls.cert.expired", "www.broker.test:443", "critical", **CERT)),
            run("leak", finding("leak.debug_page", "/.git/config", "high", **LEAK)),
            run("edge", observations=EDGE),
        ]))
        cert, leak = first.opened
        store.accept(cert, "renewal ordered", "王小明", T0 + 30 * DAY, T0 + DAY, until_entered="2025-04-01")
        store.accept(cert, "vendor delayed", "陳經理", T0 + 60 * DAY, T0 + 20 * DAY, until_entered="2025年5月1日")
        store.mark_false_positive(leak, "decoy repository", "李大華", T0 + 2 * DAY)
    return {"cert": cert, "leak": leak}


def report(capsys: pytest.CaptureFixture[str], url: str, cfg: Path, *args: str) -> str:
    code = main(["--config", str(cfg), "--db", url, "--now", (T0 + 25 * DAY).isoformat(), "report",
                 "--from", "2025-03-01", "--to", "2025-03-31", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "posture.toml"
    path.write_text(CONFIG)
    return path


def test_each_finding_has_advice_evidence_and_every_decision(store_url: str, cfg: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    ids = history(store_url)
    doc: dict[str, Any] = json.loads(report(capsys, store_url, cfg, "--format", "json", "--lang", "en"))
    (www,) = doc["assets"]
    by = {f["id"]: f for f in www["findings"]}
    cert, leak = by[ids["cert"]], by[ids["leak"]]
    catalog = load_catalog()
    assert cert["remediation"] == catalog["tls.cert.expired"].remediation_en
    assert cert["evidence"]["observed"]["subject"] == "CN=www.broker.test"
    assert leak["evidence"]["observed"]["excerpt"].startswith("[core]")
    # Both acceptances stay in the record, each with who, why and the end exactly as typed.
    assert [(h["decision"], h["by"], h["reason"], h["until"]) for h in cert["decision_history"]] == [
        ("accepted", "王小明", "renewal ordered", "2025-04-01"),
        ("accepted", "陳經理", "vendor delayed", "2025年5月1日"),
    ]
    assert [(h["decision"], h["by"]) for h in leak["decision_history"]] == [("false_positive", "李大華")]
    controls = {c["control"]: c for c in www["declared_controls"]}
    assert controls["waf"]["declared"] == "雲端 WAF 代管合約 2025-001" and controls["waf"]["observed"] == "none seen"
    assert "Cloudflare" in controls["ddos"]["observed"] and controls["ddos"]["scan_id"] is not None

    page = report(capsys, store_url, cfg)
    plain = re.sub(r"<[^>]+>", " ", page)
    assert catalog["tls.cert.expired"].remediation_zh in page
    assert "CN=www.broker.test" in plain and "GET /.git/config" in plain and "repositoryformatversion" in plain
    assert "2025-04-01" in plain and "2025年5月1日" in plain  # both decisions, dates as entered
    assert "王小明" in plain and "陳經理" in plain and "renewal ordered" in plain and "vendor delayed" in plain
    assert "申報之防護措施" in plain and "雲端 WAF 代管合約 2025-001" in plain and "ISP 清洗服務" in plain

    rows = list(csv.DictReader(io.StringIO(report(capsys, store_url, cfg, "--format", "csv", "--lang", "en"))))
    (row,) = [r for r in rows if r["Check ID"] == "tls.cert.expired"]
    assert "王小明" in row["Decision history"] and "陳經理" in row["Decision history"]
    assert row["Remediation"] == catalog["tls.cert.expired"].remediation_en


def test_a_decision_taken_after_the_period_is_not_in_its_report(sqlite_url: str, cfg: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    ids = history(sqlite_url)
    code = main(["--config", str(cfg), "--db", sqlite_url, "--now", (T0 + 25 * DAY).isoformat(), "report",
                 "--from", "2025-03-01", "--to", "2025-03-10", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (www,) = json.loads(out)["assets"]
    cert = next(f for f in www["findings"] if f["id"] == ids["cert"])
    assert [h["until"] for h in cert["decision_history"]] == ["2025-04-01"]  # the second came on day 20


def test_one_scan_day_is_drawn_as_points(sqlite_url: str, cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(sqlite_url) as store:
        store.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "www.broker.test:443", "critical"),
                                        finding("tls.cert.expiring_soon", "x:443", "medium"))]))
    day = (T0 + timedelta(hours=8)).date().isoformat()
    code = main(["--config", str(cfg), "--db", sqlite_url, "--now", (T0 + timedelta(hours=2)).isoformat(), "report",
                 "--from", day, "--to", day, "--lang", "en"])
    page, err = capsys.readouterr()
    assert code == 0, err
    charts = re.findall(r'<svg[^>]*class="chart points".*?</svg>', page, flags=re.S)
    assert len(charts) == 2  # the summary's and the asset's
    for chart in charts:
        assert chart.count('class="point"') == 2  # one point per severity with findings, on the scan's hour
        assert ">2</text>" in chart  # the total, written beside the points
    assert f"Scans on one day only ({day})" in page

    # Scans on two days: the stepped areas as before.
    with Store.open(sqlite_url) as store:
        store.record_scan(scan(T0 + DAY, [run("tls")]))
    code = main(["--config", str(cfg), "--db", sqlite_url, "--now", (T0 + 2 * DAY).isoformat(), "report",
                 "--from", day, "--to", (T0 + DAY).date().isoformat(), "--lang", "en"])
    page, err = capsys.readouterr()
    assert code == 0, err
    assert 'class="chart points"' not in page and "<path" in page

