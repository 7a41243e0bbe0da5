"""People's commands of remediation tracking: decisions, overdue, third-party scans, history, prune."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.config import parse_config
from agent.errors import ConfigError, UsageError
from agent.when import before, parse_when
from state.store import Store
from tests.state.factory import BROKER_ASSETS, T0, TRADE, finding, run, scan

DAY = timedelta(days=1)
CONFIG = """
[agent]
resolver = "127.0.0.1:9"

[schedule]
scan_every = "365d"
digest = "off"

[remediation]
high = 30

[remediation.kinds.trading]
high = 14
""" + BROKER_ASSETS


@pytest.fixture
def env(tmp_path: Path, store_url: str) -> dict[str, Any]:
    return make_env(tmp_path, store_url)


@pytest.fixture
def env_sqlite(tmp_path: Path, sqlite_url: str) -> dict[str, Any]:
    return make_env(tmp_path, sqlite_url)


def make_env(tmp_path: Path, store_url: str) -> dict[str, Any]:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(CONFIG)
    with Store.open(store_url) as store:
        a = store.record_scan(scan(T0, [run("tls", finding("tls.cert.untrusted", "www:443"),
                                            finding("tls.cert.expiring_soon", "www:443", "medium"))]))
        b = store.record_scan(scan(T0, [run("tls", finding("tls.cert.weak_key", "order:9443"))], asset=TRADE))
    ids = {"untrusted": a.finding_ids[("tls.cert.untrusted", "www:443")],
           "expiring": a.finding_ids[("tls.cert.expiring_soon", "www:443")],
           "weak": b.finding_ids[("tls.cert.weak_key", "order:9443")]}
    return {"cfg": cfg, "db": store_url, "ids": ids, "dir": tmp_path}


def cli(env: dict[str, Any], capsys: pytest.CaptureFixture[str], at: datetime, *args: str) -> tuple[int, str, str]:
    try:
        code = main(["--config", str(env["cfg"]), "--db", env["db"], "--now", at.isoformat(), *args])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def findings(env: dict[str, Any], capsys: pytest.CaptureFixture[str], at: datetime, *args: str) -> dict[int, Any]:
    code, out, err = cli(env, capsys, at, "findings", "--format", "json", *args)
    assert code == 0, err
    return {f["id"]: f for f in json.loads(out)["findings"]}


def test_deadlines_per_severity_and_kind_and_overdue(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    ids = env["ids"]
    listed = findings(env, capsys, T0 + 20 * DAY)
    seen = T0 + timedelta(seconds=30)
    assert listed[ids["untrusted"]]["deadline"] == (seen + 30 * DAY).isoformat().replace("+00:00", "Z")
    assert listed[ids["weak"]]["deadline"] == (seen + 14 * DAY).isoformat().replace("+00:00", "Z")  # trading
    assert listed[ids["expiring"]]["deadline"].startswith((seen + 90 * DAY).date().isoformat())
    assert set(findings(env, capsys, T0 + 20 * DAY, "--overdue")) == {ids["weak"]}
    assert set(findings(env, capsys, T0 + 31 * DAY, "--overdue")) == {ids["weak"], ids["untrusted"]}
    code, out, _ = cli(env, capsys, T0 + 31 * DAY, "findings", "--overdue")
    assert code == 0 and "OVERDUE" in out and "2 finding(s) (open, overdue)" in out


def test_accept_and_false_positive(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    ids = env["ids"]
    code, out, err = cli(env, capsys, T0 + DAY, "findings", "accept", str(ids["untrusted"]), "--reason",
                         "替換憑證採購中", "--until", "2025-03-20", "--by", "ciso")
    assert code == 0, err
    assert f"finding #{ids['untrusted']}" in out and "accepted until 2025-03-20 by ciso" in out
    accepted = findings(env, capsys, T0 + 2 * DAY, "--status", "accepted")[ids["untrusted"]]
    # The date as entered; the instant it lapses (the end of that day in Asia/Taipei) beside it.
    assert accepted["accepted"] == {"reason": "替換憑證採購中", "by": "ciso", "until": "2025-03-20",
                                    "ends_at": "2025-03-20T16:00:00Z"}
    assert ids["untrusted"] not in findings(env, capsys, T0 + 10 * DAY, "--overdue")
    # The acceptance ended on 20 March: open again, and past its deadline (T0 + 30 days) by T0 + 40.
    assert ids["untrusted"] in findings(env, capsys, T0 + 40 * DAY, "--overdue")
    code, _, err = cli(env, capsys, T0 + DAY, "findings", "false-positive", str(ids["expiring"]), "--reason",
                       "the certificate was renewed, the scan saw a stale node")
    assert code == 0, err
    fp = findings(env, capsys, T0 + 2 * DAY, "--status", "false_positive")[ids["expiring"]]
    assert fp["false_positive"]["by"]  # defaults to the user running posture
    # run --once lets the acceptance lapse when its end has passed.
    code, out, err = cli(env, capsys, T0 + 20 * DAY, "run", "--once", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["acceptances_expired"] == [ids["untrusted"]]
    assert findings(env, capsys, T0 + 20 * DAY)[ids["untrusted"]]["state"] == "open"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["findings", "accept", "9999", "--reason", "r", "--until", "2026-01-01"], "no finding with id 9999"),
        (["findings", "accept", "{untrusted}", "--reason", "r", "--until", "2025-03-01"], "must end after"),
        (["findings", "accept", "{untrusted}", "--reason", "  ", "--until", "2026-01-01"], "reason"),
        (["findings", "accept", "{untrusted}", "--until", "2026-01-01"], "--reason"),
        (["findings", "accept", "{untrusted}", "--reason", "r", "--until", "soon"], "--until"),
        (["findings", "false-positive", "x", "--reason", "r"], "'x' is not an id"),
        # Odd but valid-looking input (issue 14): one line naming the value, never an internal error.
        (["findings", "accept", "99999999999999999999", "--reason", "r", "--until", "2026-01-01"],
         "'99999999999999999999' is not an id"),
        (["findings", "false-positive", "0", "--reason", "r"], "'0' is not an id"),
        (["findings", "accept", "{untrusted}", "--reason", "r", "--until", "9999-12-31"],
         "--until '9999-12-31' is out of range"),
        (["findings", "accept", "{untrusted}", "--reason", "r", "--until", "9999-12-31T23:59:59+14:00"],
         "--until '9999-12-31T23:59:59+14:00' is out of range"),
        (["report", "--from", "0001-01-01"], "--from '0001-01-01' is out of range"),
        (["report", "--from", "2025-01-01", "--to", "9999-12-31"], "--to '9999-12-31' is out of range"),
        (["history", "www", "--since", "0001-01-01"], "--since '0001-01-01' is out of range"),
        (["history", "www", "--until", "9999-12-31"], "--until '9999-12-31' is out of range"),
        (["record-scan", "www", "--date", "0001-01-01", "--by", "x", "--evidence", "{report}"],
         "--date '0001-01-01' is out of range"),
        (["prune", "--older-than", "99999y"], "--older-than '99999y' is out of range"),
        (["prune", "--older-than", "9999999999w"], "--older-than '9999999999w' is out of range"),
        (["findings", "frobnicate"], "invalid choice"),
        (["prune", "--older-than", "1y"], "younger than 3 years"),
        (["prune", "--older-than", "forever"], "--older-than"),
        (["history", "nowhere"], "no asset named 'nowhere'"),
        (["record-scan", "www", "--date", "2025-03-01", "--by", "x", "--evidence", "/nonexistent.pdf"],
         "--evidence"),
        (["record-scan", "www", "--date", "2099-01-01", "--by", "x", "--evidence", "{report}"], "future"),
        (["record-scan", "nope", "--date", "2025-03-01", "--by", "x", "--evidence", "{report}"], "no asset"),
    ],
)
def test_bad_input_exits_2_with_one_line(env_sqlite: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                         args: list[str], fragment: str) -> None:
    env = env_sqlite
    report = env["dir"] / "report.pdf"
    report.write_bytes(b"%PDF")
    filled = [a.format(untrusted=env["ids"]["untrusted"], report=report) for a in args]
    code, _, err = cli(env, capsys, T0 + DAY, *filled)
    assert code == 2, err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_third_party_scan_counts_for_cadence(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    report = env["dir"] / "半年弱掃報告.pdf"
    data = b"%PDF-1.7\n" + bytes(range(256)) * 64
    report.write_bytes(data)
    at = T0 + 170 * DAY
    code, out, err = cli(env, capsys, at, "record-scan", "https://www.broker.test/", "--date", "2025-08-15",
                         "--by", "ACME 資安顧問", "--evidence", str(report), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["asset"] == "www" and doc["sha256"] == hashlib.sha256(data).hexdigest() and doc["size"] == len(data)
    assert doc["performed_at"] == "2025-08-15"  # as entered
    assert doc["performed_instant"] == "2025-08-14T16:00:00Z"  # midnight in Asia/Taipei
    code, out, _ = cli(env, capsys, T0 + 190 * DAY, "digest", "--format", "json")
    cad = {a["asset"]: a["cadence"] for a in json.loads(out)["assets"]}
    assert cad["www"]["state"] == "ok" and cad["www"]["last_third_party_scan"] == "2025-08-15"
    assert cad["trade"]["state"] == "overdue"
    code, out, _ = cli(env, capsys, T0 + 190 * DAY, "history", "www")
    assert code == 0 and "third-party scan by ACME 資安顧問: 半年弱掃報告.pdf" in out
    from state.external_scans import evidence, scans

    with Store.open(env["db"]) as store:
        (kept,) = scans(store, "www")
        assert evidence(store, kept.id) == ("半年弱掃報告.pdf", data)


def test_history_replays_scans_and_events(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open(env["db"]) as store:
        store.record_scan(scan(T0 + 7 * DAY, [run("tls", finding("tls.cert.expiring_soon", "www:443", "medium"))]))
    code, out, err = cli(env, capsys, T0 + 8 * DAY, "history", "www", "--format", "json")
    assert code == 0, err
    timeline = json.loads(out)["history"]
    assert [(e["type"], e.get("event")) for e in timeline] == [
        ("scan", None), ("event", "opened"), ("event", "opened"), ("scan", None), ("event", "fixed")]
    code, out, _ = cli(env, capsys, T0 + 8 * DAY, "history", "www", "--since", "2025-03-05")
    assert code == 0 and out.count("scan #") == 1 and "fixed" in out and "open -> fixed" in out


def test_prune_keeps_three_years_unless_forced(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    later = T0 + 400 * DAY
    code, out, _ = cli(env, capsys, later, "prune", "--older-than", "3y", "--format", "json")
    assert code == 0 and json.loads(out)["deleted"]["scans"] == 0
    code, out, err = cli(env, capsys, later, "prune", "--older-than", "1y", "--force", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["deleted"]["scans"] == 2 and json.loads(out)["forced"] is True
    assert len(findings(env, capsys, later, "--status", "all")) == 3  # findings and their events stay


def test_quiet_hours_hold_scheduled_scans(sqlite_url: str) -> None:
    from agent.scheduling.scan_jobs import ScanPlanner

    cfg = parse_config(CONFIG.replace('scan_every = "365d"', 'scan_every = "7d"'))
    monday_1000 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # trading hours in Taipei
    planner = ScanPlanner(cfg)
    added = dict.fromkeys(("www", "trade"), monday_1000)

    def plan(now: datetime) -> tuple[list[str], list[tuple[str, datetime, str]]]:
        plans = planner.plan({}, {}, added, now)
        waits = [w for p in plans if (w := p.waiting(now)) is not None]
        return [p.spec.name for p in plans if p.start.at <= now], [(w.asset, w.until, w.reason) for w in waits]

    assert plan(monday_1000) == (["www"], [("trade", datetime(2025, 3, 3, 6, 0, tzinfo=UTC), "quiet window")])
    assert plan(monday_1000 + timedelta(hours=5)) == (["www", "trade"], [])


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ('[schedule]\nscan_every = "7x"', "schedule.scan_every"),
        ('[schedule]\ndigest = "12h"', "schedule.digest"),
        ('[schedule]\njitter = "soon"', "schedule.jitter"),
        ('[[notify]]\nurl = "not a url"', "notify[0].url"),
        ('[[notify]]\nurl = "json://h/"\nevents = ["pager"]', "notify[0].events"),
        ('[[notify]]\nurl = "json://h/"\nmin_severity = "urgent"', "notify[0].min_severity"),
        ('[[notify]]\nurl = "json://h/"\nlanguage = "fr"', "notify[0].language"),
        ("[remediation]\nhigh = -1", "remediation.high"),
        ('[remediation.kinds.bank]\nhigh = 3', "remediation.kinds"),
        ('[[assets]]\nurl = "https://a.test/"\nquiet = ["mon-fri 25:00-26:00"]', "assets[0].quiet"),
    ],
)
def test_bad_config_names_the_key(toml: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        parse_config(toml)


def test_config_formats_users_rely_on() -> None:
    cfg = parse_config(
        '[schedule]\nscan_every = "0 3 * * 6"\ncadence_days = 183\ncadence_warn_days = 14\ndigest = "0 9 * * 1"\n'
        '[remediation]\ncritical = 7\nhigh = 30\nmedium = 90\nlow = 180\n'
        '[[notify]]\nurl = "json://127.0.0.1:8099/"\nevents = ["alert", "digest"]\nmin_severity = "high"\n'
        'language = "zh-TW"\n'
    )
    assert cfg.notify[0].min_severity == "high" and cfg.schedule.digest == "0 9 * * 1"


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-06-30", False, datetime(2026, 6, 29, 16, 0, tzinfo=UTC)),
        ("2026-06-30", True, datetime(2026, 6, 30, 16, 0, tzinfo=UTC)),
        ("2026-06-30T12:00", True, datetime(2026, 6, 30, 4, 0, tzinfo=UTC)),
        ("2026-06-30T12:00Z", False, datetime(2026, 6, 30, 12, 0, tzinfo=UTC)),
    ],
)
def test_dates_people_type(text: str, end: bool, expected: datetime) -> None:
    assert parse_when(text, "Asia/Taipei", "--until", end_of_day=end) == expected


def test_ages() -> None:
    now = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert before(now, "3y", "--older-than") == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)
    assert before(now, "2w", "--older-than") == now - timedelta(weeks=2)
    with pytest.raises(UsageError):
        before(now, "0d", "--older-than")


def test_a_reopened_finding_keeps_its_deadline_unless_configured(env: dict[str, Any],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fid = env["ids"]["untrusted"]
    with Store.open(env["db"]) as store:
        store.record_scan(scan(T0 + 5 * DAY, [run("tls")]))  # fixed
        store.record_scan(scan(T0 + 40 * DAY, [run("tls", finding("tls.cert.untrusted", "www:443"))]))  # back
    kept = findings(env, capsys, T0 + 41 * DAY)[fid]
    assert kept["state"] == "reopened" and kept["overdue"] is True
    assert kept["deadline"].startswith((T0 + 30 * DAY).date().isoformat())
    env["cfg"].write_text(CONFIG.replace("high = 30\n", "high = 30\nreopened_keeps_deadline = false\n", 1))
    restarted = findings(env, capsys, T0 + 41 * DAY)[fid]
    assert restarted["overdue"] is False
    assert restarted["deadline"] == (T0 + 70 * DAY + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
