"""Channels, grouped alerts, retries and the digest's timing, through real Apprise into local sinks."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.notify.alerts import Alert, AlertKind, cadence_slipping, message
from agent.notify.channels import Format, describe, scrub
from agent.tracking.remediation import AssetCadence
from probes.catalog import load_catalog
from schedules.remediation import cadence
from state import deliveries
from state.delivery_views import DeliveryState
from state.store import Store
from tests.state.factory import T0, finding, run, scan
from tests.support.servers import closed_port
from tests.support.sinks import http_sink

SECRET = "Tok3nSecretValue"
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("url", "label", "secrets", "fmt"),
    [
        (f"json://bob:{SECRET}@127.0.0.1:8099/", "json://127.0.0.1:8099", {SECRET}, Format.TEXT),
        (f"mailto://alice:{SECRET}@127.0.0.1:2525?from=a@b.test&to=soc@b.test",
         "mailto://127.0.0.1:2525", {SECRET}, Format.HTML),
        (f"discord://1234567890/{SECRET}", "discord://****", {SECRET, "1234567890"}, Format.TEXT),
        (f"nosuchservice://{SECRET}@somewhere/", "nosuchservice://****", {SECRET}, None),
        # Apprise's privacy rendering shows these "hosts", but an ntfy topic is its password on ntfy.sh
        # and a LaMetric cloud app id is a token: a host is shown only with a dot, as localhost or an IP.
        (f"ntfy://{SECRET}", "ntfy://****", {SECRET, SECRET.lower()}, Format.TEXT),
        (f"ntfys://{SECRET}", "ntfys://****", {SECRET, SECRET.lower()}, Format.TEXT),
        (f"ntfy://ntfy.example.test/{SECRET}", "ntfy://ntfy.example.test", {SECRET}, Format.TEXT),
        (f"lametric://AppToken1234@{SECRET}", "lametric://****", {SECRET, "AppToken1234"}, Format.TEXT),
        (f"lametric://{SECRET}@192.0.2.7", "lametric://192.0.2.7", {SECRET}, Format.TEXT),
        (f"json://host.example/path/{SECRET}", "json://host.example", {SECRET}, Format.TEXT),
        (f"json://localhost:8099/{SECRET}", "json://localhost:8099", {SECRET}, Format.TEXT),
    ],
)
def test_channels_are_shown_masked(url: str, label: str | None, secrets: set[str], fmt: Format | None) -> None:
    shown, hidden, native = describe(url)  # no network: Apprise only parses the URL
    if label is not None:
        assert shown == label
    assert SECRET not in shown and secrets <= hidden and native == fmt
    assert scrub(f"POST {url} failed", hidden).count(SECRET) == 0


def test_scrub_replaces_longest_first() -> None:
    assert scrub("a token abcdef and abc", {"abc", "abcdef"}) == "a token **** and ****"


def _alerts(n: int) -> list[Alert]:
    out = [Alert(AlertKind.NEW_FINDING, f"new:{i}:0", "www", "high" if i % 2 else "critical", "tls.cert.expired",
                 {"finding_id": i, "key": f"h{i}:443"}) for i in range(n)]
    out.append(Alert(AlertKind.CADENCE_OVERDUE, "cadence:www:overdue:x", "www", "high", "cadence.scan_overdue",
                     {"due": "2026-01-01T00:00:00+00:00", "days_left": -9, "last_complete": None}))
    return out


def test_one_grouped_message_with_a_cap() -> None:
    catalog = load_catalog()
    zh = message(_alerts(25), "zh-TW", "Asia/Taipei", catalog, cap=20)
    assert zh.title == "posture 警示：26 項需要處理" and zh.kind == "failure"
    lines = zh.text.splitlines()
    assert lines[0] == "弱點掃描週期（1）" and "每半年弱點掃描已逾期" in lines[1] and "已逾期 9 天" in lines[1]
    assert "新發現弱點（25）" in lines and sum(ln.startswith("- [") for ln in lines) == 19
    assert lines[-1].startswith("…另有 6 項未列出")
    assert lines.index("新發現弱點（25）") < len(lines) - 1 and "[嚴重]" in zh.text  # critical listed first
    en = message(_alerts(2), "en", "Asia/Taipei", catalog, cap=20)
    assert en.title == "posture alert: 3 item(s) need attention" and "more" not in en.text
    assert "TLS certificate has expired (tls.cert.expired) h1:443 #1" in en.text
    assert "\\_" in en.markdown or "_" not in en.text  # Markdown keeps check ids literal


def write_config(tmp_path: Path, notify: list[str], extra: str = "") -> Path:
    cfg = tmp_path / "posture.toml"
    blocks = "".join(f'[[notify]]\nurl = "{u}"\n\n' for u in notify)
    cfg.write_text(
        '[agent]\nresolver = "127.0.0.1:9"\n\n'  # never the machine's resolver, should anything resolve
        f'[schedule]\nscan_every = "365d"\ndigest = "off"\n{extra}\n'
        f'{blocks}[[assets]]\nname = "www"\nurl = "https://www.broker.test/"\n'
    )
    return cfg


def cli(capsys: pytest.CaptureFixture[str], cfg: Path, db: str, at: datetime, *args: str) -> tuple[int, str, str]:
    code = main(["--config", str(cfg), "--db", db, "--now", at.isoformat(), *args])
    out, err = capsys.readouterr()
    return code, out, err


def seed(db: str) -> int:
    with Store.open(db) as store:
        stored = store.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "www.broker.test:443",
                                                                "critical"))]))
        return stored.opened[0]


def test_failed_delivery_is_retried_with_backoff_and_delivered_once(
        tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fid = seed(store_url)
    with http_sink(fail_first=2) as sink:
        cfg = write_config(tmp_path, [sink.url("json", f"bob:{SECRET}")])
        t = T0 + timedelta(hours=1)
        outputs = []
        schedule = [(t, 1), (t + 30 * SECOND, 1), (t + 61 * SECOND, 2), (t + 150 * SECOND, 2),
                    (t + 182 * SECOND, 3), (t + DAY, 3)]
        for at, posts in schedule:
            code, out, err = cli(capsys, cfg, store_url, at, "run", "--once", "--format", "json")
            assert code == 0, err
            outputs.append(out + err)
            assert len(sink.posts) == posts, (at - t, [p.status for p in sink.posts])
        assert [p.status for p in sink.posts] == [500, 500, 200]
        (delivered,) = sink.messages()
        assert delivered["title"] == "posture 警示：1 項需要處理" and f"#{fid}" in delivered["message"]
        first = json.loads(outputs[0].split("\nposture:")[0])
        (attempt,) = first["deliveries"]
        retry_at = datetime.fromisoformat(attempt["retry_at"])
        assert not attempt["ok"] and timedelta(0) <= retry_at - (t + MINUTE) < 5 * SECOND  # the cycle's clock runs
        assert attempt["channel"].startswith("json://127.0.0.1:") and "500" in attempt["error"]
        assert "failed" in outputs[0] and "retry after" in outputs[0]
    with Store.open(store_url) as store:
        (row,) = deliveries.deliveries(store)
    assert row.state == DeliveryState.SENT and row.attempts == 3 and row.condition == f"new:{fid}:0"
    assert row.sent_at is not None and timedelta(0) <= row.sent_at - (t + 182 * SECOND) < 5 * SECOND
    assert SECRET not in row.channel_label
    assert SECRET not in "".join(outputs) + caplog.text


def test_overdue_replaces_a_warning_not_yet_delivered(tmp_path: Path, sqlite_url: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(sqlite_url) as store:
        store.record_scan(scan(T0, [run("tls")]))  # a complete scan: cadence counts from here
    with http_sink(fail_first=1) as sink:
        cfg = write_config(tmp_path, [sink.url()])
        code, out, _ = cli(capsys, cfg, sqlite_url, T0 + 175 * DAY, "run", "--once", "--format", "json")
        assert code == 0 and [d["ok"] for d in json.loads(out)["deliveries"]] == [False]
        code, out, _ = cli(capsys, cfg, sqlite_url, T0 + 190 * DAY, "run", "--once", "--format", "json")
        doc = json.loads(out)
        assert doc["alerts_superseded"] == 1 and [d["items"] for d in doc["deliveries"]] == [1]
        (msg,) = sink.messages()
        assert "每半年弱點掃描已逾期" in msg["message"] and "將於" not in msg["message"]
        for day in (191, 200):  # nothing new: the overdue condition was sent once
            cli(capsys, cfg, sqlite_url, T0 + day * DAY, "run", "--once")
        assert len(sink.messages()) == 1
    with Store.open(sqlite_url) as store:
        states = {d.condition.split(":")[2]: d.state for d in deliveries.deliveries(store)}
    assert states == {"warning": DeliveryState.SUPERSEDED, "overdue": DeliveryState.SENT}


def test_the_digest_goes_once_per_firing_and_once_after_downtime(tmp_path: Path, sqlite_url: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(sqlite_url) as store:
        store.record_scan(scan(T0, [run("tls")]))
    monday = T0 + 7 * DAY  # T0 is Monday 09:00 Asia/Taipei
    with http_sink() as sink:
        cfg = write_config(tmp_path, [f"{sink.url()}"], extra="")
        cfg.write_text(cfg.read_text().replace('digest = "off"', 'digest = "weekly"')
                       .replace(f'url = "{sink.url()}"', f'url = "{sink.url()}"\nevents = ["digest"]'))
        steps = [(monday - MINUTE, 1), (monday + 30 * MINUTE, 2), (monday + 2 * DAY, 2),
                 (monday + 7 * DAY + MINUTE, 3), (monday + 35 * DAY, 4), (monday + 36 * DAY, 4)]
        firings = []
        for at, count in steps:
            code, out, err = cli(capsys, cfg, sqlite_url, at, "run", "--once", "--format", "json")
            assert code == 0, err
            firings.append(json.loads(out)["digest_firing"])
            assert len(sink.messages()) == count, at
        assert firings[:2] == [(monday - 7 * DAY).isoformat(), monday.isoformat()]
        assert firings[4] == (monday + 35 * DAY - timedelta(hours=0)).isoformat()  # the latest missed firing only
        assert all(m["title"].startswith("posture 每週摘要") for m in sink.messages())
        # A quiet week: the asset is counted in the summary, not listed with a column of "none".
        quiet = sink.messages()[1]["message"]
        assert "共 1 項資產：0 項有事項列於下方，其餘 1 項本週無變動、無待辦" in quiet and "== www" not in quiet
        assert len(quiet.splitlines()) <= 8


def test_notify_test_names_the_failing_channel(tmp_path: Path, sqlite_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    dead = closed_port()
    with http_sink() as sink:
        cfg = write_config(tmp_path, [sink.url("json", f"ops:{SECRET}"), f"json://ops:{SECRET}@127.0.0.1:{dead}/"])
        code, out, err = cli(capsys, cfg, sqlite_url, T0, "notify", "test")
        assert code == 1
        lines = out.splitlines()
        assert lines[0].startswith("notify[0] json://127.0.0.1:") and ": ok; receives " in lines[0]
        assert lines[0].endswith("receives alerts (every new finding, missed deadlines and scan cadence); "
                                 "the weekly digest (only on posture digest --send: [schedule] digest is \"off\")")
        assert lines[1].startswith(f"notify[1] json://127.0.0.1:{dead}: FAILED")
        assert "1 of 2 channel(s) failed" in err and SECRET not in out + err
        (msg,) = sink.messages()
        assert msg["title"] == "posture 測試通知"
        code, out, _ = cli(capsys, write_config(tmp_path, [sink.url()]), sqlite_url, T0, "notify", "test",
                           "--format", "json")
        assert code == 0 and json.loads(out)["channels"][0]["ok"] is True


def test_notify_test_says_which_events_each_channel_receives(tmp_path: Path, sqlite_url: str,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    with http_sink() as alerts, http_sink() as digests:
        cfg = write_config(tmp_path, [])
        cfg.write_text(cfg.read_text().replace('digest = "off"', 'digest = "weekly"') + (
            f'\n[[notify]]\nurl = "{alerts.url()}"\nevents = ["alert"]\nmin_severity = "high"\nlanguage = "en"\n'
            f'\n[[notify]]\nurl = "{digests.url()}"\nevents = ["digest"]\n'))
        code, out, err = cli(capsys, cfg, sqlite_url, T0, "notify", "test", "--format", "json")
        assert code == 0, err
        first, second = json.loads(out)["channels"]
        assert first["events"] == ["alert"] and first["min_severity"] == "high"
        assert first["receives"] == ("alerts (new findings of high severity or above, every missed deadline and "
                                     "scan cadence)")
        assert second["events"] == ["digest"] and second["receives"] == "the weekly digest (schedule weekly)"
        (to_alerts,) = alerts.messages()
        (to_digests,) = digests.messages()
        # Each channel's own message says what it will get, in its language.
        assert "This channel receives: alerts (new findings of high severity or above" in to_alerts["message"]
        assert "digest" not in to_alerts["message"]
        assert "此通道會收到：每週摘要（排程 weekly）" in to_digests["message"] and "警示" not in to_digests["message"]


def test_no_channels_is_bad_input(tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, write_config(tmp_path, []), sqlite_url, T0, "notify", "test")
    assert code == 2 and "no [[notify]] channels" in err


def test_posture_scan_alerts_configured_assets_only(tmp_path: Path, sqlite_url: str) -> None:
    from agent.notify.dispatch import alert_new_findings
    from agent.scanning.options import ScanOutcome
    from agent.session import Session
    from agent.targets import AssetSpec, parse_target_url

    with Store.open(sqlite_url) as store:
        stored = store.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "h:443", "critical"))]))
    with http_sink() as sink:
        cfg = write_config(tmp_path, [sink.url()])
        args: Any = type("Args", (), {"config": str(cfg), "db": sqlite_url, "now": None})()
        session = Session.from_args(args)
        spec = AssetSpec("www", parse_target_url("https://www.broker.test/"))
        record = scan(T0, [])
        adhoc = ScanOutcome(AssetSpec("www", spec.url, configured=False), record, [], stored=stored)
        assert alert_new_findings(session, [adhoc], T0) == [] and sink.posts == []
        (sent,) = alert_new_findings(session, [ScanOutcome(spec, record, [], stored=stored)], T0)
        assert sent.ok and sent.items == 1 and len(sink.messages()) == 1


@pytest.mark.parametrize(
    ("days", "kind"), [(100, None), (170, AlertKind.CADENCE_WARNING), (183, AlertKind.CADENCE_OVERDUE),
                       (400, AlertKind.CADENCE_OVERDUE)],
)
def test_only_the_worst_cadence_state_alerts(days: int, kind: AlertKind | None) -> None:
    """Overdue replaces the warning; an asset within its cadence raises nothing (was schedules.due.cadence_alert)."""
    c = cadence(T0, T0, T0 + timedelta(days=days))
    alert = cadence_slipping(AssetCadence("www", c, T0, None))
    assert (alert.kind if alert is not None else None) is kind
