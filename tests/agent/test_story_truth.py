"""Issue 14, items 1, 2 and 6, told with --now on SQLite and PostgreSQL.

1. An asset nothing answers on is not fine: a closed port and a configured name the
   (loopback, non-forwarding) DNS does not know make failed scans, ``asset.unreachable``
   alerted at once through the local sink, cadence "never scanned" then warning and
   overdue, and a scan that reaches the service again fixes the finding.
2. A scan that skipped probes is not complete: a trading site scanned by hand in its quiet
   window is partial (ports and leak skipped, edge only in part), shown so in the scan
   table and JSON, ``history`` and the report; the scheduler runs its full scan after the
   window, and that one counts for cadence.
6. The first run scans: ``run --once`` on a new database scans every never-scanned asset
   despite the jitter; afterwards jitter spreads runs, and what waits is listed with why
   (quiet window, retry, jitter, lease).
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
from probes.catalog import load_catalog
from schedules.timing import jitter_for
from tests.support.certs import Authority, write_pair
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, closed_port, http_server, server_context
from tests.support.sinks import HttpSink, http_sink

TZ = ZoneInfo("Asia/Taipei")
HOSTS = {"www": "127.0.0.71", "down": "127.0.0.72", "gw": "127.0.0.73"}
DAY = timedelta(days=1)
UNREACHABLE = load_catalog()["asset.unreachable"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = tmp_path_factory.mktemp("truth")
    ca = Authority("truth root")
    pairs = {}
    for name in HOSTS:
        leaf = ca.leaf(f"{name}.truth.test")
        pairs[name] = write_pair(d, name, ca.chain_pem(leaf), leaf.key_pem)
    # gone.truth.test is configured but has no record: the DNS (zone "test" is local) says NXDOMAIN.
    dns = DnsServer({f"{h}.truth.test": a for h, a in HOSTS.items()}).start()
    yield {"pairs": pairs, "bundle": str(ca.write_trust(d / "ca.pem")), "dns": dns.address}
    dns.stop()


def config(pki: dict[str, Any], ports: dict[str, int], hook: str) -> str:
    declared = 'declared = { ddos = "ISP clean pipe", waf = "vendor WAF" }'
    return f"""
[agent]
resolver = "{pki['dns']}"
ca_bundle = "{pki['bundle']}"

[social]
browser = false

[schedule]
scan_every = "365d"
jitter = "6h"

[[notify]]
url = "{hook}"

[[assets]]
name = "www"
url = "https://www.truth.test:{ports['www']}/"
active_probes = false
{declared}

[[assets]]
name = "down-site"
url = "https://down.truth.test:{ports['down']}/"
active_probes = false

[[assets]]
name = "gone"
url = "https://gone.truth.test/"
active_probes = false

[[assets]]
name = "gw"
url = "https://gw.truth.test:{ports['gw']}/"
kind = "trading"
quiet = ["daily 08:00-18:00"]
scan_every = "1d"
ports = [{ports['gw_closed']}]
{declared}

