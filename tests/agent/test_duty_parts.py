"""Issue 19's edges: configured periods, record-scan as (one asset's part of) the scan duty, the default pack
directory, the calendar silent without [firm], a declaration never filed, and an alert
withdrawn when the duty is recorded before its delivery got through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import parse_config
from agent.errors import ConfigError
from agent.tracking.duties import months_for
from schedules.duties import DutyKind
from tests.agent.test_duty_story import Story, sums_verify
from tests.support.sinks import HttpSink, http_sink


def test_periods_default_by_tier_and_are_overridable() -> None:
    tier4 = parse_config("[firm]\ntier = 4\n")
    assert [months_for(tier4, k) for k in DutyKind] == [6, None, None, None, 12, 6]
    strict = parse_config("[firm]\ntier = 2\n[firm.periods]\npentest = 12\nhealth-check = 0\ndrill = 6\n")
    assert months_for(strict, DutyKind.PENTEST) == 12
    assert months_for(strict, DutyKind.HEALTH_CHECK) is None
    assert months_for(strict, DutyKind.DRILL) == 6
    assert parse_config("").firm is None and months_for(parse_config(""), DutyKind.PENTEST) == 24
    for bad in ("[firm]\ntier = 0\n", "[firm]\ntier = 5\n", "[firm.periods]\naudit = 6\n",
                "[firm.periods]\npentest = -1\n", "[firm]\nwarn_days = -1\n", "[firm]\nremind_days = 10\n",
                "[firm]\nname = \"a\\nb\"\n"):
        with pytest.raises(ConfigError):
            parse_config(bad)


def _config(path: Path, sink: HttpSink, extra: str = "") -> None:
    path.write_text(f"""
[agent]
timezone = "Asia/Taipei"
[schedule]
digest = "off"
{extra}
[[notify]]
url = "{sink.url('json')}"
language = "en"
events = ["alert"]
""", "utf-8")


def test_record_scan_is_the_scan_duty_and_packs_go_to_the_state_directory(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    report = tmp_path / "third party scan.html"
    report.write_bytes(b"<html>scan</html>")
    cfg = tmp_path / "posture.toml"
    with http_sink() as sink:
        # The asset is configured while its third-party scan is registered, then dropped: the
        # cycles below must not scan anything (no network here).
        _config(cfg, sink, '[firm]\ntier = 3\n[[assets]]\nname = "site"\nurl = "https://www.broker.test/"\n')
        s = Story(cfg, store_url, capsys, sink)
        s("2026-02-02", "record-scan", "site", "--date", "2026-02-01", "--by", "Scan Co",
          "--evidence", str(report))
        scan_duty = s.duties("2026-02-02")["scan"]
        assert (scan_duty["last_done"], scan_duty["held_back_by"]) == ("2026-02-01", "site")
        _config(cfg, sink, "[firm]\ntier = 3\n")
        # No asset configured any more: a scan of a system no longer configured covers none of them.
        assert s.duties("2026-02-02")["scan"]["last_done"] is None
        assert s.duties("2026-02-02")["health-check"]["state"] == "not_required"  # tier 3
        for kind in ("pentest", "drill", "ddos-drill"):
            s("2026-02-02", "duty", "record", kind, "--date", "2026-01-20", "--by", "x")
        s("2026-02-02", "duty", "record", "declaration", "--date", "2026-01-09", "--by", "x")
        assert s.cycle("2026-07-01") and (tmp_path / "state" / "packs" / "2026H1" / "SHA256SUMS").is_file()
        built = tmp_path / "state" / "packs" / "2026H1"
        sums_verify(built)
        records = json.loads((built / "duties.json").read_text("utf-8"))["records"]
        scan = next(r for r in records if r["kind"] == "scan")
        assert scan["source"] == "external_scan" and scan["date"] == "2026-02-01"
        assert (built / scan["file"]).read_bytes() == report.read_bytes()


def test_without_a_firm_section_the_calendar_is_silent(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    cfg = tmp_path / "posture.toml"
    with http_sink() as sink:
        _config(cfg, sink)
        s = Story(cfg, sqlite_url, capsys, sink)
        assert s.cycle("2026-07-01") == [] and s.cycle("2026-07-09") == []
        assert not (tmp_path / "state" / "packs").exists()
        assert s.duties("2026-07-01")["pentest"]["state"] == "never"  # listing still works


def test_an_unfiled_declaration_turns_overdue_once(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    with http_sink() as sink:
        _config(cfg, sink, f'[firm]\ntier = 2\npack_dir = "{tmp_path / "packs"}"\n')
        s = Story(cfg, store_url, capsys, sink)
        for kind in ("scan", "pentest", "drill", "health-check", "ddos-drill"):
            s("2026-06-20", "duty", "record", kind, "--date", "2026-06-19", "--by", "x")
        s("2026-06-20", "duty", "record", "declaration", "--date", "2026-01-05", "--by", "x")
        assert s.cycle("2026-06-20") == []
        assert len(s.cycle("2026-07-01")) == 1  # the pack is ready
        assert len(s.cycle("2026-07-08")) == 1  # the reminder
        late = s.cycle("2026-07-11")
        assert len(late) == 1 and "security declaration (declaration) is 1 day(s) overdue" in late[0], late
        assert s.cycle("2026-07-20") == []
        assert s.duties("2026-07-20")["declaration"]["state"] == "overdue"


def test_a_duty_recorded_before_its_warning_got_through_is_not_sent(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    with http_sink(fail_first=1000) as sink:
        _config(cfg, sink, f'[firm]\ntier = 2\npack_dir = "{tmp_path / "packs"}"\n')
        s = Story(cfg, sqlite_url, capsys, sink)
        for kind in ("scan", "pentest", "drill", "health-check"):
            s("2026-03-01", "duty", "record", kind, "--date", "2026-02-20", "--by", "x")
        s("2026-03-01", "duty", "record", "declaration", "--date", "2026-01-05", "--by", "x")
        s("2026-03-01", "duty", "record", "ddos-drill", "--date", "2025-03-20", "--by", "x")
        assert s.cycle("2026-03-01") == [] and len(sink.posts) == 1  # due soon: the send failed
        s("2026-03-02", "duty", "record", "ddos-drill", "--date", "2026-03-02", "--by", "x")
        sink.fail_first = 0
        assert s.cycle("2026-03-05") == []
        assert len(sink.posts) == 1  # withdrawn, not retried


def test_the_daemon_builds_and_announces_the_pack_on_1_july(tmp_path: Path) -> None:
    """``posture run`` itself (not --once): on 1 July it builds the 2026H1 pack, says so once, logs it."""
    from tests.agent.daemon_lab import Agent, wait_for

    db = f"sqlite:///{tmp_path / 'p.db'}"
    cfg = tmp_path / "posture.toml"
    with http_sink() as sink:
        _config(cfg, sink, f'[firm]\ntier = 2\npack_dir = "{tmp_path / "packs"}"\n')
        for kind in ("scan", "pentest", "drill", "health-check", "ddos-drill", "declaration"):
            assert main(["--config", str(cfg), "--db", db, "--now", "2026-06-20T10:00:00+08:00", "duty", "record",
                         kind, "--date", "2026-06-19", "--by", "x"]) == 0
        agent = Agent(tmp_path, cfg, db, now="2026-07-01T00:05:00+08:00").start()
        try:
            wait_for("the pack notice", lambda: sink.messages(), timeout=30, agents=(agent,))
            assert agent.stop() == 0
        finally:
            agent.cleanup()
        built = tmp_path / "packs" / "2026H1"
        sums_verify(built)
        [notice] = [m["message"] for m in sink.messages()]
        assert str(built) in notice and "2026-07-10" in notice
        assert any("declaration pack 2026H1 built in" in line for line in agent.lines()), agent.log()
        assert "Traceback" not in agent.log()


def _fake_pdf(ids: tuple[str, str, str], when: str) -> bytes:
    """The parts of Chromium's tagged PDF that vary between two prints of one page."""
    a, b, c = ids
    pairs = sorted([(a, "11 0 R"), (b, "12 0 R"), (c, "13 0 R")])
    names = " ".join(f"({n}) {r}" for n, r in pairs)
    return (f"%PDF-1.7\n11 0 obj\n<</S /TH\n/ID ({a})>>\nendobj\n12 0 obj\n<</S /TD\n/A [<</O /Table\n"
            f"/Headers [({a})]>>]\n/ID ({b})>>\nendobj\n13 0 obj\n<</S /TD\n/ID ({c})>>\nendobj\n"
            f"20 0 obj\n<</Limits [({pairs[0][0]}) ({pairs[-1][0]})]\n/Names [{names}]>>\nendobj\n"
            f"21 0 obj\n<</CreationDate (D:{when}+00'00')\n/ModDate (D:{when}+00'00')>>\nendobj\n").encode()


