"""The firm-wide duties the calendar derives or infers, through the CLI with ``--now``:

* the ``scan`` duty rests on every configured asset's latest complete scan (posture's own,
  or a third-party one registered with ``record-scan``): posture's complete scans count,
  one asset's third-party scan does not cover the others, the asset that holds the date back
  is named (``duty list``, the pack's ``duties.json``, the alert), and a firm-wide
  ``duty record scan`` counts for every asset;
* a declaration never filed turns overdue once its window closes, alerted once.

Real TLS services and DNS on loopback (``tests/agent/daemon_lab``), alerts through Apprise
into a local HTTP sink.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.daemon_lab import Lab, asset_toml, config_toml, make_lab
from tests.agent.test_duty_story import Story
from tests.support.sinks import HttpSink, http_sink

A, B = "a.daemon.test", "b.daemon.test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with make_lab(tmp_path_factory.mktemp("duty-lab")) as made:
        yield made


def _firm(sink: HttpSink, packs: Path) -> str:
    return (f'[firm]\ntier = 2\nname = "Demo Securities"\npack_dir = "{packs}"\n\n'
            f'[[notify]]\nurl = "{sink.url("json")}"\nlanguage = "en"\nevents = ["alert"]\n\n')


def _scan(s: Story, day: str, *urls: str) -> list[str]:
    """``posture scan`` at ``day``: each scan's asset and status."""
    doc = json.loads(s(day, "scan", "--format", "json", *urls))
    return [str(x["status"]) for x in doc["scans"]]


def _scan_messages(s: Story, day: str) -> list[str]:
    """One cycle's messages about the scan duty (findings of the certificate aside)."""
    return [m for m in s.cycle(day) if "(scan)" in m]


