"""Bulk reads for evidence reports: many scans and findings in a handful of queries.

A half-year report over hundreds of assets covers thousands of scans; reading each
with :meth:`Store.scan` would cost three queries and a full JSON decode of every
probe's observations per scan. These reads fetch only what a report shows (run
statuses, the TLS grade, per-scan finding counts, finding events) for all assets at
once, and the full TLS observations only for the scans the caller names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, col, select

from state.errors import translate
from state.lifecycle import aware
from state.records import RunStatus, ScanStatus, Trigger
from state.tables.core import AssetRow, EventRow, FindingRow, OccurrenceRow, ProbeRunRow, ScanRow
from state.views import EventInfo

if TYPE_CHECKING:
    from state.store import Store

T = TypeVar("T")
#: Where a tls run's observations keep the grade letter: probes.tls.model.GRADE_PATH (state may not import
#: probes; tests/agent/test_observed.py holds the two equal). Read in SQL so reports never decode whole runs.
GRADE_PATH = ("grade", "grade")
_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


@dataclass(frozen=True)
class RunSummary:
    """One probe run without its observations (except the TLS grade letter)."""

    scan_id: int
    probe: str
    status: RunStatus
    error_kind: str | None
    error: str | None
    skip_reason: str | None
    grade: str | None  # observations.grade.grade of a tls run, when it has one


def _read(store: Store, doing: str, work: Callable[[Session], T]) -> T:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with Session(store.engine) as session:
            return work(session)
    except SQLAlchemyError as exc:
        raise translate(exc, doing) from None


def _scan_window(query: Any, asset: str | None, since: datetime | None, until: datetime | None) -> Any:
    if asset is not None:
        query = query.where(AssetRow.name == asset)
    if since is not None:
        query = query.where(col(ScanRow.started_at) >= aware(since, "since"))
    if until is not None:
        query = query.where(col(ScanRow.started_at) < aware(until, "until"))
    return query


@dataclass(frozen=True)
class ScanSummary:
    """A scan's row without its DNS record and versions: what a report lists."""

    id: int
    asset: str
    status: ScanStatus
    trigger: Trigger
    full: bool
    started_at: datetime
    finished_at: datetime | None
    error: str | None


