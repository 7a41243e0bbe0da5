"""An acceptance ends on its end date in everything posture reports, written expiry or not.

The expiry is written (``acceptance_expired``) by the next scan of the asset or the next
``posture run`` cycle. Until then the row still says "accepted"; every read of the present
(findings, show, overdue, digest, report, exports, metrics, alerts) must nonetheless say what
is true at ``--now``: past its end the finding is open again, and overdue if past its deadline.
Storage matters, so SQLite and PostgreSQL (``store_url``).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from state.store import Store
from tests.state.factory import BROKER_CONFIG, T0, finding, run, scan

DAY = timedelta(days=1)
UNTIL = "2025-04-30"  # T0 is 2025-03-03; the high finding's deadline falls within the acceptance
BEFORE_END = datetime.fromisoformat("2025-04-30T15:59:00+00:00")  # 23:59 on the 30th in Taipei
AFTER_END = datetime.fromisoformat("2025-06-02T01:00:00+00:00")  # a month after it ended


@pytest.fixture
def env(tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(BROKER_CONFIG)
    with Store.open(store_url) as store:
        rec = store.record_scan(scan(T0, [run("tls", finding("tls.cert.untrusted", "www:443", subject="CN=www"))]))
    fid = rec.finding_ids[("tls.cert.untrusted", "www:443")]
    e = {"cfg": cfg, "db": store_url, "id": fid, "tmp": tmp_path}
    code, _, err = cli(e, capsys, T0 + DAY, "findings", "accept", str(fid), "--reason", "WAF next quarter",
                       "--until", UNTIL, "--by", "ciso")
    assert code == 0, err
    return e


def cli(env: dict[str, Any], capsys: pytest.CaptureFixture[str], at: datetime, *args: str) -> tuple[int, str, str]:
    try:
        code = main(["--config", str(env["cfg"]), "--db", env["db"], "--now", at.isoformat(), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def listed(env: dict[str, Any], capsys: pytest.CaptureFixture[str], at: datetime, *args: str) -> dict[int, Any]:
    code, out, err = cli(env, capsys, at, "findings", "--format", "json", *args)
    assert code == 0, err
    return {f["id"]: f for f in json.loads(out)["findings"]}


def test_findings_lists_say_accepted_until_the_end_and_open_and_overdue_after(
        env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fid = env["id"]
    assert fid in listed(env, capsys, BEFORE_END, "--status", "accepted")
    assert fid not in listed(env, capsys, BEFORE_END, "--status", "open")

    after = listed(env, capsys, AFTER_END, "--status", "open")
    assert after[fid]["state"] == "open" and after[fid]["overdue"] is True
    assert fid not in listed(env, capsys, AFTER_END, "--status", "accepted")
    assert fid in listed(env, capsys, AFTER_END, "--overdue")
    code, out, err = cli(env, capsys, AFTER_END, "findings", "show", str(fid), "--format", "json")
    assert code == 0, err
    shown = json.loads(out)["finding"]
    assert (shown["state"], shown["overdue"]) == ("open", True)
    # Reading changed nothing: the row still waits for its expiry to be written by a scan or a cycle.
    with Store.open(env["db"]) as store:
        assert store.finding(fid).state.value == "accepted"
        assert store.finding(fid).at(AFTER_END).state.value == "open"


def test_digest_report_and_exports_count_it_open_after_the_end(
        env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    fid = env["id"]
    code, out, err = cli(env, capsys, AFTER_END, "digest", "--format", "json")
    assert code == 0, err
    www = next(a for a in json.loads(out)["assets"] if a["asset"] == "www")
    assert [x["id"] for x in www["overdue"]] == [fid]
    assert www["accepted"] == []

    report = env["tmp"] / "r.json"
    code, _, err = cli(env, capsys, AFTER_END, "report", "--from", "2025-01-01", "--to", "2025-06-30",
                       "-o", str(report))
    assert code == 0, err
    doc = json.loads(report.read_text())
    entry = next(f for a in doc["assets"] for f in a["findings"] if f["id"] == fid)
    assert (entry["state"], entry["overdue"]) == ("open", True)

    # A report of a period that ended while the acceptance held still says accepted.
    early = env["tmp"] / "early.json"
    code, _, err = cli(env, capsys, AFTER_END, "report", "--from", "2025-01-01", "--to", "2025-03-31",
                       "-o", str(early))
    assert code == 0, err
    entry = next(f for a in json.loads(early.read_text())["assets"] for f in a["findings"] if f["id"] == fid)
    assert entry["state"] == "accepted"

    code, out, err = cli(env, capsys, AFTER_END, "export", "--format", "defectdojo", "-o", "-")
    assert code == 0, err
    dojo = json.loads(out)["findings"]
    assert [(f["risk_accepted"], f["active"]) for f in dojo] == [(False, True)]
    code, out, err = cli(env, capsys, AFTER_END, "export", "--format", "ocsf", "-o", "-")
    assert code == 0, err
    assert "Suppressed" not in out

    code, out, err = cli(env, capsys, BEFORE_END, "export", "--format", "defectdojo", "-o", "-")
    assert code == 0, err
    assert [f["risk_accepted"] for f in json.loads(out)["findings"]] == [True]
