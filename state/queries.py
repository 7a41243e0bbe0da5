"""Read side: turn rows into the frozen views of :mod:`state.views` while the session is open."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from state.errors import NotFound
from state.lifecycle import NEEDS_FIX
from state.records import FindingState, ScanStatus
from state.tables.core import AssetRow, EventRow, FindingRow, OccurrenceRow, ProbeRunRow, ScanRow
from state.views import (
    AssetInfo,
    EventInfo,
    FindingFilter,
    FindingInfo,
    HistoryEntry,
    HistoryKind,
    OccurrenceInfo,
    ProbeRunInfo,
    ScanDetail,
    ScanInfo,
)

_FILTER_STATES: dict[FindingFilter, tuple[FindingState, ...]] = {
    FindingFilter.OPEN: NEEDS_FIX,
    FindingFilter.FIXED: (FindingState.FIXED,),
    FindingFilter.ACCEPTED: (FindingState.ACCEPTED,),
    FindingFilter.FALSE_POSITIVE: (FindingState.FALSE_POSITIVE,),
    FindingFilter.RESOLVED_BY_CONFIG: (FindingState.RESOLVED_BY_CONFIG,),
}


def _i(value: int | None) -> int:
    assert value is not None  # rows read back from the database always have ids
    return value


def asset_info(row: AssetRow) -> AssetInfo:
    return AssetInfo(id=_i(row.id), name=row.name, url=row.url, kind=row.kind,
                     configured=row.configured, added_at=row.added_at)


def scan_info(row: ScanRow, asset: str) -> ScanInfo:
    return ScanInfo(
        id=_i(row.id), asset=asset, asset_id=row.asset_id, status=row.status, trigger=row.trigger,
        full=row.full, forced_active=row.forced_active, started_at=row.started_at,
        finished_at=row.finished_at, posture_version=row.posture_version,
        catalog_version=row.catalog_version, config_hash=row.config_hash, dns=dict(row.dns),
        error=row.error, asset_config_hash=row.asset_config_hash, target=row.target,
    )


def finding_info(row: FindingRow, asset: str) -> FindingInfo:
    return FindingInfo(
        id=_i(row.id), asset=asset, asset_id=row.asset_id, check_id=row.check_id, key=row.key,
        probe=row.probe, severity=row.severity, state=row.state, first_seen=row.first_seen,
        last_seen=row.last_seen, fixed_at=row.fixed_at, reopened_count=row.reopened_count,
        evidence=dict(row.evidence), accepted_reason=row.accepted_reason, accepted_by=row.accepted_by,
        accepted_until=row.accepted_until, accepted_until_entered=row.accepted_until_entered,
        false_positive_reason=row.false_positive_reason,
        false_positive_by=row.false_positive_by,
    )


def _event_info(row: EventRow, finding: FindingRow, asset: str) -> EventInfo:
    return EventInfo(
        id=_i(row.id), finding_id=row.finding_id, asset=asset, check_id=finding.check_id,
        key=finding.key, scan_id=row.scan_id, at=row.at, kind=row.kind, from_state=row.from_state,
        to_state=row.to_state, detail=dict(row.detail),
    )


def _asset_id(session: Session, name: str) -> int | None:
    return session.exec(select(AssetRow.id).where(AssetRow.name == name)).first()


def assets(session: Session) -> list[AssetInfo]:
    return [asset_info(row) for row in session.exec(select(AssetRow).order_by(col(AssetRow.name)))]


def asset(session: Session, name: str) -> AssetInfo:
    row = session.exec(select(AssetRow).where(AssetRow.name == name)).first()
    if row is None:
        raise NotFound(f"no asset named {name!r}")
    return asset_info(row)


def findings(session: Session, which: FindingFilter, asset_name: str | None,
             now: datetime | None = None) -> list[FindingInfo]:
    """The findings in ``which`` state; with ``now``, as they stand then (:meth:`FindingInfo.at`:
    an acceptance past its end is open again, before any write says so)."""
    query = select(FindingRow, AssetRow.name).join(AssetRow, col(AssetRow.id) == FindingRow.asset_id)
    wanted = None if which == FindingFilter.ALL else _FILTER_STATES[FindingFilter(which)]
    if wanted is not None:
        # An accepted row may be open by ``now``: read it, and filter on the state at ``now``.
        stored = (*wanted, FindingState.ACCEPTED) if now is not None else wanted
        query = query.where(col(FindingRow.state).in_(stored))
    if asset_name is not None:
        query = query.where(AssetRow.name == asset_name)
    rows = [finding_info(row, name) for row, name in session.exec(query.order_by(col(FindingRow.id)))]
    if now is None:
        return rows
    current = [f.at(now) for f in rows]
    return current if wanted is None else [f for f in current if f.state in wanted]


def findings_with_ids(session: Session, ids: Iterable[int]) -> list[FindingInfo]:
    """The findings whose ids are in ``ids`` (unknown ids are left out), by id; a few queries
    however many (bound parameters go in batches the databases accept)."""
    wanted = sorted(set(ids))
    out: list[FindingInfo] = []
    for at in range(0, len(wanted), _ID_BATCH):
        query = (select(FindingRow, AssetRow.name).join(AssetRow, col(AssetRow.id) == FindingRow.asset_id)
                 .where(col(FindingRow.id).in_(wanted[at:at + _ID_BATCH])).order_by(col(FindingRow.id)))
        out.extend(finding_info(row, name) for row, name in session.exec(query))
    return out


_ID_BATCH = 500  # ids per IN (...): well under SQLite's bound-parameter limit


def finding(session: Session, finding_id: int) -> FindingInfo:
    found = session.exec(
        select(FindingRow, AssetRow.name)
        .join(AssetRow, col(AssetRow.id) == FindingRow.asset_id)
        .where(FindingRow.id == finding_id)
    ).first()
    if found is None:
        raise NotFound(f"no finding with id {finding_id}")
    return finding_info(*found)


def _events_query() -> Any:
    return (
        select(EventRow, FindingRow, AssetRow.name)
        .join(FindingRow, col(FindingRow.id) == EventRow.finding_id)
        .join(AssetRow, col(AssetRow.id) == FindingRow.asset_id)
    )


def events(session: Session, finding_id: int) -> list[EventInfo]:
    finding(session, finding_id)  # NotFound for an unknown id rather than an empty history
    query = _events_query().where(EventRow.finding_id == finding_id).order_by(
        col(EventRow.at), col(EventRow.id)
    )
    return [_event_info(*found) for found in session.exec(query)]


def scans(
    session: Session,
    asset_name: str | None,
    since: datetime | None,
    until: datetime | None,
    status: ScanStatus | None,
) -> list[ScanInfo]:
    query = select(ScanRow, AssetRow.name).join(AssetRow, col(AssetRow.id) == ScanRow.asset_id)
    if asset_name is not None:
        query = query.where(AssetRow.name == asset_name)
    if since is not None:
        query = query.where(col(ScanRow.started_at) >= since)
    if until is not None:
        query = query.where(col(ScanRow.started_at) < until)
    if status is not None:
        query = query.where(ScanRow.status == status)
    query = query.order_by(col(ScanRow.started_at), col(ScanRow.id))
    return [scan_info(row, name) for row, name in session.exec(query)]


def scan(session: Session, scan_id: int) -> ScanDetail:
    found = session.exec(
        select(ScanRow, AssetRow.name)
        .join(AssetRow, col(AssetRow.id) == ScanRow.asset_id)
        .where(ScanRow.id == scan_id)
    ).first()
    if found is None:
        raise NotFound(f"no scan with id {scan_id}")
    runs = session.exec(
        select(ProbeRunRow).where(ProbeRunRow.scan_id == scan_id).order_by(col(ProbeRunRow.id))
    ).all()
    occurrences = session.exec(
        select(OccurrenceRow, FindingRow, ProbeRunRow.probe)
        .join(FindingRow, col(FindingRow.id) == OccurrenceRow.finding_id)
        .join(ProbeRunRow, col(ProbeRunRow.id) == OccurrenceRow.probe_run_id)
        .where(OccurrenceRow.scan_id == scan_id)
        .order_by(col(OccurrenceRow.id))
    ).all()
    return ScanDetail(
        scan=scan_info(*found),
        probe_runs=tuple(
            ProbeRunInfo(
                id=_i(run.id), scan_id=run.scan_id, probe=run.probe, status=run.status,
                started_at=run.started_at, finished_at=run.finished_at,
                observations=dict(run.observations), error_kind=run.error_kind, error=run.error,
                skip_reason=run.skip_reason,
            )
            for run in runs
        ),
        occurrences=tuple(
            OccurrenceInfo(
                scan_id=occ.scan_id, finding_id=occ.finding_id, probe_run_id=occ.probe_run_id,
                probe=probe, check_id=row.check_id, key=row.key, severity=occ.severity,
                evidence=dict(occ.evidence),
            )
            for occ, row, probe in occurrences
        ),
    )


def last_complete_scan(session: Session, asset_name: str) -> ScanInfo | None:
    """The newest scan that ran every applicable probe successfully (what cadence counts)."""
    found = session.exec(
        select(ScanRow, AssetRow.name)
        .join(AssetRow, col(AssetRow.id) == ScanRow.asset_id)
        .where(AssetRow.name == asset_name, ScanRow.status == ScanStatus.COMPLETE, ScanRow.full == True)  # noqa: E712
        .order_by(col(ScanRow.finished_at).desc(), col(ScanRow.id).desc())
        .limit(1)
    ).first()
    return None if found is None else scan_info(*found)


def history(
    session: Session, asset_name: str, since: datetime | None, until: datetime | None
) -> list[HistoryEntry]:
    """Scans (at their start) and finding events of one asset, oldest first."""
    asset_id = _asset_id(session, asset_name)
    if asset_id is None:
        raise NotFound(f"no asset named {asset_name!r}")
    entries = [
        HistoryEntry(at=info.started_at, kind=HistoryKind.SCAN, scan=info)
        for info in scans(session, asset_name, since, until, None)
    ]
    query = _events_query().where(FindingRow.asset_id == asset_id)
    if since is not None:
        query = query.where(col(EventRow.at) >= since)
    if until is not None:
        query = query.where(col(EventRow.at) < until)
    for found in session.exec(query.order_by(col(EventRow.at), col(EventRow.id))):
        info = _event_info(*found)
        entries.append(HistoryEntry(at=info.at, kind=HistoryKind.EVENT, event=info))
    # A scan sorts before the events it caused (they carry its finish time, it its start).
    order = {HistoryKind.SCAN: 0, HistoryKind.EVENT: 1}
    entries.sort(key=lambda e: (e.at, order[e.kind], e.scan.id if e.scan else e.event.id if e.event else 0))
    return entries
