"""Crash safety: SIGTERM and kill -9 mid-scan, restarts, downtime, and two daemons on one PostgreSQL.

A held gate makes a scan hang mid-way (the TLS handshake never gets an answer), so the
daemon can be stopped or killed while its scan row is RUNNING.
"""

from __future__ import annotations

import itertools
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from state.job_queue import JobKind, JobState
from tests.agent.daemon_lab import Agent, Db, Lab, asset_toml, config_toml, make_lab, wait_for
from tests.support.sinks import http_sink

WWW, SLOW = "a.daemon.test", "b.daemon.test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with make_lab(tmp_path_factory.mktemp("daemon-crash-lab")) as made:
        yield made


def statuses(db: Db, asset: str) -> list[str]:
    return [s.status.value for s in db.scans(asset)]


def running_scan(db: Db, asset: str) -> bool:
    return "running" in statuses(db, asset)


def test_sigterm_mid_scan_keeps_it_as_interrupted_and_the_restart_runs_it(lab: Lab, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with lab.gates(SLOW) as g:
        g[SLOW].hold.set()
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config_toml(lab.dns, lab.ca, asset_toml(SLOW, g[SLOW]), every="1h"))
        db = Db(url)
        first = Agent(tmp_path, cfg, url, name="first").start()
        try:
            wait_for("the hanging scan", lambda: running_scan(db, SLOW) and g[SLOW].connections, agents=(first,))
            first.send(signal.SIGINT)  # Ctrl-C in a terminal: the same as systemd's SIGTERM
            wait_for("the grace period", lambda: "waiting up to 10s for 1 running scan(s)" in first.log(),
                     agents=(first,))
            first.send(signal.SIGTERM)  # a second signal does not wait for the grace period
            assert first.wait(10) == 0
            assert statuses(db, SLOW) == ["interrupted"]
            (job,) = db.jobs(SLOW)
            assert (job.state, job.attempts, job.owner) == (JobState.PENDING, 1, None)
            g[SLOW].release()
            second = Agent(tmp_path, cfg, url, name="second").start()
            try:
                wait_for("the job's second run", lambda: db.complete(SLOW), agents=(second,))
                assert second.stop() == 0
            finally:
                second.cleanup()
            assert statuses(db, SLOW) == ["interrupted", "complete"]
            (job,) = db.jobs(SLOW)
            assert (job.state, job.attempts, job.scan_id) == (JobState.DONE, 2, db.complete(SLOW)[0].id)
        finally:
            first.cleanup()
            db.close()
    assert "posture: SIGINT: stopping (no new scans; 1 running)" in first.log()
    assert "posture: SIGTERM again: cancelling running scans now" in first.log()
    assert f"posture: scan of {SLOW} interrupted; it runs again at the next start" in first.log()
    # Every line is posture's own: no asyncio internals about futures nobody read.
    assert "never retrieved" not in first.log(), first.log()


