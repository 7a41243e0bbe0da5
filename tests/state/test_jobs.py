"""Claiming jobs with a lease: one winner per job, recovery of a dead agent's work, no repeats."""

from __future__ import annotations

import threading
from datetime import timedelta

from state.job_queue import JobKind, JobQueue, JobState, Wanted
from state.lifecycle import ScanHeader
from state.records import ScanStatus, Trigger
from state.store import Store
from tests.state.factory import T0, WWW, run, scan

LEASE = timedelta(minutes=5)
KEY = "scan:www:2025-03-03T01:00:00+00:00"
WANT = [Wanted(KEY, JobKind.SCAN, T0, "www")]


def header(at: object = T0) -> ScanHeader:
    return ScanHeader(started_at=T0, trigger=Trigger.SCHEDULED, full=True, forced_active=False,
                      posture_version="0.1.0", catalog_version="2025.1", config_hash="sha256:cafe")


def test_one_agent_wins_a_claim_and_done_work_is_not_claimed_again(store: Store) -> None:
    a, b = JobQueue(store, "agent-a", LEASE), JobQueue(store, "agent-b", LEASE)
    (job,) = a.claim(WANT, T0, 10)
    assert (job.key, job.state, job.owner, job.attempts) == (KEY, JobState.RUNNING, "agent-a", 1)
    assert job.lease_until == T0 + LEASE and job.claimed_at == T0
    assert b.claim(WANT, T0, 10) == []
    assert not b.complete(KEY, T0 + timedelta(minutes=1))  # not b's to settle
    assert a.complete(KEY, T0 + timedelta(minutes=1))
    assert a.claim(WANT, T0 + timedelta(minutes=2), 10) == []
    assert b.claim(WANT, T0 + timedelta(hours=1), 10) == []
    (info,) = a.jobs()
    assert (info.state, info.attempts, info.finished_at) == (JobState.DONE, 1, T0 + timedelta(minutes=1))


def test_claims_the_earliest_due_up_to_the_limit(store: Store) -> None:
    q = JobQueue(store, "a", LEASE)
    wanted = [Wanted(f"scan:a{i}:x", JobKind.SCAN, T0 + timedelta(minutes=i), f"a{i}") for i in (3, 1, 2)]
    assert [j.key for j in q.claim(wanted, T0 + timedelta(hours=1), 2)] == ["scan:a1:x", "scan:a2:x"]
    assert [j.key for j in q.claim(wanted, T0 + timedelta(hours=1), 2)] == ["scan:a3:x"]
    assert q.claim([], T0, 5) == [] and q.claim(wanted, T0, 0) == []


def test_a_job_whose_lease_ran_out_runs_again_once(store: Store) -> None:
    a, b = JobQueue(store, "agent-a", LEASE), JobQueue(store, "agent-b", LEASE)
    a.claim(WANT, T0, 1)
    scan_id = a.start_scan(KEY, WWW, header())
    assert store.scan(scan_id).scan.status == ScanStatus.RUNNING
    assert b.recover(T0 + LEASE - timedelta(seconds=1)) == []  # still leased
    (rec,) = b.recover(T0 + LEASE + timedelta(seconds=1))
    assert (rec.key, rec.owner, rec.state, rec.scan_id) == (KEY, "agent-a", JobState.PENDING, scan_id)
    detail = store.scan(scan_id).scan
    assert detail.status == ScanStatus.INTERRUPTED and detail.finished_at == T0 + LEASE + timedelta(seconds=1)
    later = T0 + LEASE + timedelta(seconds=2)
    (again,) = b.claim(WANT, later, 1)
    assert (again.owner, again.attempts, again.scan_id) == ("agent-b", 2, scan_id)
    assert b.recover(later) == [] and a.claim(WANT, later, 1) == []
    # The old agent wakes up: it holds nothing any more, but what it scanned is still kept.
    assert not a.complete(KEY, later) and not a.renew([KEY], later)
    stored = a.finish_scan(KEY, scan_id, scan(T0, [run("tls")], trigger=Trigger.SCHEDULED), later)
    assert stored.scan_id != scan_id and b.get(KEY) is not None and b.get(KEY).owner == "agent-b"  # type: ignore[union-attr]
    new_id = b.start_scan(KEY, WWW, header())
    b.finish_scan(KEY, new_id, scan(T0 + timedelta(minutes=6), [run("tls")], trigger=Trigger.SCHEDULED), later)
    final = b.get(KEY)
    assert final is not None and (final.state, final.attempts, final.scan_id) == (JobState.DONE, 2, new_id)
    statuses = sorted(s.status.value for s in store.scans())
    assert statuses == ["complete", "complete", "interrupted"]


