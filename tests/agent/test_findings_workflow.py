"""Issue 15, the findings workflow: show, reopen, filters, ad-hoc URLs apart, decisions in history.

Storage matters here, so every test runs on SQLite and PostgreSQL (``store_url``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from state.records import AssetRecord
from state.store import Store
from tests.state.factory import BROKER_CONFIG, T0, TRADE, finding, run, scan

DAY = timedelta(days=1)
ADHOC = AssetRecord(name="https://adhoc.test/", url="https://adhoc.test/", kind="website", configured=False)
CONFIG = BROKER_CONFIG


@pytest.fixture
def env(tmp_path: Path, store_url: str) -> dict[str, Any]:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(CONFIG)
    with Store.open(store_url) as store:
        a = store.record_scan(scan(T0, [run("tls", finding("tls.cert.untrusted", "www:443", subject="CN=www"),
                                            finding("tls.cert.expiring_soon", "www:443", "medium"))]))
        b = store.record_scan(scan(T0, [run("tls", finding("tls.cert.weak_key", "order:9443", "low"))],
                                   asset=TRADE))
        c = store.record_scan(scan(T0, [run("tls", finding("tls.cert.untrusted", "adhoc:443"))], asset=ADHOC))
    ids = {"untrusted": a.finding_ids[("tls.cert.untrusted", "www:443")],
           "expiring": a.finding_ids[("tls.cert.expiring_soon", "www:443")],
           "weak": b.finding_ids[("tls.cert.weak_key", "order:9443")],
           "adhoc": c.finding_ids[("tls.cert.untrusted", "adhoc:443")]}
    return {"cfg": cfg, "db": store_url, "ids": ids}


def cli(env: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str,
        at: datetime = T0 + DAY) -> tuple[int, str, str]:
    try:
        code = main(["--config", str(env["cfg"]), "--db", env["db"], "--now", at.isoformat(), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def listed(env: dict[str, Any], capsys: pytest.CaptureFixture[str], *args: str) -> set[int]:
    code, out, err = cli(env, capsys, "findings", "--format", "json", *args)
    assert code == 0, err
    return {f["id"] for f in json.loads(out)["findings"]}


def test_ad_hoc_urls_stay_apart_unless_asked(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    ids = env["ids"]
    assert listed(env, capsys) == {ids["untrusted"], ids["expiring"], ids["weak"]}
    assert listed(env, capsys, "--ad-hoc") == set(ids.values())
    # naming the ad-hoc asset is asking for it
    assert listed(env, capsys, "--asset", "https://adhoc.test/") == {ids["adhoc"]}
    code, out, _ = cli(env, capsys, "findings")
    assert code == 0
    assert "adhoc" not in out and "3 finding(s)" in out


def test_filters(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    ids = env["ids"]
    assert listed(env, capsys, "--severity", "high") == {ids["untrusted"]}  # at or above
    assert listed(env, capsys, "--severity", "medium") == {ids["untrusted"], ids["expiring"]}
    assert listed(env, capsys, "--severity", "info") == {ids["untrusted"], ids["expiring"], ids["weak"]}
    assert listed(env, capsys, "--asset", "trade") == {ids["weak"]}
    assert listed(env, capsys, "--asset", "tls://ORDER.broker.test:9443") == {ids["weak"]}
    assert listed(env, capsys, "--check", "tls.cert.expiring_soon") == {ids["expiring"]}
    assert listed(env, capsys, "--check", "tls.cert.untrusted", "--ad-hoc") == {ids["untrusted"], ids["adhoc"]}
    assert listed(env, capsys, "--check", "tls.cert.untrusted", "--severity", "critical") == set()
    assert listed(env, capsys, "--check", "tls.cert") == {ids["untrusted"], ids["expiring"], ids["weak"]}
    assert listed(env, capsys, "--check", "http") == set()  # a family with no findings here


@pytest.mark.parametrize("args, says", [
    (("--asset", "nosuch"), "no asset named 'nosuch'"),
    (("--severity", "severe"), "invalid choice"),
    (("--check", "tls.nosuch"), "unknown check 'tls.nosuch'"),
    (("--check", "tls.cert.untruste"), "unknown check 'tls.cert.untruste'"),
])
def test_bad_filters_are_exit_2(env: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                args: tuple[str, ...], says: str) -> None:
    code, out, err = cli(env, capsys, "findings", *args)
    assert code == 2 and says in err and "Traceback" not in err and out == ""


def test_reopen_undoes_acceptance_and_false_positive(env: dict[str, Any],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    fid = env["ids"]["untrusted"]
    code, _, err = cli(env, capsys, "findings", "accept", str(fid), "--reason", "vendor fix in Q2",
                       "--until", "2025-06-30", "--by", "alice")
    assert code == 0, err
    assert fid not in listed(env, capsys)
    code, out, err = cli(env, capsys, "findings", "reopen", str(fid), "--reason", "auditor disagreed",
                         "--by", "bob", at=T0 + 2 * DAY)
    assert code == 0, err
    assert "acceptance undone by bob" in out and "now open" in out
    assert fid in listed(env, capsys)
    code, out, err = cli(env, capsys, "findings", "false-positive", str(fid), "--reason", "internal CA",
                         "--by", "carol", at=T0 + 3 * DAY)
    assert code == 0, err
    assert fid not in listed(env, capsys)
    code, out, err = cli(env, capsys, "findings", "reopen", str(fid), "--reason", "it is public",
                         "--by", "dave", at=T0 + 4 * DAY)
    assert code == 0 and "false-positive mark undone by dave" in out
    code, out, err = cli(env, capsys, "findings", "show", str(fid), "--format", "json")
    doc = json.loads(out)["finding"]
    assert json.loads(cli(env, capsys, "findings", "--format", "json", "show", str(fid))[1])["finding"] == doc
    assert doc["state"] == "open"
    decisions = [(h["event"], h["by"], h["reason"]) for h in doc["history"] if h["by"]]
    undone = "reopened_by_decision"
    assert decisions == [("accepted", "alice", "vendor fix in Q2"), (undone, "bob", "auditor disagreed"),
                         ("false_positive", "carol", "internal CA"), (undone, "dave", "it is public")]
    assert doc["reopened_count"] == 0  # undoing a decision is not the weakness coming back
    assert doc["history"][2]["detail"]["undid"] == "accepted"
    # an open finding has no decision to undo
    code, _, err = cli(env, capsys, "findings", "reopen", str(fid), "--reason", "again", "--by", "eve")
    assert code == 2 and "only an accepted finding or a false positive" in err
    code, _, err = cli(env, capsys, "findings", "reopen", "99999", "--reason", "x")
    assert code == 2 and "no finding with id 99999" in err


def test_reopen_of_a_fixed_finding_marked_false_positive_stays_fixed(
        env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fid = env["ids"]["weak"]
    with Store.open(env["db"]) as store:
        store.record_scan(scan(T0 + DAY, [run("tls")], asset=TRADE))  # gone: fixed
        assert store.finding(fid).state.value == "fixed"
    cli(env, capsys, "findings", "false-positive", str(fid), "--reason", "lab", "--by", "a", at=T0 + 2 * DAY)
    code, out, _ = cli(env, capsys, "findings", "reopen", str(fid), "--reason", "r", "--by", "b", at=T0 + 3 * DAY)
    assert code == 0 and "now fixed" in out  # no scan saw it since: reopening does not invent an open weakness


def test_accepting_again_keeps_the_earlier_decision(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fid = env["ids"]["expiring"]
    cli(env, capsys, "findings", "accept", str(fid), "--reason", "first", "--until", "2025-04-30", "--by", "alice")
    cli(env, capsys, "findings", "accept", str(fid), "--reason", "second", "--until", "2025-05-31", "--by", "bob",
        at=T0 + 2 * DAY)
    code, out, _ = cli(env, capsys, "findings", "show", str(fid), "--format", "json")
    hist = json.loads(out)["finding"]["history"]
    accepted = [h for h in hist if h["event"] == "accepted"]
    assert [(h["by"], h["reason"], h["until"]) for h in accepted] == [
        ("alice", "first", "2025-04-30"), ("bob", "second", "2025-05-31")]
    assert accepted[1]["detail"]["replaces"]["by"] == "alice"
    code, out, _ = cli(env, capsys, "history", "www")
    assert code == 0
    lines = [line for line in out.splitlines() if "accepted" in line]
    assert len(lines) == 2
    assert "by alice" in lines[0] and "until 2025-04-30" in lines[0] and "first" in lines[0]
    assert "by bob" in lines[1] and "until 2025-05-31" in lines[1] and "second" in lines[1]


def test_show_text(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fid = env["ids"]["untrusted"]
    cli(env, capsys, "findings", "accept", str(fid), "--reason", "ok for now", "--until", "2025-04-30",
        "--by", "alice")
    code, out, err = cli(env, capsys, "findings", "show", str(fid))
    assert code == 0, err
    assert f"finding #{fid}" in out and "tls.cert.untrusted" in out
    assert "subject: CN=www" in out  # evidence
    assert "remediation:" in out and "deadline" in out
    assert "accepted by alice until 2025-04-30: ok for now" in out
    assert "opened" in out and "by alice; until 2025-04-30; reason: ok for now" in out
    code, out, _ = cli(env, capsys, "findings", "--status", "accepted")
    assert code == 0 and "until 2025-04-30 (by alice)" in out
    code, _, err = cli(env, capsys, "findings", "show", "424242")
    assert code == 2 and "no finding with id 424242" in err


@pytest.mark.parametrize("text", ["line1\nFAKE 2026-01-01 08:00 fixed #1", "evil\x1b[31mRED\x07", "tab\there",
                                  "rtl\u202eoverride"])
def test_decision_text_must_be_one_printable_line(env: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                                  text: str) -> None:
    """A newline would forge a history line, an escape would repaint a terminal: refused, exit 2."""
    fid = str(env["ids"]["untrusted"])
    for args in (["--reason", text, "--by", "ciso"], ["--reason", "ok", "--by", text]):
        code, _out, err = cli(env, capsys, "findings", "false-positive", fid, *args)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "one line of printable text" in err
    code, out, err = cli(env, capsys, "findings", "show", fid, "--format", "json")
    assert code == 0 and json.loads(out)["finding"]["state"] == "open", err  # nothing was recorded
