"""Alert wording: "N more" names exactly the items left out; never "0 day(s) overdue"; run --once
prints the number of alerts each channel was actually sent."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from agent.notify.alerts import Alert, AlertKind, message
from probes.catalog import load_catalog
from state.store import Store
from tests.agent.test_notify import cli, write_config
from tests.state.factory import T0, finding, run, scan
from tests.support.sinks import http_sink

DAY = timedelta(days=1)


def _new(i: int, severity: str = "high") -> Alert:
    return Alert(AlertKind.NEW_FINDING, f"new:{i}:0", "www", severity, "tls.cert.expired",
                 {"finding_id": i, "key": f"h{i}:443"})


def test_more_lists_exactly_the_hidden_findings_and_assets() -> None:
    catalog = load_catalog()
    alerts = [_new(i) for i in range(1, 8)]
    alerts += [Alert(AlertKind.CADENCE_WARNING, f"cadence:{n}:warning:x", n, "medium", "cadence.scan_overdue",
                     {"due": "2026-01-01T00:00:00+00:00", "days_left": 5, "last_complete": None})
               for n in ("api", "trade")]
    msg = message(alerts, "en", "Asia/Taipei", catalog, cap=3)
    listed = {int(m) for m in re.findall(r"^- .*#(\d+)$", msg.text, flags=re.M)}
    more = msg.text.splitlines()[-1]
    assert more.startswith("…and 6 more not listed: ")
    hidden = {int(m) for m in re.findall(r"#(\d+)", more)}
    assert listed | hidden == set(range(1, 8)) and not listed & hidden  # every finding once, listed or named
    # The two cadence warnings are the first listed (most pressing), so none is named in "more".
    assert "posture findings show ID" in more
    msg = message(alerts, "zh-TW", "Asia/Taipei", catalog, cap=1)
    more = msg.text.splitlines()[-1]
    assert more.startswith("…另有 8 項未列出：") and "trade" in more and "posture digest --section cadence" in more


def test_a_deadline_missed_by_hours_is_not_zero_days_overdue() -> None:
    catalog = load_catalog()
    due = "2026-01-01T00:00:00+00:00"
    for days, zh, en in ((0, "今日已逾期", "overdue since today"), (3, "已逾期 3 天", "3 day(s) overdue")):
        alert = Alert(AlertKind.DEADLINE_MISSED, f"deadline:1:{due}", "www", "high", "tls.cert.expired",
                      {"finding_id": 1, "key": "k", "due": due, "days_over": days})
        text_zh = message([alert], "zh-TW", "Asia/Taipei", catalog, cap=5).text
        text_en = message([alert], "en", "Asia/Taipei", catalog, cap=5).text
        assert zh in text_zh and en in text_en
        assert "0 天" not in text_zh and "0 day(s)" not in text_en


def test_run_once_prints_what_each_channel_was_sent(tmp_path: Path, sqlite_url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(sqlite_url) as store:
        store.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "a:443", "critical"),
                                        finding("tls.cert.expired", "b:443", "high"),
                                        finding("tls.cert.expired", "c:443", "low"))]))
    with http_sink() as everything, http_sink() as serious:
        cfg = write_config(tmp_path, [everything.url()])
        cfg.write_text(cfg.read_text().replace("[[assets]]", f'[[notify]]\nurl = "{serious.url()}"\n'
                                                             'min_severity = "high"\n\n[[assets]]', 1))
        code, out, err = cli(capsys, cfg, sqlite_url, T0 + DAY, "run", "--once")
        assert code == 0, err
        sent = dict(re.findall(r"^  sent (\d+) alert\(s\) to (\S+)$", out, flags=re.M)[i][::-1] for i in range(2))
        (to_all,) = everything.messages()
        (to_serious,) = serious.messages()
        assert sent[everything.url().rstrip("/")] == "3" and "3 項" in to_all["title"]
        assert sent[serious.url().rstrip("/")] == "2" and "2 項" in to_serious["title"]
        assert "alert condition" not in out
