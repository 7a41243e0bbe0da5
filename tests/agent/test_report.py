"""``posture report``: the numbers in every format match the database, on SQLite and PostgreSQL.

The history is stored with ``Store.record_scan`` over many dates (weekly scans,
fixes, a reopening, a risk acceptance, a cadence gap, a narrowed scan), then read
back through the CLI with ``--now`` after the period, so each figure can be checked
against the store and against the deadline policy in the config.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from state import external_scans
from state.records import (
    AssetRecord,
    FindingRecord,
    ProbeRunRecord,
    RunStatus,
    ScanRecord,
    ScanStatus,
)
from state.store import Store
from state.views import FindingFilter

WEEK = timedelta(days=7)
EXTERNAL_AT = datetime(2025, 12, 1, 2, 0, tzinfo=UTC)
EVIDENCE = b"%PDF-1.4 third-party scan report"
START = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)  # a Monday, 09:00 Asia/Taipei
PERIOD_FROM = datetime(2025, 6, 30, 16, 0, tzinfo=UTC)  # 2025-07-01 00:00 Asia/Taipei
PERIOD_TO = datetime(2025, 12, 31, 16, 0, tzinfo=UTC)  # 2026-01-01 00:00 Asia/Taipei
NOW = "2026-01-05T10:00:00+08:00"  # during the January declaration window
H2_2025 = ("--from", "2025-07-01", "--to", "2025-12-31")  # the half-year that declaration covers
CERT_NOT_AFTER = datetime(2026, 2, 14, 0, 0, tzinfo=UTC)

WWW = AssetRecord("www", "https://www.broker.test/", "website", True)
TRADE = AssetRecord("trade", "tls://order.broker.test:9443", "trading", True)
API = AssetRecord("api", "https://api.broker.test/", "api", True)
DAYS = {"critical": 7, "high": 30, "medium": 60, "low": 180}
TRADING_HIGH = 10

CONFIG = """
[remediation]
critical = 7
high = 30
medium = 60
low = 180
[remediation.kinds.trading]
high = 10

[[assets]]
name = "www"
url = "https://www.broker.test/"

