"""Issue 14's record rules (items 3, 4, 5), driven with --now on SQLite and PostgreSQL.

One website on loopback: a real TLS server whose certificate expires 22 days after the
first scan, and two more plain TCP listeners nmap finds open. Notifications land in the
local HTTP sink behind ``json://``.

3. Dates are kept as people wrote them: ``--until`` / ``--date`` come back exactly as
   typed in the CLI, the findings JSON, history, the digest (JSON and the message sent),
   and the report (HTML, CSV, JSON); "until D" holds through the end of D in Asia/Taipei.
4. A deadline never falls after the thing breaks: the expiring certificate's finding is
   due at its notAfter, not 90 days (medium) after first seen.
5. A configuration change is not a fix: allowing a port that is still open resolves its
   finding by configuration (with both config hashes), while a port that really closed
   when the allow-list changed is fixed; allowing it no more reopens it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.cli import main
from tests.support.certs import Authority, write_pair
from tests.support.dnsserver import DnsServer
from tests.support.listeners import close_at_once
from tests.support.outcome import narrowed_ok
from tests.support.servers import Reply, http_server, raw_server, server_context
from tests.support.sinks import HttpSink, http_sink

HOST, NAME = "127.0.0.71", "www.records.test"
TZ = ZoneInfo("Asia/Taipei")
DAY = timedelta(days=1)
PORTS_CHECK = "ports.unexpected_open"


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("records")
    ca = Authority("records root")
    d0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    not_after = d0 + 22 * DAY  # within the 30-day warning: tls.cert.expiring_soon (medium, 90 days)
    leaf = ca.leaf(NAME, not_after=not_after)
    cert, key = write_pair(d, "www", ca.chain_pem(leaf), leaf.key_pem)
    dns = DnsServer({NAME: HOST}).start()
    try:
        yield {"dir": d, "cert": cert, "key": key, "bundle": str(ca.write_trust(d / "ca.pem")),
               "dns": dns.address, "d0": d0, "not_after": not_after}
    finally:
        dns.stop()


def write_config(path: Path, lab: dict[str, Any], hook: HttpSink, web: int, scanned: list[int],
                 allowed: list[int]) -> None:
    path.write_text(f"""
[agent]
resolver = "{lab['dns']}"
ca_bundle = "{lab['bundle']}"
timezone = "Asia/Taipei"

[social]
browser = false

[schedule]
scan_every = "365d"
jitter = "0"

[[notify]]
url = "{hook.url('json')}"

