"""What the one-process daemon runs besides scans, the fleet's elected scheduler runs too.

``posture run`` with ``[workers] fleet = true`` on PostgreSQL: the phishing watch on its own
schedule, the dead-man alert (a stretch with no completed evaluation cycle), and the
``[metrics]`` endpoint, whose scan counters include the scans its in-process worker ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from state.job_queue import JobKind, JobState
from tests.agent.daemon_lab import Agent, Db, Lab, asset_toml, make_lab, wait_for
from tests.agent.test_metrics import scrape
from tests.agent.test_watch_story import FIRM, server
from tests.support.pg import pg_url  # noqa: F401  (fixture)
from tests.support.servers import closed_port
from tests.support.sinks import http_sink

pytestmark = pytest.mark.postgres

FLEET = "[workers]\nfleet = true\nstall_timeout = 3\n"
A = "a.daemon.test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with make_lab(tmp_path_factory.mktemp("fleet-vigil-lab")) as made:
        yield made


def test_the_fleet_scheduler_watches_on_its_schedule(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    dns = server()
    db = Db(pg_url)
    cfg = tmp_path / "posture.toml"
    cfg.write_text(f'[agent]\nresolver = "{dns.address}"\n\n[schedule]\ndigest = "off"\n\n'
                   f'[watch]\ndomains = ["{FIRM}"]\nevery = "3s"\nrate = 5000\nconcurrency = 32\n\n{FLEET}')
    agent = Agent(tmp_path, cfg, pg_url, name="fleet").start()
    try:
        wait_for("two watches", lambda: len(db.scans(f"watch:{FIRM}")) >= 2, timeout=45, agents=(agent,))
        assert agent.stop() == 0
        scans = db.scans(f"watch:{FIRM}")
    finally:
        agent.cleanup()
        db.close()
        dns.stop()
    assert all(s.status.value == "complete" and s.trigger.value == "scheduled" for s in scans)
    starts = sorted(s.started_at for s in scans)
    assert all((b - a).total_seconds() >= 2.5 for a, b in pairwise(starts)), starts
    log = agent.log()
    assert " elected: " in log and f"watch of dns://{FIRM}: complete" in log and "Traceback" not in log


def test_the_fleet_scheduler_reports_a_stretch_without_cycles(tmp_path: Path, pg_url: str) -> None:  # noqa: F811
    """No assets: the dead-man's limit is twice the default week. After fifteen days with no cycle
    (a fleet that was down), the scheduler elected next says so at once, in its log and to the
    channels, before its own first cycle."""
    with http_sink() as sink:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(f'[[notify]]\nurl = "{sink.url()}"\nlanguage = "en"\n\n'
                       f'[schedule]\ndigest = "off"\n\n{FLEET}')
        db = Db(pg_url)
        agents: list[Agent] = []
        try:
            first = Agent(tmp_path, cfg, pg_url, name="first").start()
            agents.append(first)
            wait_for("a completed cycle", lambda: any(j.kind == JobKind.CYCLE and j.state == JobState.DONE
                                                      for j in db.jobs()), agents=(first,))
            assert first.stop() == 0
            stale = "posture: no cycle completed"
            assert not [m for m in sink.messages() if m.get("title") == stale]  # the first run had no gap
            later = datetime.now(UTC) + timedelta(days=15)
            second = Agent(tmp_path, cfg, pg_url, now=later.isoformat(), name="second").start()
            agents.append(second)
            wait_for("the dead-man alert", lambda: any(m.get("title") == stale for m in sink.messages()),
                     agents=(second,))
            assert second.stop() == 0
        finally:
            for a in agents:
                a.cleanup()
            db.close()
    assert "posture: dead-man: no cycle completed since" in second.log()
    assert len([m for m in sink.messages() if m.get("title") == stale]) == 1  # once per stretch


def test_the_fleet_scheduler_serves_metrics_with_its_workers_scans(lab: Lab, tmp_path: Path,
                                                                   pg_url: str) -> None:  # noqa: F811
    listen = f"127.0.0.1:{closed_port()}"
    with lab.gates(A) as g:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(f'[agent]\nresolver = "{lab.dns}"\nrequest_timeout = 20\n\n'
                       f'[schedule]\nscan_every = "1h"\njitter = "0"\ndigest = "off"\n\n'
                       f'[metrics]\nlisten = "{listen}"\n\n{FLEET}\n{asset_toml(A, g[A])}')
        db = Db(pg_url)
        agent = Agent(tmp_path, cfg, pg_url, name="fleet").start()
        try:
            wait_for("a stored scan", lambda: bool(db.scans(A)) and db.scans(A)[0].status.value != "running",
                     timeout=60, agents=(agent,))

            def families() -> dict[str, list[tuple[dict[str, str], float]]]:
                return {f.name: [(s.labels, s.value) for s in f.samples]
                        for f in text_string_to_metric_families(scrape(listen))}

            wait_for("the scan counted", lambda: any(labels.get("asset") == A
                                                     for labels, _ in families().get("posture_scans", [])),
                     timeout=30, agents=(agent,))
            seen = families()
            assert agent.stop() == 0
        finally:
            agent.cleanup()
            db.close()
    assert seen["posture_jobs_running"] == [({}, 0.0)]
    assert "posture_job_queue_depth" in seen and "posture_findings_open" in seen
    assert [labels for labels, _ in seen["posture_asset_last_scan_timestamp_seconds"]
            if labels.get("asset") == A]


def test_a_busy_metrics_port_stops_the_fleet_scheduler_with_one_line(lab: Lab, tmp_path: Path,
                                                                     pg_url: str) -> None:  # noqa: F811
    import socket

    with socket.create_server(("127.0.0.1", 0)) as busy, lab.gates(A) as g:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(f'[agent]\nresolver = "{lab.dns}"\n\n[metrics]\nlisten = "127.0.0.1:{busy.getsockname()[1]}"\n\n'
                       f'{FLEET}\n{asset_toml(A, g[A])}')
        agent = Agent(tmp_path, cfg, pg_url, name="busy").start()
        try:
            assert agent.wait(60) == 2
        finally:
            agent.cleanup()
    lines = agent.lines()
    assert lines[-1].startswith("posture: [metrics] listen") and "cannot listen" in lines[-1], agent.log()
    assert "Traceback" not in agent.log()