def test_kill_9_and_restart_neither_lose_nor_repeat_work_and_downtime_runs_each_job_once(
        lab: Lab, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with lab.gates(WWW, SLOW) as g, http_sink() as sink:
        g[SLOW].hold.set()
        cfg = tmp_path / "posture.toml"
        assets = asset_toml(WWW, g[WWW]) + asset_toml(SLOW, g[SLOW])
        cfg.write_text(config_toml(lab.dns, lab.ca, assets, every="1h"))
        db = Db(url)
        agents: list[Agent] = []
        try:
            first = Agent(tmp_path, cfg, url, name="first").start()
            agents.append(first)
            wait_for("one finished and one hanging scan",
                     lambda: db.complete(WWW) and running_scan(db, SLOW) and g[SLOW].connections, agents=(first,))
            first.kill9()
            (held,) = db.jobs(SLOW)
            assert held.state == JobState.RUNNING and held.owner and f"/{first.pid}/" in held.owner
            g[SLOW].release()

            second = Agent(tmp_path, cfg, url, name="second").start()
            agents.append(second)
            wait_for("the killed job's second run", lambda: db.complete(SLOW), agents=(second,))
            assert second.stop() == 0
            assert statuses(db, SLOW) == ["interrupted", "complete"]
            assert statuses(db, WWW) == ["complete"]  # finished work is not repeated
            (slow_job,) = db.jobs(SLOW)
            (www_job,) = db.jobs(WWW)
            assert (slow_job.state, slow_job.attempts) == (JobState.DONE, 2)
            assert (www_job.state, www_job.attempts) == (JobState.DONE, 1)
            assert f"posture: took back {held.key} from {held.owner}, scan {held.scan_id} marked interrupted" \
                in second.log()

            # Five periods of downtime: each asset's missed scan runs once, not five times,
            # and the dead-man timer reports the gap (no cycle for over twice the period).
            # The evaluation cycle (issue 9's alerts and digest) runs too: a digest every minute.
            cfg.write_text(config_toml(lab.dns, lab.ca, assets, every="1h", schedule='digest = "* * * * *"',
                                       top=f'[[notify]]\nurl = "{sink.url()}"\nlanguage = "en"\n\n'))
            later = datetime.now(UTC) + timedelta(hours=5)
            third = Agent(tmp_path, cfg, url, now=later.isoformat(), name="third").start()
            agents.append(third)
            wait_for("one catch-up scan each", lambda: len(db.complete(WWW)) == 2 and len(db.complete(SLOW)) == 2,
                     agents=(third,))
            wait_for("the dead-man alert", lambda: any(m.get("title") == "posture: no cycle completed"
                                                       for m in sink.messages()), agents=(third,))
            wait_for("the digest", lambda: any(str(m.get("title")).startswith("posture weekly digest")
                                                  for m in sink.messages()),
                     agents=(third,))
            assert third.stop() == 0
        finally:
            for a in agents:
                a.cleanup()
        try:
            assert len(db.complete(WWW)) == 2 and len(db.complete(SLOW)) == 2
            assert not [s for s in db.scans() if s.status.value == "running"]
            scan_jobs = [j for j in db.jobs() if j.kind == JobKind.SCAN]
            assert Counter(j.asset for j in scan_jobs) == {WWW: 2, SLOW: 2}
            assert all(j.state == JobState.DONE for j in scan_jobs)
        finally:
            db.close()
    assert "posture: dead-man: no cycle completed since" in third.log()


@pytest.mark.postgres
def test_two_daemons_on_one_postgresql_split_the_work_without_doubles(lab: Lab, tmp_path: Path,
                                                                      pg_url: str) -> None:
    names = [f"{c}.daemon.test" for c in "abcdef"]
    with lab.gates(*names) as g:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config_toml(lab.dns, lab.ca, "".join(asset_toml(n, g[n]) for n in names), every="2s"))
        db = Db(pg_url)  # migrates first: the two daemons then start at the same moment
        pair = [Agent(tmp_path, cfg, pg_url, name=f"agent{i}").start() for i in (1, 2)]
        try:
            wait_for("three scans of every asset", lambda: all(len(db.complete(n)) >= 3 for n in names),
                     timeout=30, agents=tuple(pair))
            assert [a.stop() for a in pair] == [0, 0]
        finally:
            for a in pair:
                a.cleanup()
        try:
            scans = db.scans()
            jobs = [j for j in db.jobs() if j.kind == JobKind.SCAN]
            assert all(s.status.value == "complete" for s in scans)
            # Every scan belongs to exactly one job, and every job ran exactly once.
            assert sorted(j.scan_id for j in jobs if j.scan_id is not None) == sorted(s.id for s in scans)
            assert all(j.state == JobState.DONE and j.attempts == 1 for j in jobs)
            for n in names:  # no two scans of one asset inside one period
                mine = db.scans(n)
                for before, after in itertools.pairwise(mine):
                    assert before.finished_at is not None
                    assert after.started_at - before.finished_at >= timedelta(seconds=1.95)
            owners = Counter(str(j.owner).split("/")[2] for j in jobs)
            assert set(owners) == {str(a.pid) for a in pair}  # both did part of the work
            cycles = [j for j in db.jobs() if j.kind == JobKind.CYCLE]
            assert len({j.key for j in cycles}) == len(cycles) and all(j.attempts == 1 for j in cycles)
        finally:
            db.close()