def test_chromium_pdfs_of_one_page_are_made_byte_identical() -> None:
    from datetime import UTC, datetime

    from agent.report.pack import steady_pdf

    end = datetime(2026, 6, 30, 16, tzinfo=UTC)
    one = _fake_pdf(("node00000064", "node00000065", "node00000070"), "20260701000501")
    two = _fake_pdf(("node00000008", "node00000007", "node00000003"), "20261201093000")  # other order
    assert one != two and len(one) == len(two)
    steady = steady_pdf(one, end)
    assert steady == steady_pdf(two, end) and len(steady) == len(one)
    text = steady.decode()
    assert "/ID (node00000000)>>" in text and "/Headers [(node00000000)]" in text  # one rename, everywhere
    assert "/Limits [(node00000000) (node00000002)]" in text
    assert "/Names [(node00000000) 11 0 R (node00000001) 12 0 R (node00000002) 13 0 R]" in text
    assert text.count("(D:20260630160000+00'00')") == 2


def test_a_pack_that_cannot_be_built_is_alerted_once_and_retried(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "packs"
    blocker.write_text("a file where the pack directory should be", "utf-8")
    cfg = tmp_path / "posture.toml"
    with http_sink() as sink:
        _config(cfg, sink, f'[firm]\ntier = 2\npack_dir = "{blocker}"\n')
        s = Story(cfg, sqlite_url, capsys, sink)
        for kind in ("scan", "pentest", "drill", "health-check", "ddos-drill"):
            s("2026-06-20", "duty", "record", kind, "--date", "2026-06-19", "--by", "x")
        s("2026-06-20", "duty", "record", "declaration", "--date", "2026-01-05", "--by", "x")
        failed = s.cycle("2026-07-01")
        assert len(failed) == 1 and "could not be built" in failed[0] and "2026-07-10" in failed[0], failed
        assert s.cycle("2026-07-02") == []  # still failing: said once
        blocker.unlink()
        ready = s.cycle("2026-07-03")
        assert len(ready) == 1 and "is ready" in ready[0], ready
        sums_verify(blocker / "2026H1")
