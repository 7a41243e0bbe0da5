"""Issue 19's story: a year of a tier-2 firm's compliance calendar, driven with --now on
SQLite and PostgreSQL, notifications through Apprise into a local HTTP sink.

Duties are recorded (with evidence files), each due-soon warning and overdue alert goes
out exactly once, the declaration pack of 2026H1 is built on 1 July with SHA256SUMS that
real ``sha256sum -c`` verifies, the reminder comes on 8 July and never again once the
declaration is recorded, and ``posture pack`` rebuilds the same pack months later.
"""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.cli import main
from tests.support.sinks import HttpSink, http_sink

TZ = ZoneInfo("Asia/Taipei")


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00").replace(tzinfo=TZ)


class Story:
    def __init__(self, cfg: Path, db: str, capsys: pytest.CaptureFixture[str], sink: HttpSink) -> None:
        self.cfg, self.db, self.capsys, self.sink = cfg, db, capsys, sink
        self.seen = 0

    def __call__(self, day: str, *args: str, code: int = 0) -> str:
        rc = main(["--config", str(self.cfg), "--db", self.db, "--now", at(day).isoformat(), *args])
        out, err = self.capsys.readouterr()
        assert rc == code, f"posture {' '.join(args)} exited {rc}: {err}"
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        return out

    def cycle(self, day: str) -> list[str]:
        """One evaluation cycle on ``day``; the message bodies it delivered."""
        self(day, "run", "--once", "--format", "json")
        messages = self.sink.messages()
        new = [str(m["message"]) for m in messages[self.seen:]]
        self.seen = len(messages)
        return new

    def duties(self, day: str) -> dict[str, dict[str, Any]]:
        doc = json.loads(self(day, "duty", "list", "--format", "json"))
        return {d["kind"]: d for d in doc["duties"]}


def write_config(path: Path, sink: HttpSink, packs: Path) -> None:
    path.write_text(f"""
[agent]
timezone = "Asia/Taipei"

[schedule]
digest = "off"

[firm]
tier = 2
name = "示範證券 Demo Securities"
warn_days = 30
pack_dir = "{packs}"
remind_days = 2

[[notify]]
url = "{sink.url('json')}"
language = "en"
events = ["alert"]
""", "utf-8")