def test_the_scan_duty_rests_on_every_assets_latest_scan(lab: Lab, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    cfg = tmp_path / "posture.toml"
    packs = tmp_path / "packs"
    report = tmp_path / "third-party.pdf"
    report.write_bytes(b"%PDF-1.4 third-party scan of a\n")
    with lab.gates(A, B) as g, http_sink() as sink:
        assets = asset_toml(A, g[A]) + asset_toml(B, g[B])
        cfg.write_text(config_toml(lab.dns, lab.ca, assets, every="400d", schedule='digest = "off"',
                                   top=_firm(sink, packs)), "utf-8")
        s = Story(cfg, db, capsys, sink)
        for kind in ("pentest", "drill", "health-check", "ddos-drill"):
            s("2026-12-01", "duty", "record", kind, "--date", "2026-11-30", "--by", "x")
        s("2026-12-01", "duty", "record", "declaration", "--date", "2026-07-05", "--by", "compliance")

        # a scanned on 6 December, both on the 7th: complete scans, the duty is done that day.
        assert _scan(s, "2026-12-06", f"tls://{A}:{g[A].port}") == ["complete"]
        assert _scan(s, "2026-12-07") == ["complete", "complete"]
        scan = s.duties("2026-12-07")["scan"]
        assert (scan["last_done"], scan["next_due"], scan["state"]) == ("2026-12-07", "2027-06-07", "ok")
        assert scan["coverage"]["assets"] == [{"asset": A, "last_scan": "2026-12-07"},
                                              {"asset": B, "last_scan": "2026-12-07"}]
        listed = s("2026-12-07", "duty", "list")
        assert ["scan", "6mo", "2026-12-07", "2027-06-07", "ok"] in [line.split() for line in listed.splitlines()]
        s.seen = len(sink.messages())  # the scans' own alerts (findings) aside
        assert _scan_messages(s, "2026-12-07") == []
        # As of the 6th only a had been scanned: not done for every system, b holds it back.
        scan = s.duties("2026-12-06")["scan"]
        assert (scan["last_done"], scan["state"], scan["held_back_by"]) == (None, "never", B)
        assert "scan: held back by asset b.daemon.test (never had a complete or third-party scan)" in s(
            "2026-12-06", "duty", "list")

        # The pack of 2026H2 says so beside the report's complete scans.
        s("2027-01-02", "pack", "--period", "2026H2", "-o", str(tmp_path / "2026H2"))
        calendar = {d["kind"]: d for d in json.loads((tmp_path / "2026H2" / "duties.json").read_text())["calendar"]}
        assert (calendar["scan"]["last_done"], calendar["scan"]["state"]) == ("2026-12-07", "ok")
        assert [a["last_scan"] for a in calendar["scan"]["coverage"]["assets"]] == ["2026-12-07", "2026-12-07"]

        # a scanned again and by a third party; b not since December: its scan dates the duty.
        assert _scan(s, "2027-05-26", f"tls://{A}:{g[A].port}") == ["complete"]
        s("2027-05-26", "record-scan", A, "--date", "2027-05-26", "--by", "ACME", "--evidence", str(report))
        scan = s.duties("2027-05-26")["scan"]
        assert (scan["last_done"], scan["state"], scan["held_back_by"]) == ("2026-12-07", "due_soon", B)
        s.seen = len(sink.messages())
        scan = s.duties("2027-06-10")["scan"]
        assert (scan["last_done"], scan["next_due"], scan["state"], scan["held_back_by"]) == (
            "2026-12-07", "2027-06-07", "overdue", B)
        overdue = _scan_messages(s, "2027-06-10")
        assert len(overdue) == 1, overdue
        assert ("vulnerability scan (scan) is 3 day(s) overdue: due 2027-06-07, last done 2026-12-07 "
                "(held back by asset b.daemon.test)") in overdue[0], overdue
        assert _scan_messages(s, "2027-06-11") == []  # once

        # A firm-wide third-party scan of every system counts for every asset.
        s("2027-06-12", "duty", "record", "scan", "--date", "2027-06-12", "--by", "Scan Co")
        scan = s.duties("2027-06-12")["scan"]
        assert (scan["last_done"], scan["state"], scan["held_back_by"]) == ("2027-06-12", "ok", None)
        assert scan["coverage"]["firm_wide"] == "2027-06-12"


def test_a_declaration_never_filed_is_overdue_once_its_window_closes(
        store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    with http_sink() as sink:
        cfg.write_text('[agent]\ntimezone = "Asia/Taipei"\n[schedule]\ndigest = "off"\n'
                       + _firm(sink, tmp_path / "packs"), "utf-8")
        s = Story(cfg, store_url, capsys, sink)
        for kind in ("scan", "pentest", "drill", "health-check", "ddos-drill"):
            s("2026-12-20", "duty", "record", kind, "--date", "2026-12-18", "--by", "x")
        declaration: dict[str, Any] = s.duties("2027-01-05")["declaration"]
        assert (declaration["last_done"], declaration["next_due"], declaration["state"]) == (
            None, "2027-01-10", "never")
        assert len(s.cycle("2027-01-01")) == 1  # the pack is ready
        assert len(s.cycle("2027-01-08")) == 1  # the reminder
        assert s.cycle("2027-01-10") == []  # the window's last day: not yet overdue
        late = s.cycle("2027-01-11")
        assert len(late) == 1, late
        assert "security declaration (declaration) is 1 day(s) overdue: due 2027-01-10, last done never" in late[0]
        assert s.cycle("2027-01-20") == []  # once
        declaration = s.duties("2027-02-01")["declaration"]
        assert (declaration["state"], declaration["days_left"]) == ("overdue", -22)
        keys = [d.condition for d in _deliveries(store_url) if d.condition.startswith("duty:declaration")]
        assert keys == ["duty:declaration:overdue:2027-01-10"], keys
        # Filed late: no longer overdue; the next window is owed.
        s("2027-02-02", "duty", "record", "declaration", "--date", "2027-02-02", "--by", "compliance")
        assert s.duties("2027-02-02")["declaration"]["state"] == "ok"
        assert s.cycle("2027-02-02") == []


def _deliveries(url: str) -> list[Any]:
    from state.deliveries import deliveries
    from state.store import Store

    with Store.open(url) as store:
        return list(deliveries(store, prefix="duty:"))
