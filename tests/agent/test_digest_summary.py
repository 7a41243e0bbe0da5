"""The digest a manager reads: 50 assets on one screen, a summary first, then only assets with news.

History is generated straight into the store (tests/state/factory.py): one baseline scan of
each asset, then a week in which a handful of assets have something to report. The digest
is read as text and as JSON, and sent through real Apprise into a local HTTP sink.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from state.records import AssetRecord, RunStatus, ScanStatus
from state.store import Store
from tests.state.factory import T0, finding, run, scan
from tests.support.sinks import http_sink

DAY = timedelta(days=1)
NOW = T0 + 40 * DAY  # the week ending now: [NOW - 7 days, NOW)
WEEK = NOW - 5 * DAY
NAMES = [f"a{i:02d}" for i in range(50)]
NEWS = {"a00", "a01", "a02", "a03", "a04", "a05", "a06"}  # the assets with something to report
MANY = 25  # new findings on a06: more than a channel lists (max_items 20)


def asset(name: str) -> AssetRecord:
    return AssetRecord(name=name, url=f"https://{name}.broker.test/", kind="website", configured=True)


def write_config(tmp_path: Path, notify: str = "", digest: str = "off") -> Path:
    cfg = tmp_path / "posture.toml"
    blocks = "".join(f'[[assets]]\nname = "{n}"\nurl = "https://{n}.broker.test/"\n\n' for n in NAMES)
    cfg.write_text('[agent]\nresolver = "127.0.0.1:9"\ntimezone = "Asia/Taipei"\n\n'
                   f'[schedule]\nscan_every = "365d"\ndigest = "{digest}"\n\n{notify}{blocks}')
    return cfg


def build(url: str) -> dict[str, int]:
    """Baseline scans of all 50 at T0, then this week's news on a00..a06. Returns finding ids by role."""
    ids: dict[str, int] = {}
    with Store.open(url) as store:
        for name in NAMES:
            found = []
            if name == "a01":
                found = [finding("http.hsts.missing", "a01.broker.test", "high")]  # 30 days: overdue by now
            if name in ("a02", "a03", "a05"):
                found = [finding("leak.version_banner", f"{name}.broker.test", "low")]
            stored = store.record_scan(scan(T0, [run("tls", *found, at=T0)], asset=asset(name)))
            if stored.opened:
                ids[name] = stored.opened[0]
        # a00: a new finding this week.
        store.record_scan(scan(WEEK, [run("tls", finding("tls.cert.expired", "a00.broker.test:443", "critical"),
                                          at=WEEK)], asset=asset("a00")))
        # a02 accepted and a03 marked a false positive this week, by people, with reasons.
        store.accept(ids["a02"], "vendor fix due in Q3", "王小明", NOW + 90 * DAY, WEEK, until_entered="2026-06-30")
        store.mark_false_positive(ids["a03"], "banner is a decoy", "李大華", WEEK + DAY)
        # a04: this week's scan could not reach the service.
        store.record_scan(scan(WEEK, [run("tls", status=RunStatus.ERROR, at=WEEK,
                                          error="connect to 127.0.0.1:443: connection refused")],
                               asset=asset("a04"), status=ScanStatus.FAILED))
        # a05: fixed this week (the finding is gone from a complete scan).
        store.record_scan(scan(WEEK, [run("tls", at=WEEK)], asset=asset("a05")))
        # a06: many new findings at once.
        store.record_scan(scan(WEEK, [run("tls", *(finding("tls.cert.expired", f"h{i}.a06.broker.test:443", "high")
                                                   for i in range(MANY)), at=WEEK)], asset=asset("a06")))
    return ids


def cli(capsys: pytest.CaptureFixture[str], cfg: Path, url: str, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(cfg), "--db", url, "--now", NOW.isoformat(), *args])
    out, err = capsys.readouterr()
    return code, out, err


def listed_assets(text: str) -> list[str]:
    return re.findall(r"^== (\S+)", text, flags=re.M)


