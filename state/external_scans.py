"""Scans performed by another tool or a third party (the half-yearly scan is often bought
in): registered with the report they produced, kept byte for byte with its SHA-256, and
counted for the scan cadence like a complete scan of posture's own.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, func, select

from state.delivery_views import ExternalScanInfo
from state.errors import InvalidRequest, NotFound
from state.lifecycle import aware
from state.tables.core import AssetRow
from state.tables.notify import ExternalScanRow
from state.txn import read, write

if TYPE_CHECKING:
    from state.store import Store

MAX_EVIDENCE_BYTES = 64 * 1024 * 1024  # a scan report, not an archive of the scanned site

def _info(found: Any) -> ExternalScanInfo:
    i, name, performed, by, recorded, ev_name, digest, size, note, entered = found
    return ExternalScanInfo(id=int(i), asset=name, performed_at=performed, performed_by=by, recorded_at=recorded,
                            evidence_name=ev_name, evidence_sha256=digest, evidence_size=int(size), note=note,
                            performed_entered=entered)


def _query() -> Any:
    # Named columns only: the evidence bytes stay in the database unless asked for.
    from sqlalchemy import select as sa_select  # sqlmodel's select types at most four columns

    columns: list[Any] = [
        ExternalScanRow.id, AssetRow.name, ExternalScanRow.performed_at, ExternalScanRow.performed_by,
        ExternalScanRow.recorded_at, ExternalScanRow.evidence_name, ExternalScanRow.evidence_sha256,
        ExternalScanRow.evidence_size, ExternalScanRow.note, ExternalScanRow.performed_entered,
    ]
    return sa_select(*columns).join(AssetRow, col(AssetRow.id) == ExternalScanRow.asset_id)


def record(
    store: Store,
    asset: str,
    *,
    performed_at: datetime,
    performed_by: str,
    evidence_name: str,
    evidence: bytes,
    recorded_at: datetime,
    note: str | None = None,
    performed_entered: str | None = None,
) -> ExternalScanInfo:
    """Register a scan of ``asset`` (which must be stored already) with its report."""
    performed, recorded = aware(performed_at, "performed_at"), aware(recorded_at, "recorded_at")
    if performed > recorded:
        raise InvalidRequest(f"a scan performed {performed.isoformat()} is in the future")
    if not performed_by.strip():
        raise InvalidRequest("who performed the scan must be given")
    if not evidence:
        raise InvalidRequest(f"the evidence file {evidence_name!r} is empty")
    if len(evidence) > MAX_EVIDENCE_BYTES:
        raise InvalidRequest(f"the evidence file {evidence_name!r} is larger than {MAX_EVIDENCE_BYTES >> 20} MiB")
    digest = hashlib.sha256(evidence).hexdigest()

    def work(session: Session) -> ExternalScanInfo:
        asset_id = session.exec(select(AssetRow.id).where(AssetRow.name == asset)).first()
        if asset_id is None:
            raise NotFound(f"no asset named {asset!r}")
        row = ExternalScanRow(
            asset_id=asset_id, performed_at=performed, performed_by=performed_by.strip()[:255],
            recorded_at=recorded, evidence_name=evidence_name[:255], evidence_sha256=digest,
            evidence_size=len(evidence), evidence=evidence, note=note,
            performed_entered=(performed_entered or "").strip()[:64] or None,
        )
        session.add(row)
        session.flush()
        return _info(session.execute(_query().where(ExternalScanRow.id == row.id)).one())

    return write(store, f"cannot record a third-party scan of {asset!r}", work)


def scans(store: Store, asset: str | None = None, until: datetime | None = None) -> list[ExternalScanInfo]:
    """Registered scans (of one asset or all) performed before ``until``, oldest first."""
    query = _query()
    if asset is not None:
        query = query.where(AssetRow.name == asset)
    if until is not None:
        query = query.where(col(ExternalScanRow.performed_at) < aware(until, "until"))
    query = query.order_by(col(ExternalScanRow.performed_at), col(ExternalScanRow.id))
    return read(store, "cannot read third-party scans", lambda s: [_info(f) for f in s.execute(query)])


def latest(store: Store, until: datetime | None = None) -> dict[str, datetime]:
    """asset name -> when its newest registered scan (before ``until``) was performed."""
    query = (
        select(AssetRow.name, func.max(ExternalScanRow.performed_at))
        .join(AssetRow, col(AssetRow.id) == ExternalScanRow.asset_id)
        .group_by(AssetRow.name)
    )
    if until is not None:
        query = query.where(col(ExternalScanRow.performed_at) < aware(until, "until"))

    def work(session: Session) -> dict[str, datetime]:
        from state.coltypes import from_db

        return {name: from_db(at) for name, at in session.exec(query) if at is not None}

    return read(store, "cannot read third-party scans", work)


def evidence(store: Store, scan_id: int) -> tuple[str, bytes]:
    """The report as registered: (file name, bytes)."""

    def work(session: Session) -> tuple[str, bytes]:
        row = session.get(ExternalScanRow, scan_id)
        if row is None:
            raise NotFound(f"no third-party scan with id {scan_id}")
        return row.evidence_name, bytes(row.evidence)

    return read(store, f"cannot read the evidence of third-party scan {scan_id}", work)


def prune(store: Store, before: datetime) -> int:
    """Delete registered scans performed before ``before`` (with their reports)."""
    from sqlalchemy import delete

    cutoff = aware(before, "before")

    def work(session: Session) -> int:
        result = session.execute(delete(ExternalScanRow).where(col(ExternalScanRow.performed_at) < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)

    return write(store, "cannot prune third-party scans", work)
