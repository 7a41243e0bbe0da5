"""Notifications that go out late say what held at their moment, not at the send.

The scheduled digest covers the week ending at its firing (from where the last digest sent
ended), whenever the cycle runs; a person's reopening is one of its decisions. A new-finding
alert whose first delivery failed is not retried once the finding is fixed or decided.

A real TLS server on loopback (switched off to make the asset unreachable: a new high
finding and a failed scan; on again: fixed), real DNS, real Apprise into a local HTTP sink,
everything driven through the CLI with --now. The digest fires Monday 09:00 Asia/Taipei.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.cli import main
from state import deliveries
from state.delivery_views import DeliveryEvent, DeliveryState
from state.store import Store
from tests.support.certs import Authority, write_pair
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, http_server, server_context
from tests.support.sinks import HttpSink, http_sink
from tests.support.tls_servers import free_port

TZ = ZoneInfo("Asia/Taipei")
HOST, NAME = "127.0.23.7", "gw.window.test"
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=TZ)  # a digest firing
DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("window")
    ca = Authority("window root")
    leaf = ca.leaf(NAME, not_before=MONDAY - 400 * DAY, not_after=MONDAY + 800 * DAY)
    cert, key = write_pair(d, "gw", ca.chain_pem(leaf), leaf.key_pem)
    dns = DnsServer({NAME: HOST}).start()
    try:
        yield {"cert": cert, "key": key, "bundle": str(ca.write_trust(d / "ca.pem")), "dns": dns.address,
               "port": free_port(HOST)}
    finally:
        dns.stop()


@contextmanager
def up(lab: dict[str, Any]) -> Iterator[None]:
    """The asset's TLS service, listening (outside this block nothing listens: unreachable)."""
    with http_server({"/": Reply(200, "<html><body>gw</body></html>")}, host=HOST, port=lab["port"],
                     tls=server_context(lab["cert"], lab["key"])):
        yield