def scan_summaries(
    store: Store, *, asset: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> list[ScanSummary]:
    """Scans started in [since, until), oldest first (plain columns: no ORM objects to build)."""
    import sqlalchemy

    query = _scan_window(
        sqlalchemy.select(col(ScanRow.id), col(AssetRow.name), col(ScanRow.status), col(ScanRow.trigger),
                          col(ScanRow.full), col(ScanRow.started_at), col(ScanRow.finished_at), col(ScanRow.error))
        .join(AssetRow, col(AssetRow.id) == ScanRow.asset_id),
        asset, since, until,
    ).order_by(col(ScanRow.started_at), col(ScanRow.id))
    return _read(store, "cannot list scans", lambda session: [ScanSummary(*row) for row in session.execute(query)])


def last_complete_before(store: Store, before: datetime, *, asset: str | None = None) -> dict[str, datetime]:
    """asset name -> its newest complete, full scan started before ``before`` (what cadence counts)."""
    import sqlalchemy

    from state.coltypes import from_db

    query = (
        sqlalchemy.select(col(AssetRow.name), func.max(col(ScanRow.started_at)))
        .join(AssetRow, col(AssetRow.id) == ScanRow.asset_id)
        .where(col(ScanRow.status) == ScanStatus.COMPLETE, col(ScanRow.full).is_(True),
               col(ScanRow.started_at) < aware(before, "before"))
        .group_by(AssetRow.name)
    )
    if asset is not None:
        query = query.where(col(AssetRow.name) == asset)
    # MAX() loses the column type on SQLite (a naive string): parse it back as the column would.
    return _read(store, "cannot read the last complete scans",
                 lambda session: {name: from_db(_as_datetime(at)) for name, at in session.execute(query)
                                  if at is not None})


def _as_datetime(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def run_summaries(
    store: Store, *, asset: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> list[RunSummary]:
    """Every probe run (and reach step) of the scans started in [since, until), by scan then run order:
    what ran, what was skipped and why, what failed and its error, and the TLS grade."""
    import sqlalchemy

    grade = col(ProbeRunRow.observations)[GRADE_PATH].as_string()
    # Only the grade leaves the JSON column: decoding whole observations is what makes reports slow.
    query = _scan_window(
        sqlalchemy.select(col(ProbeRunRow.scan_id), col(ProbeRunRow.probe), col(ProbeRunRow.status),
                          col(ProbeRunRow.error_kind), col(ProbeRunRow.error), col(ProbeRunRow.skip_reason), grade)
        .join(ScanRow, col(ScanRow.id) == ProbeRunRow.scan_id)
        .join(AssetRow, col(AssetRow.id) == ScanRow.asset_id),
        asset, since, until,
    ).order_by(col(ProbeRunRow.scan_id), col(ProbeRunRow.id))

    def work(session: Session) -> list[RunSummary]:
        return [
            RunSummary(scan_id=s, probe=p, status=RunStatus(st), error_kind=ek, error=e, skip_reason=sk,
                       grade=g if p == "tls" else None)
            for s, p, st, ek, e, sk, g in session.execute(query)
        ]

    return _read(store, "cannot read probe runs", work)


def occurrence_counts(
    store: Store, *, asset: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> dict[int, int]:
    """scan id -> how many findings that scan reported, for scans started in [since, until)."""
    query = _scan_window(
        select(OccurrenceRow.scan_id, func.count(col(OccurrenceRow.id)))
        .join(ScanRow, col(ScanRow.id) == OccurrenceRow.scan_id)
        .join(AssetRow, col(AssetRow.id) == ScanRow.asset_id),
        asset, since, until,
    ).group_by(col(OccurrenceRow.scan_id))
    return _read(store, "cannot count findings per scan",
                 lambda s: {int(scan_id): int(n) for scan_id, n in s.exec(query)})


def run_observations(store: Store, scan_ids: Iterable[int], probe: str) -> dict[int, dict[str, Any]]:
    """scan id -> the full observations of its ``probe`` run, for the scans named."""
    ids = sorted(set(scan_ids))

    def work(session: Session) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            rows = session.exec(
                select(ProbeRunRow.scan_id, ProbeRunRow.observations)
                .where(col(ProbeRunRow.scan_id).in_(chunk), ProbeRunRow.probe == probe)
            )
            for scan_id, observations in rows:
                out[scan_id] = dict(observations)
        return out

    return _read(store, f"cannot read {probe} observations", work)


def events(
    store: Store, *, asset: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> list[EventInfo]:
    """Finding events in [since, until) (all assets or one), oldest first: one query for every asset."""
    query = (
        select(EventRow, FindingRow.check_id, FindingRow.key, AssetRow.name)
        .join(FindingRow, col(FindingRow.id) == EventRow.finding_id)
        .join(AssetRow, col(AssetRow.id) == FindingRow.asset_id)
    )
    if asset is not None:
        query = query.where(AssetRow.name == asset)
    if since is not None:
        query = query.where(col(EventRow.at) >= aware(since, "since"))
    if until is not None:
        query = query.where(col(EventRow.at) < aware(until, "until"))
    query = query.order_by(col(EventRow.at), col(EventRow.id))

    def work(session: Session) -> list[EventInfo]:
        out = []
        for row, check_id, key, name in session.exec(query):
            assert row.id is not None  # rows read back always have ids
            out.append(EventInfo(id=row.id, finding_id=row.finding_id, asset=name, check_id=check_id, key=key,
                                 scan_id=row.scan_id, at=row.at, kind=row.kind, from_state=row.from_state,
                                 to_state=row.to_state, detail=dict(row.detail)))
        return out

    return _read(store, "cannot read finding events", work)