def sums_verify(directory: Path) -> str:
    done = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=directory, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_year_of_a_tier_2_firm(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    packs = tmp_path / "packs"
    cfg = tmp_path / "posture.toml"
    report = tmp_path / "pentest-2025.pdf"
    report.write_bytes(b"%PDF-1.4 pentest report\x00\xff")
    minutes = tmp_path / "營運持續演練 紀錄.txt"
    minutes.write_text("業務持續演練紀錄\n", "utf-8")
    with http_sink() as sink:
        write_config(cfg, sink, packs)
        s = Story(cfg, store_url, capsys, sink)

        # 15 January 2026: the firm records what it has done.
        s("2026-01-15", "duty", "record", "pentest", "--date", "2025-03-01", "--by", "Red Team Ltd",
          "--evidence", str(report))
        s("2026-01-15", "duty", "record", "drill", "--date", "2024-09-01", "--by", "BCP office",
          "--evidence", str(minutes))
        s("2026-01-15", "duty", "record", "health-check", "--date", "2025-06-01", "--by", "TWCERT")
        s("2026-01-15", "duty", "record", "ddos-drill", "--date", "2025-03-01", "--by", "NOC")
        s("2026-01-15", "duty", "record", "scan", "--date", "2026-01-10", "--by", "Scan Co")
        s("2026-01-15", "duty", "record", "declaration", "--date", "2026-01-08", "--by", "compliance")
        duties = s.duties("2026-01-15")
        assert {k: (d["last_done"], d["next_due"], d["state"]) for k, d in duties.items()} == {
            "scan": ("2026-01-10", "2026-07-10", "ok"),
            "pentest": ("2025-03-01", "2027-03-01", "ok"),  # tier 2: every two years
            "drill": ("2024-09-01", "2026-09-01", "ok"),
            "health-check": ("2025-06-01", "2027-06-01", "ok"),
            "ddos-drill": ("2025-03-01", "2026-03-01", "ok"),
            "declaration": ("2026-01-08", "2026-07-10", "ok"),
        }
        assert s.cycle("2026-01-15") == []

        # The DDoS drill: due soon 30 days ahead (once), overdue the day after its due date (once).
        warned = s.cycle("2026-02-01")
        assert len(warned) == 1 and "ddos-drill" in warned[0] and "2026-03-01" in warned[0], warned
        assert s.duties("2026-02-01")["ddos-drill"]["state"] == "due_soon"
        assert s.cycle("2026-02-15") == []
        assert s.cycle("2026-03-01") == []  # the due date itself is the last day, not overdue
        overdue = s.cycle("2026-03-02")
        assert len(overdue) == 1 and "ddos-drill" in overdue[0] and "overdue" in overdue[0], overdue
        assert s.duties("2026-03-02")["ddos-drill"]["state"] == "overdue"
        assert s.cycle("2026-03-09") == []
        s("2026-03-10", "duty", "record", "ddos-drill", "--date", "2026-03-09", "--by", "NOC")
        assert s.duties("2026-03-10")["ddos-drill"] == {**s.duties("2026-03-10")["ddos-drill"],
                                                         "next_due": "2027-03-09", "state": "ok"}
        assert s.cycle("2026-03-10") == []

        # The half-yearly scan: warned once in June, recorded, quiet again.
        warned = s.cycle("2026-06-15")
        assert len(warned) == 1 and "scan" in warned[0] and "2026-07-10" in warned[0], warned
        s("2026-06-20", "duty", "record", "scan", "--date", "2026-06-19", "--by", "Scan Co")
        assert s.cycle("2026-06-20") == []

        # 1 July: the 2026H1 pack is built and announced (where, the window's last day).
        assert not (packs / "2026H1").exists()
        ready = s.cycle("2026-07-01")
        built = packs / "2026H1"
        assert len(ready) == 1 and str(built) in ready[0] and "2026-07-10" in ready[0], ready
        checked = sums_verify(built)
        names = {line.rsplit(": ", 1)[0] for line in checked.splitlines()}
        assert {"manifest.json", "report.html", "report.csv", "report.json", "duties.json", "duties.csv",
                "README.txt"} <= names
        kept = [n for n in names if n.startswith("evidence/")]
        assert any(n.endswith("pentest-2025.pdf") for n in kept), kept  # the standing pentest report
        pentest = next(built / n for n in kept if n.endswith("pentest-2025.pdf"))
        assert pentest.read_bytes() == report.read_bytes()
        assert any(n.endswith("-營運持續演練_紀錄.txt") for n in kept), kept  # the standing drill minutes
        end = int(at("2026-07-01", 0).timestamp())  # files dated the half year's end, not the build
        assert {int(p.stat().st_mtime) for p in built.rglob("*") if p.is_file()} == {end}
        manifest = json.loads((built / "manifest.json").read_text("utf-8"))
        assert manifest["period"] == "2026H1" and manifest["tier"] == 2
        assert (manifest["report_pdf"] == "included") == (built / "report.pdf").is_file(), manifest["report_pdf"]
        assert {f["path"] for f in manifest["files"]} == names - {"manifest.json"}
        in_report = json.loads((built / "report.json").read_text("utf-8"))["duties"]
        assert {d["kind"]: d["state"] for d in in_report}["scan"] == "ok"  # as of 30 June
        assert "法遵行事曆" in (built / "report.html").read_text("utf-8")
        listed = json.loads((built / "duties.json").read_text("utf-8"))
        assert [r["date"] for r in listed["records"] if r["kind"] == "scan"] == ["2026-01-10", "2026-06-19"]

        # Announced once; the reminder two days before the window closes, once.
        assert s.cycle("2026-07-03") == []
        assert s.cycle("2026-07-07") == []
        reminder = s.cycle("2026-07-08")
        assert len(reminder) == 1 and "not recorded as filed" in reminder[0] and "2026-07-10" in reminder[0]
        assert s.cycle("2026-07-09") == []
        s("2026-07-09", "duty", "record", "declaration", "--date", "2026-07-09", "--by", "compliance")
        assert s.cycle("2026-07-09") == []
        assert s.cycle("2026-07-12") == []
        assert s.duties("2026-07-12")["declaration"]["next_due"] == "2027-01-10"

        # The drill: warned, recorded before its due date; never overdue.
        warned = s.cycle("2026-08-10")
        assert len(warned) == 1 and "drill" in warned[0] and "2026-09-01" in warned[0], warned
        s("2026-08-20", "duty", "record", "drill", "--date", "2026-08-18", "--by", "BCP office")
        assert s.cycle("2026-09-05") == []

        # The rebuilt pack is the same pack.
        again = tmp_path / "rebuilt"
        s("2026-12-01", "pack", "--period", "2026H1", "-o", str(again))
        assert (again / "manifest.json").read_bytes() == (built / "manifest.json").read_bytes()
        assert (again / "SHA256SUMS").read_bytes() == (built / "SHA256SUMS").read_bytes()
        sums_verify(again)
        # A link to a pack directory stays a link; the pack is rebuilt where it points.
        link = tmp_path / "latest"
        link.symlink_to(again.name)
        s("2026-12-01", "pack", "--period", "2026H1", "-o", str(link))
        assert link.is_symlink() and link.resolve() == again.resolve()
        sums_verify(again)
        # Tampering is caught by the auditor's own tool.
        (again / "duties.csv").write_bytes((again / "duties.csv").read_bytes() + b"x")
        tampered = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=again, capture_output=True, check=False)
        assert tampered.returncode != 0

        # January 2027: the 2026H2 pack; the declaration recorded before the 8th: no reminder.
        s("2026-12-20", "duty", "record", "scan", "--date", "2026-12-18", "--by", "Scan Co")
        ready = s.cycle("2027-01-01")
        assert len(ready) == 1 and "2026H2" in ready[0] and "2027-01-10" in ready[0], ready
        sums_verify(packs / "2026H2")
        s("2027-01-05", "duty", "record", "declaration", "--date", "2027-01-05", "--by", "compliance")
        assert s.cycle("2027-01-08") == []
        assert s.cycle("2027-01-11") == []