def test_renewed_lease_keeps_the_job_and_a_dead_owner_loses_it_at_once(store: Store) -> None:
    a, b = JobQueue(store, "agent-a", LEASE), JobQueue(store, "agent-b", LEASE)
    a.claim(WANT, T0, 1)
    assert a.renew([KEY, "scan:other:x"], T0 + timedelta(minutes=4)) == {KEY}
    assert b.recover(T0 + timedelta(minutes=6)) == []
    assert b.recover(T0 + timedelta(minutes=6), dead=lambda owner: owner == "agent-x") == []
    (rec,) = b.recover(T0 + timedelta(minutes=6), dead=lambda owner: owner == "agent-a")
    assert rec.state == JobState.PENDING and rec.scan_id is None
    # An agent never declares itself dead.
    b.claim(WANT, T0 + timedelta(minutes=7), 1)
    assert b.recover(T0 + timedelta(minutes=7), dead=lambda owner: True) == []


def test_a_job_that_keeps_dying_is_given_up(store: Store) -> None:
    q = JobQueue(store, "a", LEASE, max_attempts=3)
    at = T0
    for attempt in (1, 2, 3):
        (job,) = q.claim(WANT, at, 1)
        assert job.attempts == attempt
        at += LEASE + timedelta(seconds=1)
        (rec,) = q.recover(at)
    assert rec.state == JobState.FAILED
    assert q.claim(WANT, at, 1) == []
    info = q.get(KEY)
    assert info is not None and info.error is not None and "gave up after 3 attempts" in info.error
    # A given-up attempt still counts as the asset's last attempt, so the schedule moves on.
    assert q.history()[1] == {"www": T0 + 2 * (LEASE + timedelta(seconds=1))}


def test_interrupted_scan_is_kept_and_its_job_runs_again(store: Store) -> None:
    q = JobQueue(store, "a", LEASE)
    q.claim(WANT, T0, 1)
    first = q.start_scan(KEY, WWW, header())
    partial = scan(T0, [run("tls")], status=ScanStatus.INTERRUPTED, trigger=Trigger.SCHEDULED)
    q.finish_scan(KEY, first, partial, T0 + timedelta(minutes=1))
    job = q.get(KEY)
    assert job is not None and (job.state, job.owner, job.attempts) == (JobState.PENDING, None, 1)
    assert store.scan(first).scan.status == ScanStatus.INTERRUPTED and len(store.scan(first).probe_runs) == 1
    assert q.history() == ({}, {})  # an interrupted job is not an attempt the schedule counts from
    later = T0 + timedelta(minutes=2)
    assert [j.attempts for j in q.claim(WANT, later, 1)] == [2]
    second = q.start_scan(KEY, WWW, header())
    q.finish_scan(KEY, second, scan(later, [run("tls")], trigger=Trigger.SCHEDULED), later)
    complete, attempts = q.history()
    assert complete == {"www": later + timedelta(seconds=30)} and attempts == {"www": later}
    assert q.last_finished(JobKind.SCAN) == later and q.last_finished(JobKind.CYCLE) is None


