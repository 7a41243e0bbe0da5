"""Claiming scheduled work with a lease, so several agents share one database safely.

Every agent computes the same job keys from the same history, so the unique key
makes the ``jobs`` row the one place a claim is decided:

* PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` picks pending rows no other
  agent is claiming right now, and the claim commits with them locked.
* SQLite: one ``UPDATE ... WHERE state = 'pending' ... RETURNING`` inside a
  ``BEGIN IMMEDIATE`` transaction: the database's single writer lock makes it atomic.

A claim holds a lease (``lease_until``) that its owner renews while it works.
A job whose owner died (its lease ran out, or the owner is known to be dead) is
recovered: its half-written scan is marked interrupted and the job goes back to
pending to run again, at most ``max_attempts`` times in all. Starting a scan and
finishing it each commit together with the job's row, so a crash between the two
leaves a RUNNING scan whose job says exactly which scan it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from state import txn
from state.errors import InvalidTransition, StoreError
from state.records import AssetRecord, ScanRecord, ScanStatus
from state.tables.jobs import JobKind, JobRow, JobState

if TYPE_CHECKING:
    from sqlmodel import Session

    from state.lifecycle import ScanHeader
    from state.store import Store
    from state.views import StoredScan

__all__ = ["JobInfo", "JobKind", "JobQueue", "JobState", "LeaseLost", "Recovered", "Wanted"]

MAX_ATTEMPTS = 3


class LeaseLost(StoreError):
    """This agent no longer holds the job (its lease ran out and another agent took it)."""


@dataclass(frozen=True)
class Wanted:
    """A job an agent wants run now: created if new, then claimed if nobody holds it."""

    key: str
    kind: JobKind
    due_at: datetime
    asset: str | None = None


@dataclass(frozen=True)
class JobInfo:
    key: str
    kind: JobKind
    asset: str | None
    due_at: datetime
    state: JobState
    owner: str | None
    lease_until: datetime | None
    attempts: int
    created_at: datetime
    claimed_at: datetime | None
    finished_at: datetime | None
    scan_id: int | None
    error: str | None


@dataclass(frozen=True)
class Recovered:
    key: str
    owner: str | None
    state: JobState  # PENDING (runs again) or FAILED (attempts used up)
    scan_id: int | None  # the scan marked interrupted, if it had started one


def _info(row: JobRow) -> JobInfo:
    return JobInfo(
        key=row.key, kind=row.kind, asset=row.asset, due_at=row.due_at, state=row.state, owner=row.owner,
        lease_until=row.lease_until, attempts=row.attempts, created_at=row.created_at,
        claimed_at=row.claimed_at, finished_at=row.finished_at, scan_id=row.scan_id, error=row.error,
    )


def _table() -> Any:
    return JobRow.__table__  # type: ignore[attr-defined]


class JobQueue:
    """One agent's view of the job table: ``owner`` names the agent in every claim."""

    def __init__(self, store: Store, owner: str, lease: timedelta, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.store = store
        self.owner = owner
        self.lease = lease
        self.max_attempts = max_attempts

    # -- claiming -------------------------------------------------------------------

    def claim(self, wanted: Sequence[Wanted], now: datetime, limit: int) -> list[JobInfo]:
        """Create the wanted jobs that do not exist yet; claim up to ``limit`` pending ones."""
        if not wanted or limit <= 0:
            return []
        # One lock order for every agent: two claimers never wait on each other in a cycle.
        ordered = sorted({w.key: w for w in wanted}.values(), key=lambda w: w.key)
        return txn.write(self.store, "cannot claim jobs", lambda s: self._claim(s, ordered, now, limit))

    def _claim(self, session: Session, wanted: list[Wanted], now: datetime, limit: int) -> list[JobInfo]:
        from sqlalchemy import select, update

        table = _table()
        rows = [{"key": w.key, "kind": w.kind, "asset": w.asset, "due_at": w.due_at, "state": JobState.PENDING,
                 "attempts": 0, "created_at": now} for w in wanted]
        session.execute(_insert_missing(session, table, rows))
        keys = [w.key for w in wanted]
        # Never two scans of one asset at once, even under keys computed from other
        # configs (an agent not yet reloaded) or other clocks.
        other = table.alias("other")
        busy = select(other.c.id).where(other.c.asset == table.c.asset, other.c.kind == JobKind.SCAN,
                                        other.c.state == JobState.RUNNING, other.c.id != table.c.id).exists()
        pending = table.c.key.in_(keys) & (table.c.state == JobState.PENDING) & ~busy
        claimed = {"state": JobState.RUNNING, "owner": self.owner, "lease_until": now + self.lease,
                   "attempts": table.c.attempts + 1, "claimed_at": now, "finished_at": None, "error": None}
        if session.get_bind().dialect.name == "postgresql":
            ids = list(session.execute(
                select(table.c.id).where(pending).order_by(table.c.due_at, table.c.id).limit(limit)
                .with_for_update(skip_locked=True)
            ).scalars())
            if not ids:
                return []
            session.execute(update(table).where(table.c.id.in_(ids)).values(**claimed))
        else:
            first = select(table.c.id).where(pending).order_by(table.c.due_at, table.c.id).limit(limit)
            ids = list(session.execute(
                update(table).where(table.c.id.in_(first.scalar_subquery())).values(**claimed)
                .returning(table.c.id)
            ).scalars())
        found = session.execute(select(JobRow).where(_col(JobRow.id).in_(ids)).order_by(_col(JobRow.due_at)))
        return [_info(row) for row in found.scalars()]

    def renew(self, keys: Sequence[str], now: datetime) -> set[str]:
        """Extend the lease of jobs this agent still holds; returns those it holds."""
        if not keys:
            return set()
        from sqlalchemy import update

        table = _table()

        def work(session: Session) -> set[str]:
            result = session.execute(
                update(table).where(table.c.key.in_(list(keys)), table.c.owner == self.owner,
                                    table.c.state == JobState.RUNNING)
                .values(lease_until=now + self.lease).returning(table.c.key)
            )
            return set(result.scalars())

        return txn.write(self.store, "cannot renew job leases", work)

    # -- a scan job's scan ----------------------------------------------------------

    def start_scan(self, key: str, asset: AssetRecord, header: ScanHeader) -> int:
        """Store a RUNNING scan row linked to the job, in one transaction; LeaseLost if not ours."""
        from state import lifecycle

        def work(session: Session) -> int:
            job = self._held(session, key)
            scan = lifecycle.begin_scan(session, asset, header)
            if scan.id is None:
                raise StoreError("the database returned no id for the new scan")
            job.scan_id = scan.id
            session.add(job)
            return scan.id

        return txn.write(self.store, f"cannot start job {key}", work)

    def finish_scan(self, key: str, scan_id: int, rec: ScanRecord, now: datetime) -> StoredScan:
        """Store the scan and settle the job together.

        An interrupted scan is stored as it is (its finished probes are evidence) and
        the job goes back to pending, so the next start runs it again. A scan whose
        row another agent already closed is stored as a scan of its own: evidence is
        never dropped.
        """
        from state import lifecycle

        def work(session: Session) -> StoredScan:
            try:
                stored = lifecycle.finish_scan(session, lifecycle.running_scan(session, scan_id), rec)
            except InvalidTransition:
                header = _header_of(rec)
                stored = lifecycle.finish_scan(session, lifecycle.begin_scan(session, rec.asset, header), rec)
            job = self._row(session, key)
            if job is not None and job.owner == self.owner and job.state == JobState.RUNNING:
                if rec.status == ScanStatus.INTERRUPTED:
                    _release(job, rec.error)
                else:
                    _finish(job, now, JobState.DONE, rec.error)
                session.add(job)
            return stored

        return txn.write(self.store, f"cannot store the scan of job {key}", work)

    # -- settling -------------------------------------------------------------------

    def complete(self, key: str, now: datetime, *, failed: bool = False, error: str | None = None) -> bool:
        """Mark a held job done (or failed); False when this agent no longer held it."""
        return self._settle(key, lambda job: _finish(job, now, JobState.FAILED if failed else JobState.DONE, error))

    def release(self, key: str, error: str | None = None) -> bool:
        """Give a held job back (this agent is stopping): pending, to run again."""
        return self._settle(key, lambda job: _release(job, error))

    def _settle(self, key: str, change: Callable[[JobRow], None]) -> bool:
        def work(session: Session) -> bool:
            job = self._row(session, key)
            if job is None or job.owner != self.owner or job.state != JobState.RUNNING:
                return False
            change(job)
            session.add(job)
            return True

        return txn.write(self.store, f"cannot settle job {key}", work)

    def recover(self, now: datetime, dead: Callable[[str], bool] = lambda _owner: False) -> list[Recovered]:
        """Take back jobs whose owner is gone: lease run out, or ``dead(owner)`` says so.

        Each runs again (pending) unless it has used up ``max_attempts``: a job that
        keeps killing its agent must not kill every agent in turn.
        """
        def gone(job: JobRow) -> bool:
            expired = job.lease_until is None or job.lease_until < now
            return expired or bool(job.owner and job.owner != self.owner and dead(job.owner))

        return self._take_back(now, gone, give_up=True)

    def abandon(self, now: datetime) -> list[Recovered]:
        """This agent is stopping: whatever it still holds goes back to pending, its scans closed."""
        return self._take_back(now, lambda job: job.owner == self.owner, give_up=False)

    def _take_back(self, now: datetime, which: Callable[[JobRow], bool], *, give_up: bool) -> list[Recovered]:
        from sqlalchemy import select

        from state import lifecycle

        def work(session: Session) -> list[Recovered]:
            query = select(JobRow).where(_col(JobRow.state) == JobState.RUNNING)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            out = []
            for job in session.execute(query).scalars():
                if not which(job):
                    continue
                why = f"the agent running job {job.key} stopped before finishing it ({job.owner})"
                interrupted = None
                if job.scan_id is not None and _still_running(session, job.scan_id):
                    lifecycle.mark_interrupted(session, job.scan_id, now, why)
                    interrupted = job.scan_id
                owner = job.owner
                if give_up and job.attempts >= self.max_attempts:
                    _finish(job, now, JobState.FAILED, f"gave up after {job.attempts} attempts: {why}")
                else:
                    _release(job, why)
                session.add(job)
                out.append(Recovered(job.key, owner, job.state, interrupted))
            return out

        return txn.write(self.store, "cannot take back abandoned jobs", work)

    def prune(self, before: datetime) -> int:
        """Forget settled jobs finished before ``before`` (keeping each asset's newest), and
        pending ones nobody claimed since then: slots no config wants any more (the schedule
        changed, the asset went, a cycle slot passed while its agent was stopped)."""
        from sqlalchemy import delete, func, select

        table = _table()

        def work(session: Session) -> int:
            settled = table.c.state.in_([JobState.DONE, JobState.FAILED])
            # The newest settled job per asset is what its schedule counts from: keep it.
            newest = select(func.max(table.c.id)).where(settled).group_by(table.c.kind, table.c.asset)
            old_settled = settled & (table.c.finished_at < before) & table.c.id.not_in(newest.scalar_subquery())
            stale = (table.c.state == JobState.PENDING) & (func.coalesce(table.c.claimed_at, table.c.created_at)
                                                           < before)
            result = session.execute(delete(table).where(old_settled | stale))
            return int(getattr(result, "rowcount", 0) or 0)

        return txn.write(self.store, "cannot prune old jobs", work)

    # -- reading --------------------------------------------------------------------

    def history(self) -> tuple[dict[str, datetime], dict[str, datetime]]:
        """What the schedule counts from, per asset: (last complete scan, last scheduled attempt).

        The first is when the newest complete full scan (manual or scheduled) finished,
        as ``run --once`` counts it; the second when the newest settled scan job was
        claimed, however it ended. An interrupted job is not settled: it runs again.
        """
        from sqlalchemy import func, literal, select, union_all

        from state.tables.core import AssetRow, ScanRow

        # One statement, so one snapshot: under PostgreSQL's READ COMMITTED two queries
        # could see another agent's scan job settled but not the scan it completed, and
        # compute a new slot for a scan that just ran.
        complete = (
            select(literal("complete").label("what"), _col(AssetRow.name).label("asset"),
                   func.max(_col(ScanRow.finished_at)).label("at"))
            .join(ScanRow, _col(ScanRow.asset_id) == AssetRow.id)
            .where(_col(ScanRow.status) == ScanStatus.COMPLETE, _col(ScanRow.full).is_(True))
            .group_by(AssetRow.name)
        )
        attempted = (
            select(literal("attempt").label("what"), _col(JobRow.asset).label("asset"),
                   func.max(_col(JobRow.claimed_at)).label("at"))
            .where(_col(JobRow.kind) == JobKind.SCAN, _col(JobRow.state).in_([JobState.DONE, JobState.FAILED]))
            .group_by(JobRow.asset)
        )
        both = union_all(complete, attempted)

        def work(session: Session) -> tuple[dict[str, datetime], dict[str, datetime]]:
            out: dict[str, dict[str, datetime]] = {"complete": {}, "attempt": {}}
            for what, asset, at in session.execute(both):
                if asset is not None and at is not None:
                    out[what][asset] = _utc(at) if isinstance(at, datetime) else _parse(at)
            return out["complete"], out["attempt"]

        return txn.read(self.store, "cannot read the schedule's history", work)

    def last_finished(self, kind: JobKind) -> datetime | None:
        """When the newest job of ``kind`` was done (the dead-man timer counts from it)."""
        from sqlalchemy import func, select

        def work(session: Session) -> datetime | None:
            value = session.execute(
                select(func.max(_col(JobRow.finished_at)))
                .where(_col(JobRow.kind) == kind, _col(JobRow.state) == JobState.DONE)
            ).scalar()
            return None if value is None else _utc(value)

        return txn.read(self.store, f"cannot read the last {kind.value} job", work)

    def jobs(self, kind: JobKind | None = None) -> list[JobInfo]:
        from sqlalchemy import select

        def work(session: Session) -> list[JobInfo]:
            query = select(JobRow).order_by(_col(JobRow.due_at), _col(JobRow.id))
            if kind is not None:
                query = query.where(_col(JobRow.kind) == kind)
            return [_info(row) for row in session.execute(query).scalars()]

        return txn.read(self.store, "cannot list jobs", work)

    def get(self, key: str) -> JobInfo | None:
        def work(session: Session) -> JobInfo | None:
            row = self._row(session, key)
            return None if row is None else _info(row)

        return txn.read(self.store, f"cannot read job {key}", work)

    # -- helpers --------------------------------------------------------------------

    def _row(self, session: Session, key: str) -> JobRow | None:
        from sqlalchemy import select

        return session.execute(select(JobRow).where(_col(JobRow.key) == key).with_for_update()).scalars().first()

    def _held(self, session: Session, key: str) -> JobRow:
        job = self._row(session, key)
        if job is None or job.owner != self.owner or job.state != JobState.RUNNING:
            raise LeaseLost(f"job {key} is no longer held by this agent")
        return job


def _still_running(session: Session, scan_id: int) -> bool:
    from state.tables.core import ScanRow

    scan = session.get(ScanRow, scan_id)
    return scan is not None and scan.status == ScanStatus.RUNNING


def _release(job: JobRow, error: str | None) -> None:
    job.state, job.owner, job.lease_until, job.error = JobState.PENDING, None, None, error


def _finish(job: JobRow, now: datetime, state: JobState, error: str | None) -> None:
    job.state, job.lease_until, job.finished_at, job.error = state, None, now, error


def _header_of(rec: ScanRecord) -> ScanHeader:
    from state.lifecycle import ScanHeader

    return ScanHeader(
        started_at=rec.started_at, trigger=rec.trigger, full=rec.full, forced_active=rec.forced_active,
        posture_version=rec.posture_version, catalog_version=rec.catalog_version, config_hash=rec.config_hash,
    )


def _insert_missing(session: Session, table: Any, rows: list[dict[str, Any]]) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).values(rows).on_conflict_do_nothing(index_elements=["key"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).values(rows).on_conflict_do_nothing(index_elements=["key"])


def _col(attribute: Any) -> Any:
    from sqlmodel import col

    return col(attribute)


def _parse(value: str) -> datetime:
    """SQLite hands a UNION's timestamps back as text (the column type is lost): naive UTC."""
    from datetime import UTC

    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    from state.coltypes import from_db

    return from_db(value)
