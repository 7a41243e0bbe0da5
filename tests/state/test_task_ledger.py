"""The ledger a scan task goes through (PostgreSQL fleets): a slot's scan stored once, a dead
attempt's scan marked interrupted, never left running; and migration 0009."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from state import migrate
from state.job_queue import JobQueue, JobState
from state.records import ScanStatus, Trigger
from state.store import Store
from state.task_ledger import TASK_LEASE, adopt, release_waiting
from tests.state.factory import T0, WWW, run, scan
from tests.state.test_jobs import KEY, LEASE, header

MINUTE = timedelta(minutes=1)


def finished(store: Store, owner: str, at: object = T0) -> None:
    """Run the adopted attempt of ``owner`` to a stored complete scan."""
    q = JobQueue(store, owner, TASK_LEASE)
    scan_id = q.start_scan(KEY, WWW, header())
    q.finish_scan(KEY, scan_id, scan(T0, [run("tls")], trigger=Trigger.SCHEDULED), T0 + MINUTE)


def test_a_slot_is_scanned_once_however_often_its_task_runs(store: Store) -> None:
    taken = adopt(store, KEY, "www", T0, "w1/job1", T0)
    assert taken.job is not None and (taken.job.state, taken.job.attempts) == (JobState.RUNNING, 1)
    finished(store, "w1/job1")
    again = adopt(store, KEY, "www", T0, "w2/job1", T0 + 2 * MINUTE)  # the same job, run again
    assert (again.job, again.why) == (None, "stored")
    assert [s.status for s in store.scans("www")] == [ScanStatus.COMPLETE]
    (job,) = JobQueue(store, "reader", LEASE).jobs()
    assert (job.state, job.owner, job.attempts) == (JobState.DONE, "w1/job1", 1)


def test_a_dead_attempts_scan_is_marked_interrupted_and_the_slot_taken_over(store: Store) -> None:
    assert adopt(store, KEY, "www", T0, "w1/job7", T0).job is not None
    dead_scan = JobQueue(store, "w1/job7", TASK_LEASE).start_scan(KEY, WWW, header())  # then kill -9
    taken = adopt(store, KEY, "www", T0, "w2/job7", T0 + 5 * MINUTE)
    assert taken.job is not None and taken.interrupted == dead_scan and taken.job.attempts == 2
    finished(store, "w2/job7")
    assert [s.status for s in store.scans("www")] == [ScanStatus.INTERRUPTED, ScanStatus.COMPLETE]
    assert not [s for s in store.scans() if s.status == ScanStatus.RUNNING]


def test_a_slot_that_keeps_killing_its_worker_is_given_up(store: Store) -> None:
    for i in range(3):
        assert adopt(store, KEY, "www", T0, f"w{i}/job1", T0 + i * MINUTE).job is not None
    last = adopt(store, KEY, "www", T0, "w9/job1", T0 + 9 * MINUTE)
    assert (last.job, last.why) == (None, "gave up")
    (job,) = JobQueue(store, "reader", LEASE).jobs()
    assert job.state == JobState.FAILED and "gave up after 3 attempts" in (job.error or "")


def test_a_live_lease_of_a_single_process_agent_is_respected(store: Store) -> None:
    daemon = JobQueue(store, "host/ns/42/99", LEASE)
    from state.job_queue import JobKind, Wanted

    assert daemon.claim([Wanted(KEY, JobKind.SCAN, T0, "www")], T0, 1)
    held = adopt(store, KEY, "www", T0, "w1/job1", T0 + MINUTE)
    assert held.job is None and held.why == "held by host/ns/42/99"
    assert adopt(store, KEY, "www", T0, "w1/job1", T0 + LEASE + MINUTE).job is not None  # its lease ran out


def test_a_slot_released_for_a_quiet_window_is_no_attempt(store: Store) -> None:
    assert adopt(store, KEY, "www", T0, "w1/job1", T0).job is not None
    assert release_waiting(store, KEY, "w1/job1", "quiet window")
    assert not release_waiting(store, KEY, "w1/job1", "quiet window")  # not held any more
    (job,) = JobQueue(store, "reader", LEASE).jobs()
    assert (job.state, job.attempts, job.error) == (JobState.PENDING, 0, "quiet window")


def test_migration_0009_installs_procrastinate_on_postgresql_only(store_url: str) -> None:
    with Store.open(store_url) as store:
        assert migrate.current_revision(store.engine) == "0011" == migrate.head_revision()
        with store.engine.connect() as conn:
            if store.dialect == "postgresql":
                assert conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar()
            else:
                names = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))]
                assert not [n for n in names if n.startswith("procrastinate")] and "jobs" in names
        if store.dialect != "postgresql":
            return
        queue = JobQueue(store, "old-daemon", LEASE)
        from state.job_queue import JobKind, Wanted

        assert queue.claim([Wanted(KEY, JobKind.SCAN, T0, "www")], T0, 1)
        assert queue.release(KEY)  # a pending row from before the fleet
        migrate.downgrade(store.engine, "0008")
        with store.engine.connect() as conn:
            assert not conn.execute(text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")).scalar()
        migrate.upgrade(store.engine)
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM procrastinate_jobs")).scalar() == 0
        (job,) = queue.jobs()  # nothing moved: the slot keeps its key for the scheduler
        assert (job.key, job.state) == (KEY, JobState.PENDING)


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_procrastinate_is_not_imported_on_sqlite(dialect: str, tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[schedule]\ndigest = "off"\n')
    code = ("import sys\nfrom agent.cli import main\n"
            f"main(['--config', {str(cfg)!r}, '--db', 'sqlite:///{tmp_path / 'p.db'}', 'run', '--once'])\n"
            "print('procrastinate' in sys.modules, 'agent.scheduling.fleet' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip().splitlines()[-1] == "False False", out.stdout + out.stderr
