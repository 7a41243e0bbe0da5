"""``agent.scheduling.scan_jobs.run_due_scans``: the job-claimed scan step any agent process runs (daemon or once)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import config_hash, parse_config
from agent.scanning.service import ScanRequest, register_assets, scan_options
from agent.scheduling.scan_jobs import run_due_scans
from agent.session import Session
from state.job_queue import JobQueue, JobState
from state.records import ScanStatus, Trigger
from state.store import Store
from tests.agent.daemon_lab import Lab, asset_toml, config_toml, make_lab

A, B, C = "a.daemon.test", "b.daemon.test", "c.daemon.test"
LEASE = timedelta(minutes=5)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with make_lab(tmp_path_factory.mktemp("jobs-lab")) as made:
        yield made


async def test_two_agents_run_each_due_scan_once_and_nothing_twice(lab: Lab, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with lab.gates(A, B, C) as g:
        cfg = parse_config(config_toml(lab.dns, lab.ca, "".join(asset_toml(n, g[n]) for n in (A, B, C)), every="1h"))
        session = Session(cfg, config_hash(cfg), url, None)
        opts = dataclasses.replace(scan_options(session, ScanRequest()), trigger=Trigger.SCHEDULED)
        now = datetime.now(UTC)
        with Store.open(url) as one, Store.open(url) as two:
            register_assets(one, cfg.asset_specs(), now - timedelta(minutes=1))
            first, second = JobQueue(one, "agent-one", LEASE), JobQueue(two, "agent-two", LEASE)
            done = await asyncio.gather(run_due_scans(cfg, first, opts, now), run_due_scans(cfg, second, opts, now))
            assert sorted(o.asset.name for batch in done for o in batch) == [A, B, C]
            assert all(o.record.status == ScanStatus.COMPLETE for batch in done for o in batch)
            # Scanned: nothing is due again within the hour, whoever asks.
            assert await run_due_scans(cfg, second, opts, now + timedelta(minutes=30)) == []
            jobs = first.jobs()
            assert len(jobs) == 3 and all(j.state == JobState.DONE and j.attempts == 1 for j in jobs)
            assert sorted(j.scan_id for j in jobs) == sorted(s.id for s in one.scans())
            assert {s.trigger for s in one.scans()} == {Trigger.SCHEDULED}
            # An hour later each asset is due once more.
            later = await run_due_scans(cfg, first, opts, datetime.now(UTC) + timedelta(hours=1, seconds=5))
            assert sorted(o.asset.name for o in later) == [A, B, C]
