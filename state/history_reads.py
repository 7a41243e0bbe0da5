"""Reads for remediation tracking: what schedules, deadlines and the digest need from
history, for all assets in a few queries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, func, select

from state.lifecycle import aware
from state.records import RunStatus, ScanStatus
from state.tables.core import AssetRow, EventRow, ProbeRunRow, ScanRow
from state.txn import read
from state.views import EventKind

if TYPE_CHECKING:
    from state.store import Store

_CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class LatestRun:
    """The newest successful run of one probe on one asset."""

    asset: str
    scan_id: int
    finished_at: datetime
    observations: dict[str, Any]


@dataclass(frozen=True)
class ScanTimes:
    """When an asset was last scanned in full: attempted (any outcome) and completed."""

    asset: str
    last_attempt: datetime | None
    last_complete: datetime | None


def scan_times(store: Store, until: datetime | None = None) -> dict[str, ScanTimes]:
    """asset name -> its last full scan attempt (started) and last complete full scan (finished)."""
    hi = None if until is None else aware(until, "until")

    def work(session: Session) -> dict[str, ScanTimes]:
        base = (
            select(AssetRow.name, func.max(ScanRow.started_at))
            .join(AssetRow, col(AssetRow.id) == ScanRow.asset_id)
            .where(ScanRow.full == True, ScanRow.status != ScanStatus.RUNNING)  # noqa: E712
            .group_by(AssetRow.name)
        )
        complete = (
            select(AssetRow.name, func.max(ScanRow.finished_at))
            .join(AssetRow, col(AssetRow.id) == ScanRow.asset_id)
            .where(ScanRow.full == True, ScanRow.status == ScanStatus.COMPLETE)  # noqa: E712
            .group_by(AssetRow.name)
        )
        if hi is not None:
            base = base.where(col(ScanRow.started_at) < hi)
            complete = complete.where(col(ScanRow.started_at) < hi)
        from state.coltypes import from_db

        attempts = {name: from_db(at) for name, at in session.exec(base) if at is not None}
        completes = {name: from_db(at) for name, at in session.exec(complete) if at is not None}
        return {
            name: ScanTimes(name, attempts.get(name), completes.get(name))
            for name in sorted(set(attempts) | set(completes))
        }

    return read(store, "cannot read scan times", work)


def latest_runs(store: Store, probe: str, assets: Iterable[str] | None = None) -> dict[str, LatestRun]:
    """asset name -> the newest OK run of ``probe`` (its observations), for the assets named or all."""
    names = None if assets is None else sorted(set(assets))

    def work(session: Session) -> dict[str, LatestRun]:
        newest = (
            select(ScanRow.asset_id, func.max(ProbeRunRow.id).label("run_id"))
            .join(ScanRow, col(ScanRow.id) == ProbeRunRow.scan_id)
            .where(ProbeRunRow.probe == probe, ProbeRunRow.status == RunStatus.OK)
            .group_by(col(ScanRow.asset_id))
            .subquery()
        )
        query = (
            select(AssetRow.name, ProbeRunRow.scan_id, ProbeRunRow.finished_at, ProbeRunRow.observations)
            .join(newest, newest.c.run_id == ProbeRunRow.id)
            .join(AssetRow, col(AssetRow.id) == newest.c.asset_id)
        )
        if names is not None:
            query = query.where(col(AssetRow.name).in_(names))
        return {
            name: LatestRun(name, scan_id, finished, dict(obs))
            for name, scan_id, finished, obs in session.exec(query)
        }

    return read(store, f"cannot read the latest {probe} observations", work)


def reopened_at(store: Store, finding_ids: Iterable[int]) -> dict[int, datetime]:
    """finding id -> when it last reopened (for deadline policies that restart the clock)."""
    ids = sorted(set(finding_ids))

    def work(session: Session) -> dict[int, datetime]:
        from state.coltypes import from_db

        out: dict[int, datetime] = {}
        for start in range(0, len(ids), _CHUNK):
            query = (
                select(EventRow.finding_id, func.max(EventRow.at))
                .where(col(EventRow.finding_id).in_(ids[start:start + _CHUNK]), EventRow.kind == EventKind.REOPENED)
                .group_by(col(EventRow.finding_id))
            )
            out.update({fid: from_db(at) for fid, at in session.exec(query) if at is not None})
        return out

    return read(store, "cannot read reopen times", work)