[[assets]]
name = "never-scanned"
url = "https://new.broker.test/"
"""


def f(check_id: str, key: str, severity: str) -> FindingRecord:
    return FindingRecord(check_id, key, severity, {"seen": key})


def tls_run(at: datetime, grade: str, *found: FindingRecord, status: RunStatus = RunStatus.OK) -> ProbeRunRecord:
    cert = {"subject": "CN=www.broker.test", "not_after": CERT_NOT_AFTER.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "days_left": 99}
    obs: dict[str, Any] = {"addresses": {"127.0.0.1": {"certificate": cert, "status": "ok"}},
                           "grade": {"grade": grade, "score": 90}}
    return ProbeRunRecord("tls", status, at, at + timedelta(seconds=5), obs if status is RunStatus.OK else {},
                          tuple(found), error_kind="connect" if status is RunStatus.ERROR else None,
                          error="connection refused" if status is RunStatus.ERROR else None)


def http_run(at: datetime, *found: FindingRecord) -> ProbeRunRecord:
    return ProbeRunRecord("http", RunStatus.OK, at, at + timedelta(seconds=5), {"http_port": None}, tuple(found))


def record(asset: AssetRecord, at: datetime, runs: Sequence[ProbeRunRecord], *, full: bool = True) -> ScanRecord:
    status = ScanStatus.COMPLETE if all(r.status is RunStatus.OK for r in runs) else ScanStatus.PARTIAL
    return ScanRecord(asset, status, at, at + timedelta(seconds=30), "0.1.0", "test", "cfg", tuple(runs), full=full)


HSTS = f("http.hsts.missing", "www.broker.test:443", "low")
LEGACY = f("tls.protocol.legacy", "www.broker.test:443", "medium")
WAF = f("edge.waf.absent", "www.broker.test", "high")
DEBUG = f("leak.debug_page", "www.broker.test:/debug", "critical")
WEAK = f("tls.cipher.weak", "order.broker.test:9443", "high")


@dataclass
class History:
    url: str
    www_scans: list[datetime]
    partial_at: datetime
    accepted_id: int


def build_history(url: str) -> History:
    """www: weekly from March to December; trade: two scans 210 days apart; api: one narrowed scan."""
    www_scans = []
    partial_at = datetime(2025, 8, 18, 1, 0, tzinfo=UTC)
    with Store.open(url) as store:
        at = START
        while at < PERIOD_TO:
            http: list[FindingRecord] = [HSTS]
            tls: list[FindingRecord] = []
            if at < datetime(2025, 7, 7, tzinfo=UTC):
                tls.append(LEGACY)  # fixed by the 2025-07-07 scan, inside the period
            if datetime(2025, 8, 4, tzinfo=UTC) <= at < datetime(2025, 9, 29, tzinfo=UTC) or at >= datetime(
                2025, 11, 3, tzinfo=UTC
            ):
                http.append(WAF)  # fixed late on 09-29, back on 11-03
            if at < datetime(2025, 4, 7, tzinfo=UTC):
                http.append(DEBUG)  # fixed before the period: not in its report
            grade = "B" if at < datetime(2025, 7, 7, tzinfo=UTC) else "A"
            if at == partial_at:
                runs = [tls_run(at, grade, status=RunStatus.ERROR), http_run(at, *http)]
            else:
                runs = [tls_run(at, grade, *tls), http_run(at, *http)]
            store.record_scan(record(WWW, at, runs))
            www_scans.append(at)
            at += WEEK
        first = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)
        stored = store.record_scan(record(TRADE, first, [tls_run(first, "C", WEAK)]))
        second = first + timedelta(days=210)
        store.record_scan(record(TRADE, second, [tls_run(second, "C", WEAK)]))
        accepted_id = stored.finding_ids[(WEAK.check_id, WEAK.key)]
        store.accept(accepted_id, "replacement gateway ordered", "ciso", datetime(2026, 3, 1, tzinfo=UTC),
                     second + timedelta(days=4))
        # A third-party scan of the trading system: it counts for the cadence like one of posture's.
        external_scans.record(store, "trade", performed_at=EXTERNAL_AT, performed_by="Acme Pentest",
                              evidence_name="acme.pdf", evidence=EVIDENCE, recorded_at=EXTERNAL_AT + timedelta(days=2))
        narrowed = datetime(2025, 5, 5, 1, 0, tzinfo=UTC)
        store.record_scan(record(API, narrowed, [http_run(narrowed, HSTS)], full=False))
        # A URL scanned once on the command line, clean, before the period: no evidence for it.
        adhoc = AssetRecord("https://old.broker.test/", "https://old.broker.test/", "website", False)
        store.record_scan(record(adhoc, START, [http_run(START)]))
    return History(url, www_scans, partial_at, accepted_id)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def report(capsys: pytest.CaptureFixture[str], url: str, config: Path, *extra: str,
           now: str = NOW) -> dict[str, Any]:
    code, out, err = cli(capsys, "--config", str(config), "--db", url, "--now", now, "report", "--format", "json",
                         *extra)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "posture.toml"
    path.write_text(CONFIG)
    return path


def test_declaration_report_matches_the_database(store_url: str, config: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    history = build_history(store_url)
    doc = report(capsys, store_url, config, *H2_2025)
    meta = doc["report"]
    # Run on 5 January for the half-year the January declaration covers.
    assert (utc(meta["since"]), utc(meta["until"])) == (PERIOD_FROM, PERIOD_TO)
    assert meta["declaration_period"] is True and utc(meta["as_of"]) == PERIOD_TO
    assets = {a["name"]: a for a in doc["assets"]}
    assert list(assets) == ["api", "never-scanned", "trade", "www"]

    with Store.open(store_url) as store:
        for name, asset in assets.items():
            if name == "never-scanned":
                continue
            stored = store.scans(name, since=PERIOD_FROM, until=PERIOD_TO)
            assert [s["id"] for s in asset["scans"]] == [s.id for s in stored]
            assert [s["status"] for s in asset["scans"]] == [s.status.value for s in stored]
            complete = [s.started_at for s in stored if s.status is ScanStatus.COMPLETE and s.full]
            complete += [x.performed_at for x in external_scans.scans(store, name, until=PERIOD_TO)
                         if x.performed_at >= PERIOD_FROM]
            assert [utc(t) for t in asset["cadence"]["complete_scans"]] == sorted(complete)
            # Nothing happened after the period, so its end state is the database's state now.
            open_now = store.findings(FindingFilter.OPEN, name)
            counts = {sev: sum(x.severity == sev for x in open_now) for sev in DAYS}
            assert {k: asset["open_by_severity"][k] for k in DAYS} == counts
            for entry in asset["findings"]:
                row = store.finding(entry["id"])
                days = TRADING_HIGH if name == "trade" and row.severity == "high" else DAYS[row.severity]
                assert utc(entry["deadline"]) == row.first_seen + timedelta(days=days)
                assert utc(entry["first_seen"]) == row.first_seen
                assert utc(entry["fixed_at"]) == row.fixed_at
                assert entry["state"] == row.state.value
        occurrences = {s["id"]: s["findings"] for s in assets["www"]["scans"]}
        for scan_id in list(occurrences)[:3]:
            assert occurrences[scan_id] == len(store.scan(scan_id).occurrences)

    www = assets["www"]
    by_check = {x["check_id"]: x for x in www["findings"]}
    assert set(by_check) == {"edge.waf.absent", "tls.protocol.legacy", "http.hsts.missing"}  # debug page: before
    legacy, waf, hsts = by_check["tls.protocol.legacy"], by_check["edge.waf.absent"], by_check["http.hsts.missing"]
    assert legacy["state"] == "fixed" and utc(legacy["fixed_at"]) == datetime(2025, 7, 7, 1, 0, 30, tzinfo=UTC)
    assert legacy["fixed_late"] is True  # first seen 03-03, 60 days for medium
    assert waf["state"] == "reopened" and waf["overdue"] is True and waf["reopened_count"] == 1
    # A reopened finding keeps its first deadline (the default policy).
    assert utc(waf["deadline"]) == datetime(2025, 8, 4, 1, 0, 30, tzinfo=UTC) + timedelta(days=30)
    assert hsts["overdue"] is True and hsts["state"] == "open"
    assert [c["label"] for c in waf["clauses"]] == ["NSG-16.3"]
    assert waf["clauses"][0]["source"] == "網路安全防護參考指引 第十六條第三項"
    assert www["latest_grade"] == "A" and www["overdue"] == 2
    partial = next(s for s in www["scans"] if utc(s["started_at"]) == history.partial_at)
    assert partial["status"] == "partial" and partial["counts_for_cadence"] is False and partial["grade"] is None
    assert partial["errors"] == [{"probe": "tls", "kind": "connect", "error": "connection refused"}]
    assert www["cadence"]["state"] == "ok" and www["cadence"]["gaps"] == []
    (cert,) = www["certificates"]
    assert utc(cert["not_after"]) == CERT_NOT_AFTER
    assert cert["days_left"] == int((CERT_NOT_AFTER - PERIOD_TO) / timedelta(days=1)) == 44

    trade = assets["trade"]
    (weak,) = trade["findings"]
    assert weak["id"] == history.accepted_id and weak["state"] == "accepted"
    assert weak["decision_reason"] == "replacement gateway ordered" and weak["decision_by"] == "ciso"
    assert weak["overdue"] is False  # an accepted risk is not overdue while the acceptance lasts
    (gap,) = trade["cadence"]["gaps"]
    assert gap["days"] == 210 and gap["ongoing"] is False
    assert trade["cadence"]["state"] == "ok"
    assert [utc(t) for t in trade["cadence"]["complete_scans"]] == [datetime(2025, 10, 6, 1, tzinfo=UTC),
                                                                     EXTERNAL_AT]
    (ext,) = trade["external_scans"]
    assert ext["performed_by"] == "Acme Pentest" and ext["evidence_sha256"] == hashlib.sha256(EVIDENCE).hexdigest()
    assert utc(trade["cadence"]["due"]) == EXTERNAL_AT + timedelta(days=183)

    api = assets["api"]
    assert api["cadence"]["state"] == "overdue" and api["cadence"]["complete_scans"] == []
    (gap,) = api["cadence"]["gaps"]
    assert gap["ongoing"] is True and utc(gap["start"]) == datetime(2025, 5, 5, 1, 0, tzinfo=UTC)
    assert assets["never-scanned"]["added_at"] is None and assets["never-scanned"]["cadence"]["state"] == "overdue"

    summary = doc["summary"]
    assert summary["scans"] == sum(len(a["scans"]) for a in doc["assets"])
    assert summary["open_by_severity"]["high"] == 1 and summary["overdue"] == 3  # waf, hsts on www; api's hsts
    series = doc["open_over_time"]
    assert utc(series[0]["at"]) == PERIOD_FROM and utc(series[-1]["at"]) == PERIOD_TO
    end = series[-1]
    assert {k: end[k] for k in DAYS} == {k: summary["open_by_severity"][k] for k in DAYS}
    # A step function: a point where the counts change, e.g. when the WAF finding came back on 11-03.
    steps = {utc(p["at"]): p for p in www["open_over_time"]}
    reopened = datetime(2025, 11, 3, 1, 0, 30, tzinfo=UTC)
    assert steps[reopened]["high"] == 1 and steps[PERIOD_FROM]["high"] == 0
    assert steps[datetime(2025, 7, 7, 1, 0, 30, tzinfo=UTC)]["medium"] == 0  # the legacy fix


def test_a_past_period_shows_states_as_they_were(store_url: str, config: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    build_history(store_url)
    doc = report(capsys, store_url, config, "--from", "2025-09-01", "--to", "2025-10-31", "--asset", "www",
                 "--lang", "en")
    meta = doc["report"]
    assert utc(meta["since"]) == datetime(2025, 8, 31, 16, 0, tzinfo=UTC)
    assert utc(meta["until"]) == datetime(2025, 10, 31, 16, 0, tzinfo=UTC)  # --to is inclusive
    assert [a["name"] for a in doc["assets"]] == ["www"]
    findings = {x["check_id"]: x for x in doc["assets"][0]["findings"]}
    # The WAF finding came back on 11-03, after this period: at its end it was fixed (late).
    waf = findings["edge.waf.absent"]
    assert waf["state"] == "fixed" and waf["fixed_late"] is True and waf["reopened_count"] == 0
    assert utc(waf["fixed_at"]) == datetime(2025, 9, 29, 1, 0, 30, tzinfo=UTC)
    # Fixed on 07-07, before this period, and untouched in it: not part of its evidence.
    assert "tls.protocol.legacy" not in findings
    assert findings["http.hsts.missing"]["title"].startswith("HTTPS response lacks")
    scans = doc["assets"][0]["scans"]
    assert len(scans) == 9 and all(utc(s["started_at"]) >= utc(meta["since"]) for s in scans)  # type: ignore[operator]


def test_csv_and_html_carry_the_same_rows(sqlite_url: str, config: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    build_history(sqlite_url)
    doc = report(capsys, sqlite_url, config, *H2_2025)
    base = ["--config", str(config), "--db", sqlite_url, "--now", NOW, "report", *H2_2025]
    out_csv = tmp_path / "evidence.csv"
    code, out, err = cli(capsys, *base, "--format", "csv", "--lang", "en", "-o", str(out_csv))
    assert code == 0 and out == "", err
    raw = out_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # Excel needs the BOM to read UTF-8
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    expected = [(a["name"], str(x["id"])) for a in doc["assets"] for x in a["findings"]]
    no_findings = [a["name"] for a in doc["assets"] if not a["findings"]]
    assert [(r["Asset"], r["ID"]) for r in rows if r["ID"]] == expected
    assert [r["Asset"] for r in rows if not r["ID"]] == no_findings  # their cadence record still appears
    waf = next(r for r in rows if r["Check ID"] == "edge.waf.absent")
    assert waf["Deadline"] == "2025-09-03T09:00:30+08:00" and waf["Overdue"] == "yes"
    assert waf["State"] == "reopened" and waf["Clause"] == "NSG-16.3"
    assert waf["Clause name"] == "網路安全防護參考指引 第十六條第三項"

    code, out, err = cli(capsys, *base, "--format", "csv")
    header = next(csv.reader(io.StringIO(out)))
    assert code == 0 and header[:3] == ["資產", "網址", "類型"] and "修補期限" in header

    code, html, err = cli(capsys, *base)
    assert code == 0, err
    assert html.startswith("<!DOCTYPE html>") and '<html lang="zh-TW">' in html
    for asset in doc["assets"]:
        assert f'id="asset-{asset["name"]}"' in html
        for x in asset["findings"]:
            assert f"<td class=\"n\">{x['id']}</td>" in html
    assert "網路安全防護參考指引 第十六條第三項" in html and "逾期" in html and "風險接受" in html
    assert "第三方掃描紀錄" in html and hashlib.sha256(EVIDENCE).hexdigest() in html
    assert "<script" not in html and "<link" not in html and "@import" not in html


def test_bad_options_exit_2_with_one_line(sqlite_url: str, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--config", str(config), "--db", sqlite_url, "--now", NOW, "report"]
    for args, fragment in (
        (["--asset", "nope"], "no asset named 'nope'"),
        (["--from", "2025-13-01"], "--from"),
        (["--from", "2025-10-01", "--to", "2025-09-01"], "empty"),
        (["--from", "2027-01-01"], "after now"),
    ):
        code, _, err = cli(capsys, *base, *args)
        assert code == 2 and fragment in err and err.count("\n") == 1, (args, err)
    code, _, err = cli(capsys, *base, "-o", "/nonexistent/dir/report.html")
    assert code == 2 and "cannot write" in err