[[assets]]
name = "site"
url = "https://{NAME}:{web}/"
ports = {scanned}
allowed_ports = {allowed}
""", "utf-8")


class Cli:
    def __init__(self, cfg: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.cfg, self.db, self.capsys = cfg, db, capsys

    def __call__(self, at: datetime, *args: str, code: int = 0) -> str:
        rc = main(["--config", str(self.cfg), "--db", self.db, "--now", at.isoformat(), *args])
        out, err = self.capsys.readouterr()
        assert rc == code, f"posture {' '.join(args)} exited {rc}: {err}"
        return out

    def json(self, at: datetime, *args: str) -> Any:
        return json.loads(self(at, *args, "--format", "json"))

    def findings(self, at: datetime, *args: str) -> dict[tuple[str, str], dict[str, Any]]:
        docs = self.json(at, "findings", "--status", "all", *args)["findings"]
        return {(f["check_id"], f["key"]): f for f in docs}


def local_day(at: datetime) -> str:
    return at.astimezone(TZ).date().isoformat()


def test_records_keep_dates_deadlines_and_config_changes(
    lab: dict[str, Any], store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d0, not_after = lab["d0"], lab["not_after"]
    cfg = tmp_path / "posture.toml"
    with ExitStack() as stack:
        hook = stack.enter_context(http_sink())
        web = stack.enter_context(http_server({"/": Reply(200, "<html><body>券商</body></html>")}, host=HOST,
                                              tls=server_context(lab["cert"], lab["key"])))
        kept = stack.enter_context(raw_server(close_at_once, host=HOST))  # stays open all along
        closing = ExitStack()
        closed_later = closing.enter_context(raw_server(close_at_once, host=HOST))
        scanned = sorted([web.port, kept.port, closed_later.port])
        write_config(cfg, lab, hook, web.port, scanned, [web.port])
        cli = Cli(cfg, store_url, capsys)

        # Day 0: the certificate expires in 22 days; two unexpected open ports.
        scan = cli.json(d0, "scan", "--probe", "tls", "--probe", "ports")["scans"][0]
        assert narrowed_ok(scan), scan
        found = cli.findings(d0)
        cert = found[("tls.cert.expiring_soon", f"{NAME}:{web.port}")]
        kept_f, closing_f = found[(PORTS_CHECK, str(kept.port))], found[(PORTS_CHECK, str(closed_later.port))]
        assert {cert["state"], kept_f["state"], closing_f["state"]} == {"open"}

        # 4. Due at notAfter (22 days), not first seen + 90 days (medium); ports keep their severity's days.
        assert cert["severity"] == "medium"
        assert cert["deadline"] == iso(not_after) == cert["evidence"]["not_after"]
        assert instant(kept_f["deadline"]) == instant(kept_f["first_seen"]) + timedelta(
            days={"critical": 7, "high": 30, "medium": 90, "low": 180}[kept_f["severity"]])
        assert f"due {iso(not_after)[:10]}" in cli(d0, "findings")
        digest = {a["asset"]: a for a in cli.json(d0 + 16 * DAY, "digest")["assets"]}["site"]
        (soon,) = [x for x in digest["due_soon"] if x["id"] == cert["id"]]
        assert instant(soon["due"]) == not_after  # due within 14 days: the certificate's end, not day 90

        # 3. A risk accepted "until D": echoed, listed and reported as D, never as a shifted instant.
        until_day = (d0 + 5 * DAY).astimezone(TZ).date()
        until = until_day.isoformat()
        out = cli(d0 + DAY, "findings", "accept", str(cert["id"]), "--reason", "換證排程中", "--until", until,
                  "--by", "ciso")
        assert f"accepted until {until} by ciso" in out and "T16:00" not in out
        accepted = cli.findings(d0 + DAY)[("tls.cert.expiring_soon", f"{NAME}:{web.port}")]["accepted"]
        end_of_day = datetime.combine(until_day + DAY, time(0), TZ)  # the start of the next day, Taipei
        assert accepted == {"reason": "換證排程中", "by": "ciso", "until": until, "ends_at": iso(end_of_day)}
        table = cli(d0 + DAY, "findings", "--status", "accepted")
        assert f"until {until}" in table

        # 3. A third-party scan performed on a date: the same date everywhere.
        performed = local_day(d0)
        evidence = tmp_path / "third-party.pdf"
        evidence.write_bytes(b"%PDF-1.4 bought-in scan\n" * 50)
        out = cli(d0 + DAY, "record-scan", "site", "--date", performed, "--by", "ACME", "--evidence", str(evidence))
        assert f"performed {performed} by ACME" in out
        history = cli.json(d0 + DAY, "history", "site")["history"]
        (third,) = [e for e in history if e["type"] == "third_party_scan"]
        assert third["performed"] == performed
        assert f"(performed {performed})" in cli(d0 + DAY, "history", "site")
        accepted_event = next(e for e in history if e.get("event") == "accepted")
        assert accepted_event["detail"]["until_entered"] == until

        # "Until D" holds through D, Taipei time: still accepted at 23:58 that day, open after midnight.
        last_minute = datetime.combine(until_day, time(23, 58), TZ)
        cli(last_minute, "scan", "--probe", "tls")
        state = cli.findings(last_minute)[("tls.cert.expiring_soon", f"{NAME}:{web.port}")]["state"]
        assert state == "accepted"
        digest = {a["asset"]: a for a in cli.json(last_minute, "digest")["assets"]}["site"]
        assert [(x["id"], x["accepted_until"]) for x in digest["accepted"]] == [(cert["id"], until)]
        assert digest["cadence"]["last_third_party_scan"] == performed
        cli(last_minute, "digest", "--send")
        sent = hook.messages()[-1]
        assert f"接受至 {until}" in sent["message"], sent["message"]

        # The report of those days: HTML, CSV and JSON all say D.
        report_args = ("report", "--from", local_day(d0), "--to", until)
        html = tmp_path / "report.html"
        cli(last_minute, *report_args, "-o", str(html))
        page = html.read_text("utf-8")
        assert f"至 {until}" in page and performed in page
        next_day = (until_day + DAY).isoformat()
        assert f"至 {next_day}" not in page
        rows = list(csv.reader(io.StringIO(cli(last_minute, *report_args, "--format", "csv"))))
        (cert_row,) = [r for r in rows if "tls.cert.expiring_soon" in r]
        assert any(until in cell for cell in cert_row) and not any(next_day in c for c in cert_row)
        report = cli.json(last_minute, *report_args)
        (asset,) = report["assets"]
        (rep_cert,) = [f for f in asset["findings"] if f["id"] == cert["id"]]
        assert rep_cert["accepted_until"] == until and rep_cert["state"] == "accepted"
        assert rep_cert["deadline"] == iso(not_after)
        assert [x["performed_at"] for x in asset["external_scans"]] == [performed]

        after_midnight = datetime.combine(until_day + DAY, time(0, 0, 30), TZ)
        cli(after_midnight, "scan", "--probe", "tls")
        state = cli.findings(after_midnight)[("tls.cert.expiring_soon", f"{NAME}:{web.port}")]["state"]
        assert state == "open"
        expired = [e for e in cli.json(after_midnight, "history", "site")["history"]
                   if e.get("event") == "acceptance_expired"]
        assert len(expired) == 1 and expired[0]["detail"]["until_entered"] == until

        # 5. The still-open port is allowed: resolved by configuration, not fixed.
        d7 = d0 + 7 * DAY
        write_config(cfg, lab, hook, web.port, scanned, [web.port, kept.port])
        cli(d7, "scan", "--probe", "tls", "--probe", "ports")
        now = cli.findings(d7)
        resolved = now[(PORTS_CHECK, str(kept.port))]
        assert resolved["state"] == "resolved_by_config" and resolved["fixed_at"] is not None
        change = resolved["resolved_by_config"]
        before, after = change["config_hash_before"], change["config_hash_after"]
        assert before and after and before != after and change["condition_still_observed"] is True
        assert now[(PORTS_CHECK, str(closed_later.port))]["state"] == "open"  # unchanged: still reported
        assert cli.json(d7, "findings", "--status", "fixed")["findings"] == []
        listed = cli(d7, "findings", "--status", "resolved_by_config")
        assert "resolved by configuration" in listed and f"({before} -> {after})" in listed
        text = cli(d7, "history", "site")
        (line,) = [ln for ln in text.splitlines() if "resolved_by_config" in ln]
        assert f"#{resolved['id']}" in line and f"configuration {before} -> {after}, condition still observed" in line

        # 5. The other port really closes as the allow-list changes: observed gone, so fixed.
        closing.close()
        d8 = d0 + 8 * DAY
        write_config(cfg, lab, hook, web.port, scanned, [web.port, kept.port, closed_later.port])
        cli(d8, "scan", "--probe", "ports")
        fixed = cli.findings(d8)[(PORTS_CHECK, str(closed_later.port))]
        assert fixed["state"] == "fixed" and fixed["resolved_by_config"] is None

        # The digest and the report tell the two apart, with the hashes.
        d8_later = d8 + timedelta(hours=1)  # the week ending after the scan that just finished
        digest = {a["asset"]: a for a in cli.json(d8_later, "digest")["assets"]}["site"]
        assert [(x["id"], x["config_hash_before"], x["config_hash_after"]) for x in digest["resolved_by_config"]] \
            == [(resolved["id"], before, after)]
        assert [x["id"] for x in digest["fixed"]] == [fixed["id"]]
        cli(d8_later, "digest", "--send")
        sent = hook.messages()[-1]["message"]
        assert "本週因設定變更解除" in sent and f"#{resolved['id']}，設定 {before} → {after}" in sent
        report = cli.json(d8_later, "report", "--from", local_day(d0), "--to", local_day(d8_later))
        by_id = {f["id"]: f for f in report["assets"][0]["findings"]}
        assert by_id[resolved["id"]]["state"] == "resolved_by_config"
        assert by_id[resolved["id"]]["config_change"] == {"config_hash_before": before, "config_hash_after": after}
        assert by_id[fixed["id"]]["state"] == "fixed" and by_id[fixed["id"]]["config_change"] is None
        cli(d8_later, "report", "--from", local_day(d0), "--to", local_day(d8_later), "-o", str(html))
        page = html.read_text("utf-8")
        assert "因設定變更而解除" in page and f"{before} → {after}" in page

        # Allowed no more while still open: it comes back (reopened), like a fixed finding would.
        d9 = d0 + 9 * DAY
        write_config(cfg, lab, hook, web.port, scanned, [web.port])
        cli(d9, "scan", "--probe", "ports")
        back = cli.findings(d9)[(PORTS_CHECK, str(kept.port))]
        assert back["state"] == "reopened" and back["id"] == resolved["id"]


# ---------------------------------------------------------------- 7. odd but valid input is bad input

ODD = [
    (["findings", "accept", "99999999999999999999", "--reason", "r", "--until", "2027-03-31"],
     "'99999999999999999999'"),
    (["findings", "accept", "1", "--reason", "r", "--until", "9999-12-31"], "'9999-12-31'"),
    (["report", "--from", "0001-01-01"], "'0001-01-01'"),
    (["history", "site", "--since", "0001-01-01"], "'0001-01-01'"),
    (["prune", "--older-than", "99999y"], "'99999y'"),
    (["prune", "--older-than", "99999999999999999999999h"], "'99999999999999999999999h'"),
    (["record-scan", "site", "--date", "0001-01-01", "--by", "x", "--evidence", "{evidence}"], "'0001-01-01'"),
    (["findings", "false-positive", "2147483648", "--reason", "r"], "'2147483648'"),
    (["--now", "0001-01-01", "findings"], "'0001-01-01'"),
    (["--now", "9999-12-31T23:59:59-12:00", "findings"], "'9999-12-31T23:59:59-12:00'"),
]


@pytest.mark.parametrize(("args", "named"), ODD)
def test_odd_but_valid_input_exits_2_naming_the_value(tmp_path: Path, args: list[str], named: str) -> None:
    """Through the real command line (a subprocess): one line on stderr, exit 2, the value named."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "posture.toml"
    cfg.write_text('[[assets]]\nname = "site"\nurl = "https://www.records.test/"\n', "utf-8")
    evidence = tmp_path / "report.pdf"
    evidence.write_bytes(b"%PDF")
    db = f"sqlite:///{tmp_path / 'posture.db'}"
    prefix = ["--config", str(cfg), "--db", db]
    if args[0] != "--now":
        prefix += ["--now", "2026-12-04T10:00:00+08:00"]
    filled = [a.format(evidence=evidence) for a in args]
    proc = subprocess.run([sys.executable, "-m", "agent", *prefix, *filled], capture_output=True, text=True,
                          env={**os.environ}, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and named in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr


def test_range_bounds_are_inclusive_of_real_dates() -> None:
    from agent.errors import UsageError
    from agent.when import LATEST, before, parse_entered, record_id

    last = parse_entered("2099-12-31", "Asia/Taipei", "--until", end_of_day=True)
    assert last.text == "2099-12-31" and last.at < LATEST
    assert parse_entered("2099-12-31", "UTC", "--until", end_of_day=True).at == LATEST  # the whole last day
    with pytest.raises(UsageError, match="'2100-01-01' is out of range"):
        parse_entered("2100-01-01", "UTC", "--until")
    with pytest.raises(UsageError, match="'1969-12-31' is out of range"):
        parse_entered("1969-12-31", "Asia/Taipei", "--since")
    assert parse_entered("1970-01-01T08:00:00+08:00", "UTC", "--since").at == datetime(1970, 1, 1, tzinfo=UTC)
    assert record_id("2147483647") == 2147483647
    assert before(datetime(2026, 1, 1, tzinfo=UTC), "56y", "--older-than") == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(UsageError, match="'57y'"):
        before(datetime(2026, 1, 1, tzinfo=UTC), "57y", "--older-than")