def test_duty_input_errors(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text("[firm]\ntier = 1\n", "utf-8")
    with http_sink() as sink:
        s = Story(cfg, sqlite_url, capsys, sink)
        s("2026-03-01", "duty", "record", "pentest", "--date", "2026-13-01", "--by", "x", code=2)
        s("2026-03-01", "duty", "record", "pentest", "--date", "2026-03-02", "--by", "x", code=2)  # future
        s("2026-03-01", "duty", "record", "pentest", "--date", "2026-02-01", "--by", " ", code=2)
        s("2026-03-01", "duty", "record", "pentest", "--date", "2026-02-01", "--by", "x",
          "--evidence", str(tmp_path / "missing.pdf"), code=2)
        s("2026-03-01", "duty", "record", "pentest", "--date", "2026-02-01", "--by", "x",
          "--evidence", str(tmp_path), code=2)  # a directory, not a file
        s("2026-03-01", "pack", "--period", "2026H3", "-o", str(tmp_path / "p"), code=2)
        s("2026-03-01", "pack", "--period", "2026H1", "-o", str(tmp_path / "p"), code=2)  # not ended yet
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "keep.txt").write_text("mine", "utf-8")
        s("2026-08-01", "pack", "--period", "2026H1", "-o", str(tmp_path / "busy"), code=2)
        assert (tmp_path / "busy" / "keep.txt").read_text("utf-8") == "mine"
        duties = s.duties("2026-03-01")
        assert all(d["last_done"] is None for d in duties.values())
        # Tier 1: pentest and drills yearly; a recorded date is shown as entered.
        s("2026-03-01", "duty", "record", "pentest", "--date", "2026-02-01", "--by", "x")
        assert s.duties("2026-03-01")["pentest"]["next_due"] == "2027-02-01"


def test_the_digest_carries_the_calendar() -> None:
    from agent.notify import digest, digest_text
    from schedules.duties import DutyKind, status

    overdue = status(DutyKind.DDOS_DRILL, 12, date(2025, 3, 1), date(2026, 3, 2), 30)
    fine = status(DutyKind.PENTEST, 24, date(2025, 3, 1), date(2026, 3, 2), 30)
    d = digest.Digest(at("2026-02-23"), at("2026-03-02"), "Asia/Taipei", (), (overdue, fine))
    assert [(x["kind"], x["state"]) for x in d.to_json()["duties"]] == [("ddos-drill", "overdue"),
                                                                         ("pentest", "ok")]
    text = digest_text.render_text(d, "en")
    assert "DDoS response drill (ddos-drill): overdue; last done 2025-03-01; next due 2026-03-01" in text
    assert "滲透測試（pentest）：正常" in digest_text.render_markdown(d, "zh-TW")
    assert "duties" not in json.dumps(digest.Digest(d.start, d.end, d.tz, ()).to_json()["duties"])
