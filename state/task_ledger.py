"""The ledger of scans run as engine tasks (PostgreSQL with procrastinate workers).

procrastinate decides which worker runs a task and when it runs again (retries, a
stalled worker's jobs); the ``jobs`` table stays the record of which scan each
scheduled slot (``scan:ASSET:DUE``) produced, so the schedule's history reads the
same whoever ran it, and a task that runs twice stores its scan once:

* :func:`adopt` is a task's first step, in one transaction: the slot's row is made
  if new and locked; a row already DONE means this slot's scan is stored (the task
  ran before and its completion was lost): the task does nothing. A row still
  RUNNING was left by an attempt whose worker died (the engine runs one task per
  asset at a time and hands a job over only when its worker stopped beating): its
  half-written scan is marked interrupted, never left "running", and the row is
  taken over under this attempt's owner name. After ``max_attempts`` the slot is
  given up (FAILED): a scan that kills its worker must not kill every worker.
* the scan itself then goes through :class:`state.job_queue.JobQueue` (``start_scan``
  and ``finish_scan``), the scan row and the job row committing together as in the
  single-process daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from state import txn
from state.job_queue import MAX_ATTEMPTS, JobInfo, _col, _info, _insert_missing, _release, _table
from state.tables.jobs import JobKind, JobRow, JobState

if TYPE_CHECKING:
    from sqlmodel import Session

    from state.store import Store

__all__ = ["Adopted", "adopt", "release_waiting"]

# A task's row is held by its procrastinate job, not by a lease: this only keeps the
# single-process daemon's recovery (if one ever shares the database) away from it.
TASK_LEASE = timedelta(days=1)


@dataclass(frozen=True)
class Adopted:
    job: JobInfo | None  # the row, now RUNNING under this attempt; None: nothing to run
    why: str = ""  # when None: "stored" (done before) or "gave up"
    interrupted: int | None = None  # a dead attempt's scan, marked interrupted now


def adopt(store: Store, key: str, asset: str, due: datetime, owner: str, now: datetime,
          max_attempts: int = MAX_ATTEMPTS) -> Adopted:
    """Take the slot ``key`` for this attempt (see the module's docstring)."""
    from sqlalchemy import select

    from state import lifecycle
    from state.job_queue import _finish, _still_running

    def work(session: Session) -> Adopted:
        row = {"key": key, "kind": JobKind.SCAN, "asset": asset, "due_at": due, "state": JobState.PENDING,
               "attempts": 0, "created_at": now}
        session.execute(_insert_missing(session, _table(), [row]))
        job = session.execute(select(JobRow).where(_col(JobRow.key) == key).with_for_update()).scalars().one()
        if job.state == JobState.DONE:
            return Adopted(None, "stored")
        interrupted = None
        if job.state == JobState.RUNNING and "/job" not in (job.owner or "") and job.lease_until is not None \
                and job.lease_until > now:
            return Adopted(None, f"held by {job.owner}")  # a single-process agent's live lease (run --once)
        if job.state == JobState.RUNNING:
            why = f"the worker running {key} stopped before finishing it ({job.owner})"
            if job.scan_id is not None and _still_running(session, job.scan_id):
                lifecycle.mark_interrupted(session, job.scan_id, now, why)
                interrupted = job.scan_id
            if job.attempts >= max_attempts:
                _finish(job, now, JobState.FAILED, f"gave up after {job.attempts} attempts: {why}")
                session.add(job)
                return Adopted(None, "gave up", interrupted)
        job.state, job.owner, job.lease_until = JobState.RUNNING, owner, now + TASK_LEASE
        job.attempts += 1
        job.claimed_at, job.finished_at, job.error = now, None, None
        session.add(job)
        session.flush()
        return Adopted(_info(job), "", interrupted)

    return txn.write(store, f"cannot take job {key}", work)


def release_waiting(store: Store, key: str, owner: str, why: str) -> bool:
    """Give the slot back unscanned (a quiet window began while it queued): pending again."""
    from sqlalchemy import select

    def work(session: Session) -> bool:
        job = session.execute(select(JobRow).where(_col(JobRow.key) == key).with_for_update()).scalars().first()
        if job is None or job.owner != owner or job.state != JobState.RUNNING:
            return False
        job.attempts = max(job.attempts - 1, 0)  # not an attempt: nothing was sent
        _release(job, why)
        session.add(job)
        return True

    return txn.write(store, f"cannot release job {key}", work)