class Posture:
    def __init__(self, tmp_path: Path, db: str, lab: dict[str, Any], sink: HttpSink,
                 capsys: pytest.CaptureFixture[str], events: str = '"digest"') -> None:
        self.cfg, self.db, self.capsys = tmp_path / "posture.toml", db, capsys
        self.cfg.write_text(f"""
[agent]
resolver = "{lab['dns']}"
allow_addresses = ["127.0.0.0/8"]
ca_bundle = "{lab['bundle']}"
timezone = "Asia/Taipei"

[schedule]
scan_every = "7d"
jitter = "0"
digest = "weekly"

[[notify]]
url = "{sink.url()}"
events = [{events}]
language = "en"

[[assets]]
name = "gw"
url = "tls://{NAME}:{lab['port']}"
kind = "api"
allowed_ports = [{lab['port']}]
""")

    def __call__(self, at: datetime, *args: str) -> tuple[int, str, str]:
        code = main(["--config", str(self.cfg), "--db", self.db, "--now", at.isoformat(), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def run_once(self, at: datetime) -> dict[str, Any]:
        code, out, err = self(at, "run", "--once", "--format", "json")
        assert code == 0, err
        doc: dict[str, Any] = json.loads(out)
        return doc


def digests(sink: HttpSink) -> list[dict[str, Any]]:
    return [m for m in sink.messages() if m["title"].startswith("posture weekly digest")]


def test_a_late_or_retried_digest_covers_the_week_ending_at_its_firing(
        tmp_path: Path, store_url: str, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with http_sink() as sink:
        posture = Posture(tmp_path, store_url, lab, sink, capsys)
        with up(lab):
            first = posture.run_once(MONDAY)  # the first scan, and the digest of this firing
        assert [s["status"] for s in first["scans"]] == ["complete"]
        assert datetime.fromisoformat(first["digest_firing"]) == MONDAY and len(digests(sink)) == 1
        code, out, _ = posture(MONDAY + DAY + 6 * 60 * MINUTE, "scan")  # Tue 15:00: unreachable
        assert code != 0 and "asset.unreachable" in out
        with up(lab):
            code, _, err = posture(MONDAY + 2 * DAY + 6 * 60 * MINUTE, "scan")  # Wed 15:00: fixed
            assert code == 0, err
            # posture was down at Monday 09:00; it runs on Wednesday 12:00 and the sink refuses the first send.
            sink.fail_first = len(sink.posts) + 1
            late = MONDAY + 9 * DAY + 3 * 60 * MINUTE
            doc = posture.run_once(late)
            assert datetime.fromisoformat(doc["digest_firing"]) == MONDAY + 7 * DAY
            assert [d["ok"] for d in doc["deliveries"]] == [False] and len(digests(sink)) == 1
            retried = posture.run_once(late + 5 * MINUTE)  # the retry, later still: the same window
            assert [d["ok"] for d in retried["deliveries"]] == [True]
        (_, second) = digests(sink)
    text = second["message"]
    # The week ending at the firing (Monday 09:00 to Monday 09:00), not the 7 days before the late run:
    # the finding opened on Tuesday and the failed scan are reported, with the fix on Wednesday.
    assert second["title"] == "posture weekly digest (2026-12-07 to 2026-12-14)", second["title"]
    assert "From 2026-12-07 09:00 to 2026-12-14 09:00 (Asia/Taipei)" in text, text
    assert "This week: 1 new, 1 fixed, 0 resolved by configuration" in text, text
    assert "Scans with problems this week: 1 failed or unreachable (gw)" in text, text
    assert "catching up" not in second["title"]
    with Store.open(store_url) as store:
        logged = deliveries.deliveries(store, event=DeliveryEvent.DIGEST)
    window = [(datetime.fromisoformat(d.payload["since"]), datetime.fromisoformat(d.payload["firing"]))
              for d in logged]
    assert window == [(MONDAY - 7 * DAY, MONDAY), (MONDAY, MONDAY + 7 * DAY)]  # logged with the firing

    # The "N more" command of such a digest rebuilds the same window (posture digest --since/--until).
    code, out, err = posture(late, "digest", "--since", "2026-12-07T09:00:00+08:00", "--until",
                             "2026-12-14T09:00:00+08:00", "--format", "json")
    assert code == 0, err
    rebuilt = json.loads(out)
    assert (rebuilt["totals"]["new"], rebuilt["totals"]["fixed"], rebuilt["totals"]["scans_failed"]) == (1, 1, 1)
    # `posture digest` itself is the week ending at --now, as documented.
    code, out, err = posture(late, "digest", "--format", "json")
    assert code == 0, err
    assert datetime.fromisoformat(json.loads(out)["week_start"]) == late - 7 * DAY


def test_after_firings_missed_one_digest_covers_everything_since_the_last_one_sent(
        tmp_path: Path, sqlite_url: str, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with http_sink() as sink:
        posture = Posture(tmp_path, sqlite_url, lab, sink, capsys)
        with up(lab):
            posture.run_once(MONDAY)
        posture(MONDAY + 3 * DAY, "scan")  # Thursday: unreachable (new finding, failed scan)
        with up(lab):
            posture(MONDAY + 10 * DAY, "scan")  # the Thursday after: fixed
            # Down across the firings of 12-14 and 12-21: one digest on Tuesday 12-22, for both weeks.
            doc = posture.run_once(MONDAY + 15 * DAY)
            assert datetime.fromisoformat(doc["digest_firing"]) == MONDAY + 14 * DAY
            nothing = posture.run_once(MONDAY + 15 * DAY + 60 * MINUTE)  # sent once
            assert nothing["digest_firing"] is None
        (_, caught_up) = digests(sink)
    assert caught_up["title"] == ("posture weekly digest (2026-12-07 to 2026-12-21; catching up: 2 periods "
                                  "since the last digest sent)"), caught_up["title"]
    text = caught_up["message"]
    assert "From 2026-12-07 09:00 to 2026-12-21 09:00 (Asia/Taipei)" in text, text
    assert "This week: 1 new, 1 fixed" in text and "1 failed or unreachable (gw)" in text, text


def test_a_person_reopening_a_finding_is_a_decision_in_the_digest(
        tmp_path: Path, sqlite_url: str, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with http_sink() as sink:
        posture = Posture(tmp_path, sqlite_url, lab, sink, capsys)
        with up(lab):
            posture.run_once(MONDAY)  # a complete scan, and this firing's digest
        code, out, _ = posture(MONDAY + DAY, "scan", "--format", "json")  # Tuesday: unreachable
        (fid,) = [f["id"] for f in json.loads(out)["scans"][0]["findings"] if f["check_id"] == "asset.unreachable"]
        code, _, err = posture(MONDAY + 2 * DAY, "findings", "accept", str(fid), "--reason", "compensating control",
                               "--until", "2027-06-30", "--by", "ciso")
        assert code == 0, err
        code, _, err = posture(MONDAY + 3 * DAY, "findings", "reopen", str(fid), "--reason", "auditor disagreed",
                               "--by", "auditor")
        assert code == 0, err
        code, out, err = posture(MONDAY + 7 * DAY, "digest", "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["totals"]["decided_accepted"] == 1 and doc["totals"]["decided_reopened"] == 1
        (gw,) = doc["assets"]
        assert [(d["decision"], d["by"], d["reason"]) for d in gw["decisions"]] == [
            ("accepted", "ciso", "compensating control"), ("reopened", "auditor", "auditor disagreed")]
        with up(lab):
            posture.run_once(MONDAY + 7 * DAY + MINUTE)  # the scheduled digest of Monday 12-14
        sent = digests(sink)[-1]
    assert sent["title"] == "posture weekly digest (2026-12-07 to 2026-12-14)", sent["title"]
    text = sent["message"]
    assert "Decisions this week: risk accepted 1, reopened 1" in text, text
    assert any(f"#{fid}: reopened, by auditor, reason: auditor disagreed" in ln for ln in text.splitlines()), text


@pytest.mark.parametrize("gone", ["fixed", "accepted", "false_positive"])
def test_a_failed_new_finding_alert_is_not_retried_once_the_finding_is_gone(
        gone: str, tmp_path: Path, store_url: str, lab: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    tuesday = MONDAY + DAY + 6 * 60 * MINUTE
    with http_sink(fail_first=1) as sink:
        posture = Posture(tmp_path, store_url, lab, sink, capsys, events='"alert"')
        code, out, _ = posture(tuesday, "scan", "--format", "json")  # unreachable: a new high finding
        (fid,) = [f["id"] for f in json.loads(out)["scans"][0]["findings"] if f["check_id"] == "asset.unreachable"]
        assert [p.status for p in sink.posts] == [500]  # its alert could not be delivered
        with up(lab):
            if gone == "fixed":
                code, _, err = posture(tuesday + 10 * MINUTE, "scan")  # the retry is due by then
            elif gone == "accepted":
                code, _, err = posture(tuesday + 10 * MINUTE, "findings", "accept", str(fid), "--reason",
                                       "compensating control", "--until", "2027-06-30", "--by", "ciso")
            else:
                code, _, err = posture(tuesday + 10 * MINUTE, "findings", "false-positive", str(fid), "--reason",
                                       "a maintenance window", "--by", "analyst")
            assert code == 0, err
            doc = posture.run_once(tuesday + 20 * MINUTE)
        # The fixing scan withdraws it itself (it sends due retries); else the cycle does.
        assert doc["deliveries"] == [] and doc["alerts_superseded"] == (0 if gone == "fixed" else 1), doc
        assert [p.status for p in sink.posts] == [500]  # never sent after the fact
    with Store.open(store_url) as store:
        (row,) = deliveries.deliveries(store, event=DeliveryEvent.ALERT)
    assert row.condition == f"new:{fid}:0" and row.state == DeliveryState.SUPERSEDED