def test_a_stopping_agent_gives_back_what_it_holds(store: Store) -> None:
    a, b = JobQueue(store, "a", LEASE), JobQueue(store, "b", LEASE)
    a.claim(WANT, T0, 1)
    scan_id = a.start_scan(KEY, WWW, header())
    b.claim([Wanted("cycle:x", JobKind.CYCLE, T0)], T0, 1)
    (rec,) = a.abandon(T0 + timedelta(seconds=5))
    assert (rec.key, rec.state, rec.scan_id) == (KEY, JobState.PENDING, scan_id)
    assert store.scan(scan_id).scan.status == ScanStatus.INTERRUPTED
    assert b.get("cycle:x") is not None and b.get("cycle:x").state == JobState.RUNNING  # type: ignore[union-attr]


def test_prune_keeps_each_assets_newest_job(store: Store) -> None:
    q = JobQueue(store, "a", LEASE)
    for i in range(3):
        key = f"scan:www:{i}"
        q.claim([Wanted(key, JobKind.SCAN, T0 + timedelta(days=i), "www")], T0 + timedelta(days=i), 1)
        q.complete(key, T0 + timedelta(days=i))
    q.claim([Wanted("scan:www:3", JobKind.SCAN, T0, "www")], T0, 1)  # running: never pruned
    # A slot no config wants any more (the schedule changed): pending, never claimed again.
    q.claim([Wanted("scan:api:old", JobKind.SCAN, T0, "api")], T0, 1)
    q.release("scan:api:old")
    q.claim([Wanted("scan:api:new", JobKind.SCAN, T0, "api")], T0 + timedelta(days=11), 1)
    q.release("scan:api:new")  # pending, but claimed recently: kept
    assert q.prune(T0 + timedelta(days=10)) == 3
    assert sorted(j.key for j in q.jobs()) == ["scan:api:new", "scan:www:2", "scan:www:3"]


def test_agents_racing_for_the_same_jobs_never_share_one(store_url: str) -> None:
    """Separate stores (connection pools) like separate processes, on SQLite and PostgreSQL."""
    wanted = [Wanted(f"scan:a{i}:x", JobKind.SCAN, T0 + timedelta(seconds=i), f"a{i}") for i in range(40)]
    stores = [Store.open(store_url) for _ in range(4)]
    won: dict[str, list[str]] = {f"agent-{i}": [] for i in range(4)}
    start = threading.Barrier(4)

    def agent(i: int) -> None:
        q = JobQueue(stores[i], f"agent-{i}", LEASE)
        start.wait()
        for _ in range(15):
            for job in q.claim(wanted, T0 + timedelta(minutes=1), 3):
                won[f"agent-{i}"].append(job.key)
                q.complete(job.key, T0 + timedelta(minutes=1))

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        claimed = [k for keys in won.values() for k in keys]
        assert sorted(claimed) == sorted(w.key for w in wanted)  # every job once, none twice
        if not store_url.startswith("sqlite"):
            # SQLite serialises writers, so under load one agent may legitimately win every
            # claim; PostgreSQL's SKIP LOCKED lets the others take what the first holds.
            assert sum(1 for keys in won.values() if keys) >= 2  # and the work was shared
        jobs = JobQueue(stores[0], "x", LEASE).jobs()
        assert len(jobs) == 40 and all(j.state == JobState.DONE and j.attempts == 1 for j in jobs)
    finally:
        for s in stores:
            s.close()


def test_an_asset_is_never_scanned_twice_at_once_whatever_the_keys(store: Store) -> None:
    a, b = JobQueue(store, "a", LEASE), JobQueue(store, "b", LEASE)
    a.claim(WANT, T0, 1)
    # Another agent, with another schedule, computes another slot for the same asset.
    other = [Wanted("scan:www:another-slot", JobKind.SCAN, T0, "www"), Wanted("cycle:x", JobKind.CYCLE, T0)]
    assert [j.key for j in b.claim(other, T0, 5)] == ["cycle:x"]
    a.complete(KEY, T0 + timedelta(minutes=1))
    assert [j.key for j in b.claim(other, T0 + timedelta(minutes=1), 5)] == ["scan:www:another-slot"]