[[assets]]
name = "night"
url = "tls://night.truth.test:7002"
kind = "trading"
quiet = ["daily 00:00-24:00"]
"""


class Cli:
    def __init__(self, cfg: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.cfg, self.db, self.capsys = cfg, db, capsys
        self.err = ""

    def __call__(self, at: datetime, *args: str, code: int | None = 0) -> str:
        rc = main(["--config", str(self.cfg), "--db", self.db, "--now", at.isoformat(), *args])
        out, self.err = self.capsys.readouterr()
        assert code is None or rc == code, f"posture {' '.join(args)} exited {rc}: {self.err}"
        return out

    def json(self, at: datetime, *args: str, code: int | None = 0) -> Any:
        return json.loads(self(at, *args, "--format", "json", code=code))


def site(pki: dict[str, Any], name: str, port: int = 0) -> Any:
    cert, key = pki["pairs"][name]
    page = Reply(200, "<html><body>券商</body></html>", {"Strict-Transport-Security": "max-age=63072000"})
    return http_server({"/": page}, host=HOSTS[name], port=port, tls=server_context(cert, key))


def sink_text(hook: HttpSink) -> str:
    return "\n".join(f"{m['title']}\n{m['message']}" for m in hook.messages())


def by(items: list[dict[str, Any]], key: str = "asset") -> dict[str, Any]:
    return {x[key]: x for x in items}


def steps(doc: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {p["probe"]: (p["outcome"], p["reason"]) for p in doc["probes"]}


def at_local(day: datetime, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day.astimezone(TZ).date(), time(hour, minute), TZ)


def test_truth_of_the_record(pki: dict[str, Any], store_url: str, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    with ExitStack() as stack:
        hook = stack.enter_context(http_sink())
        www = stack.enter_context(site(pki, "www"))
        gw = stack.enter_context(site(pki, "gw"))
        ports = {"www": www.port, "gw": gw.port, "down": closed_port(HOSTS["down"]),
                 "gw_closed": closed_port(HOSTS["gw"])}
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config(pki, ports, hook.url("json")))
        cli = Cli(cfg, store_url, capsys)
        d0 = at_local(datetime.now(UTC) + DAY, 10)  # 10:00 local: gw is in its quiet window
        down_url = f"https://down.truth.test:{ports['down']}/"
        gw_url = f"https://gw.truth.test:{ports['gw']}/"

        # -- 6. The first run on a new database scans every asset never scanned, jitter or not.
        first = cli.json(d0, "run", "--once", code=1)  # two scans failed: exit 1
        scans = by(first["scans"])
        assert set(scans) == {"www", "down-site", "gone"}
        assert scans["www"]["status"] == "complete", scans["www"]
        assert {p["outcome"] for p in scans["www"]["probes"]} == {"ran"}
        # -- 1. Nothing answers: failed, with the reason, and alerted at once.
        assert scans["down-site"]["status"] == "failed"
        assert "refused" in scans["down-site"]["reason"] and "nothing answered" in scans["down-site"]["reason"]
        assert scans["gone"]["status"] == "failed" and "NXDOMAIN" in scans["gone"]["reason"]
        assert steps(scans["gone"])["reach"][0] == "failed"
        assert steps(scans["gone"])["tls"] == ("skipped", f"not run: {scans['gone']['reason']}")
        assert "scheduled scan of down-site failed" in cli.err and "NXDOMAIN" in cli.err
        # The trading site waits out its quiet window: listed, with until when and why.
        (waiting,) = [w for w in first["waiting"] if w["asset"] == "gw"]
        assert waiting["reason"] == "quiet window" and waiting["detail"] == "daily 08:00-18:00"
        assert datetime.fromisoformat(waiting["until"]) == at_local(d0, 18)
        sent = sink_text(hook)
        assert UNREACHABLE.title_zh in sent and "down-site" in sent and "gone" in sent
        # 2. Quiet windows that leave no room for a complete scan before the deadline: the cadence warns now.
        assert "night" not in scans and [w["reason"] for w in first["waiting"] if w["asset"] == "night"] == [
            "quiet window"]
        assert "night：每半年弱點掃描將於" in sent and "靜默時段使期限前無法完成完整掃描" in sent
        found = cli.json(d0, "findings")["findings"]
        unreachable = {f["asset"]: f for f in found if f["check_id"] == "asset.unreachable"}
        assert set(unreachable) == {"down-site", "gone"}
        assert all(f["severity"] == "high" and f["key"] == a for a, f in unreachable.items())

        text = cli(d0 + timedelta(minutes=1), "run", "--once")
        assert "no scan due" not in text
        assert "gw: waiting until" in text and "(quiet window: daily 08:00-18:00)" in text
        assert "down-site: waiting until" in text and "(retry: retry after an incomplete scan)" in text

        # -- 1. A manual scan of the unreachable asset: failed, exit 1, the reason printed.
        table = cli(d0 + timedelta(minutes=10), "scan", down_url, code=1)
        assert "[failed]" in table and "reason: nothing answered" in table and "asset.unreachable" in table
        assert "no findings" not in table
        assert "reach failed" in table and "tls skipped (not run: the service could not be reached)" in table
        assert f"scan of {down_url} failed: nothing answered" in cli.err
        (doc,) = cli.json(d0 + timedelta(minutes=11), "scan", down_url, code=1)["scans"]
        assert doc["status"] == "failed" and doc["counts_for_cadence"] is False
        assert doc["reason"].startswith("nothing answered") and doc["findings"][0]["check_id"] == "asset.unreachable"
        assert steps(doc)["reach"][0] == "failed" and steps(doc)["http"][0] == "skipped"

        # -- 2. By hand in the quiet window: partial, and it says what was skipped and why.
        noon = at_local(d0, 12)
        table = cli(noon, "scan", gw_url)
        assert "[partial]" in table and "ports skipped (quiet hours:" in table and "leak skipped" in table
        (doc,) = cli.json(noon + timedelta(minutes=1), "scan", gw_url)["scans"]
        done = steps(doc)
        assert doc["status"] == "partial" and doc["counts_for_cadence"] is False
        assert done["ports"][0] == "skipped" and done["ports"][1].startswith("quiet hours: ")
        assert done["leak"][0] == "skipped" and done["edge"][0] == "partly skipped"
        assert done["tls"] == ("ran", None) and done["reach"] == ("ran", None)
        history = cli(noon + timedelta(minutes=2), "history", "gw")
        assert "partial (manual, all probes asked for; does not count for cadence)" in history
        assert "complete (manual" not in history and "ports skipped (quiet hours:" in history

        # The scheduler makes the complete scan happen after the window.
        evening = cli.json(at_local(d0, 18, 1), "run", "--once", code=None)
        gw_scan = by(evening["scans"])["gw"]
        assert gw_scan["status"] == "complete", gw_scan
        assert {p["outcome"] for p in gw_scan["probes"]} == {"ran"}
        hist = cli.json(at_local(d0, 18, 5), "history", "gw")["history"]
        gw_scans = [h for h in hist if h["type"] == "scan"]
        assert [(h["status"], h["trigger"], h["counts_for_cadence"]) for h in gw_scans] == [
            ("partial", "manual", False), ("partial", "manual", False), ("complete", "scheduled", True)]
        assert by(gw_scans[0]["probes"], "probe")["ports"]["outcome"] == "skipped"
        complete_at = datetime.fromisoformat(gw_scans[-1]["finished_at"].replace("Z", "+00:00"))

        # -- 6. Jitter spreads the later runs: gw's next scan waits for it, and says so.
        offset = jitter_for("gw", timedelta(hours=6))
        assert offset > timedelta(minutes=2)  # deterministic per name
        due = complete_at + DAY + offset
        cycle = cli.json(complete_at + DAY + timedelta(minutes=1), "run", "--once", code=None)
        assert "gw" not in by(cycle["scans"])
        (waiting,) = [w for w in cycle["waiting"] if w["asset"] == "gw"]
        assert waiting["reason"] == "jitter" and datetime.fromisoformat(waiting["until"]) == due
        later = cli.json(due + timedelta(minutes=1), "run", "--once", code=None)
        assert by(later["scans"])["gw"]["status"] == "complete"

        # -- 6. Another agent holds gw's job: run --once leaves it and says whose lease it waits for.
        from agent.scheduling.scan_jobs import scan_key
        from state.job_queue import JobKind, JobQueue, Wanted
        from state.store import Store

        hist = cli.json(due + timedelta(minutes=5), "history", "gw")["history"]
        finished = [h for h in hist if h["type"] == "scan"][-1]["finished_at"]
        last = datetime.fromisoformat(finished.replace("Z", "+00:00"))
        slot = last + DAY + offset
        held_at = slot + timedelta(minutes=1)
        if at_local(held_at, 8) <= held_at.astimezone(TZ) < at_local(held_at, 18):
            pytest.fail("the jittered slot fell in the quiet window; pick another asset name")
        with Store.open(store_url) as store:
            other = JobQueue(store, "elsewhere.example/4026531836/4242/1", timedelta(minutes=5))
            assert other.claim([Wanted(scan_key("gw", slot), JobKind.SCAN, slot, "gw")], held_at, 1)
        cycle = cli.json(held_at, "run", "--once", code=None)
        assert "gw" not in by(cycle["scans"])
        (waiting,) = [w for w in cycle["waiting"] if w["asset"] == "gw"]
        assert waiting["reason"] == "lease" and "elsewhere.example" in waiting["detail"]
        assert datetime.fromisoformat(waiting["until"]) == held_at + timedelta(minutes=5)
        assert "(lease: held by elsewhere.example" in cli(held_at + timedelta(seconds=30), "run", "--once", code=None)

        # -- 1. Cadence: never "ok" without a complete scan. Fifteen days on, "gone" is never scanned.
        digest = by(cli.json(d0 + 15 * DAY, "digest")["assets"])
        gone = digest["gone"]["cadence"]
        assert gone["state"] == "never_scanned" and gone["last_complete"] is None
        assert gone["last_scan"] is not None  # it was scanned (and failed): the record says so
        assert digest["www"]["cadence"]["state"] == "ok" and digest["www"]["cadence"]["last_scan"] is not None
        assert digest["www"]["cadence"]["no_room"] is None
        assert "leave no time for a complete scan" in digest["night"]["cadence"]["no_room"]
        text = cli(d0 + 15 * DAY, "digest")
        assert "從未完整掃描" in text and "正常：上次完整掃描 從未" not in text
        # ... and it goes to warning, then overdue, counted from when it was added.
        assert by(cli.json(d0 + 175 * DAY, "digest")["assets"])["gone"]["cadence"]["state"] == "warning"
        assert by(cli.json(d0 + 190 * DAY, "digest")["assets"])["gone"]["cadence"]["state"] == "overdue"

        # -- The report says the same.
        when = (d0 + 15 * DAY).date().isoformat()
        report = cli.json(d0 + 15 * DAY, "report", "--from", d0.date().isoformat(), "--to", when)
        assets = by(report["assets"], "name")
        assert assets["gone"]["cadence"]["state"] == "never_scanned"
        assert all(not s["counts_for_cadence"] and s["status"] == "failed" for s in assets["gone"]["scans"])
        gw_report = assets["gw"]["scans"]
        assert [s["counts_for_cadence"] for s in gw_report[:2]] == [False, False]
        assert by(gw_report[0]["probes"], "probe")["ports"]["outcome"] == "skipped"
        assert any(s["counts_for_cadence"] for s in gw_report)
        rows = list(csv.reader(io.StringIO(cli(d0 + 15 * DAY, "report", "--from", d0.date().isoformat(),
                                               "--to", when, "--format", "csv"))))
        header = rows[0]
        gone_rows = [r for r in rows[1:] if r[0] == "gone"]
        assert gone_rows and {r[header.index("掃描週期狀態")] for r in gone_rows} == {"從未完整掃描"}
        html = cli(d0 + 15 * DAY, "report", "--from", d0.date().isoformat(), "--to", when, "--format", "html")
        assert "從未完整掃描" in html and "quiet hours:" in html

        # -- 1. Fixed by the next scan that reaches the service.
        with site(pki, "down", port=ports["down"]):
            (doc,) = cli.json(d0 + 16 * DAY, "scan", down_url, code=None)["scans"]
        assert doc["status"] in ("complete", "partial") and steps(doc)["reach"] == ("ran", None)
        fixed = cli.json(d0 + 16 * DAY, "findings", "--status", "fixed")["findings"]
        assert [(f["asset"], f["check_id"]) for f in fixed if f["check_id"] == "asset.unreachable"] == [
            ("down-site", "asset.unreachable")]