def test_fifty_assets_fit_on_one_screen_summary_first(store_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    ids = build(store_url)
    cfg = write_config(tmp_path)
    code, text, err = cli(capsys, cfg, store_url, "digest", "--lang", "en")
    assert code == 0, err
    lines = text.splitlines()
    assert listed_assets(text) == sorted(NEWS)  # the 43 quiet assets are counted, not listed
    assert "7 with something to report below, the other 43 with no change and nothing due" in lines[1]
    # The summary comes first, before any asset.
    first_asset = next(i for i, ln in enumerate(lines) if ln.startswith("== "))
    summary = "\n".join(lines[:first_asset])
    assert f"This week: {1 + MANY} new, 1 fixed, 0 resolved by configuration" in summary
    assert "Decisions this week: risk accepted 1, marked false positive 1" in summary
    assert "Scans with problems this week: 1 failed or unreachable (a04)" in summary
    assert "overdue 1" in summary and "Scan cadence at risk: none" in summary
    assert first_asset <= 8
    # Every listed asset's lines are sections with content: never a column of "none".
    assert "none" not in "\n".join(lines[first_asset:]).lower()
    # Without a cap (the command line) a06 lists all its findings; the whole still fits one screen
    # once a channel caps the lists (below).
    assert sum(1 for ln in lines if ln.startswith("  - ")) == (1 + 1 + 1 + 1 + 1 + 1 + MANY + 2)
    decided = next(ln for ln in lines if "risk accepted, by 王小明" in ln)
    assert f"#{ids['a02']}" in decided and "reason: vendor fix due in Q3" in decided and "until 2026-06-30" in decided
    assert any("marked false positive, by 李大華, reason: banner is a decoy" in ln for ln in lines)
    assert any("[failed or unreachable]" in ln and "connection refused" in ln for ln in lines)

    # JSON keeps every asset (for scripts) and the same facts.
    code, out, err = cli(capsys, cfg, store_url, "digest", "--format", "json")
    doc: dict[str, Any] = json.loads(out)
    assert len(doc["assets"]) == 50 and doc["totals"]["assets_listed"] == 7
    assert doc["totals"]["decided_accepted"] == 1 and doc["totals"]["decided_false_positive"] == 1
    assert doc["totals"]["scans_failed"] == 1
    by = {a["asset"]: a for a in doc["assets"]}
    assert [d["decision"] for d in by["a02"]["decisions"]] == ["accepted"]
    assert by["a02"]["decisions"][0]["until"] == "2026-06-30" and by["a02"]["decisions"][0]["by"] == "王小明"
    assert by["a04"]["scan_problems"][0]["status"] == "failed"
    assert not by["a30"]["has_news"]


def test_the_sent_digest_is_capped_and_more_points_to_the_exact_list(sqlite_url: str, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    build(sqlite_url)
    with http_sink() as sink:
        cfg = write_config(tmp_path, notify=f'[[notify]]\nurl = "{sink.url()}"\nevents = ["digest"]\n'
                                            'max_items = 5\n\n')
        code, _, err = cli(capsys, cfg, sqlite_url, "digest", "--send")
        assert code == 0, err
        (sent,) = sink.messages()
    body: str = sent["message"]
    lines = body.splitlines()
    assert sent["title"].startswith("posture 每週摘要")
    assert len(lines) <= 50, body  # 50 assets on one screen (it was 8 lines for each asset, 400 and more)
    assert listed_assets(body) == sorted(NEWS)
    assert sum(1 for ln in lines if ln.startswith("  - ")) <= 5 * len(NEWS) + len(NEWS)
    (more,) = [ln for ln in lines if "另有" in ln]
    assert f"另有 {MANY - 5} 項未列出" in more
    command = more.split("完整清單：", 1)[1].split()
    assert command[0] == "posture" and "digest" in command and "--section" in command and "a06" in command
    # The command it names lists exactly those findings: the section in full, nothing else.
    code, out, err = cli(capsys, cfg, sqlite_url, *command[1:])
    assert code == 0, err
    items = [ln for ln in out.splitlines() if ln.startswith("  - ")]
    assert len(items) == MANY and listed_assets(out) == ["a06"]
    shown = [ln for ln in lines if ln.startswith("  - ") and "a06.broker.test" in ln]
    assert set(shown) <= set(items) and len(shown) == 5


def test_quiet_week_lists_no_asset(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(sqlite_url) as store:
        for name in NAMES:
            store.record_scan(scan(T0, [run("tls", at=T0)], asset=asset(name)))
    cfg = write_config(tmp_path)
    code, text, err = cli(capsys, cfg, sqlite_url, "digest")
    assert code == 0, err
    assert listed_assets(text) == [] and len(text.splitlines()) <= 8
    assert "0 項有事項列於下方，其餘 50 項本週無變動、無待辦" in text
    code, text, _ = cli(capsys, cfg, sqlite_url, "digest", "--all")
    assert len(listed_assets(text)) == 50
    code, text, _ = cli(capsys, cfg, sqlite_url, "digest", "--asset", "a07")
    assert listed_assets(text) == ["a07"] and "本週無變動、無待辦" in text
    code, out, _ = cli(capsys, cfg, sqlite_url, "digest", "--asset", "a07", "--format", "json")
    assert [a["asset"] for a in json.loads(out)["assets"]] == ["a07"]
    for bad in (["--asset", "nope"], ["--section", "everything"]):
        code, out, err = cli(capsys, cfg, sqlite_url, "digest", *bad)
        assert code == 2 and out == "" and err.count("\n") == 1, err
