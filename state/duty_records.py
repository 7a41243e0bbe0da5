"""Duty records: a periodic duty done (penetration test, drill, health check, declaration...),
with the calendar date as entered, who did it, and the evidence file kept byte for byte
with its SHA-256.

Third-party scans registered with ``record-scan`` (:mod:`state.external_scans`) are listed
as ``scan`` records too (:func:`records` reads both tables: the pack keeps their reports),
but a scan of one asset is not the firm-wide duty: :func:`last_done` reads the duty records
only, and the calendar (``agent.tracking.duties``) dates the ``scan`` duty from every
configured asset's latest scan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from state.errors import InvalidRequest, NotFound
from state.lifecycle import aware
from state.tables.duties import DutyRow
from state.txn import read, write

if TYPE_CHECKING:
    from state.store import Store

MAX_EVIDENCE_BYTES = 64 * 1024 * 1024  # a report or a signed minute, not an archive
SCAN_KIND = "scan"


@dataclass(frozen=True)
class DutyRecordInfo:
    id: int
    kind: str
    performed_on: date
    performed_entered: str
    performed_by: str
    recorded_at: datetime
    evidence_name: str | None
    evidence_path: str | None
    evidence_sha256: str | None
    evidence_size: int | None
    note: str | None
    source: str = "duty"  # "duty" (duty_records) or "external_scan" (record-scan)


def _columns() -> list[Any]:
    return [DutyRow.id, DutyRow.kind, DutyRow.performed_on, DutyRow.performed_entered, DutyRow.performed_by,
            DutyRow.recorded_at, DutyRow.evidence_name, DutyRow.evidence_path, DutyRow.evidence_sha256,
            DutyRow.evidence_size, DutyRow.note]


def _info(found: Any) -> DutyRecordInfo:
    from state.coltypes import from_db

    i, kind, on, entered, by, recorded, name, path, digest, size, note = found
    return DutyRecordInfo(int(i), kind, on, entered, by, from_db(recorded), name, path, digest,
                          None if size is None else int(size), note)


def record(store: Store, kind: str, *, performed_on: date, performed_entered: str, performed_by: str,
           recorded_at: datetime, evidence_name: str | None = None, evidence_path: str | None = None,
           evidence: bytes | None = None, note: str | None = None) -> DutyRecordInfo:
    """Store one duty done on ``performed_on`` (a calendar date)."""
    recorded = aware(recorded_at, "recorded_at")
    if not performed_by.strip():
        raise InvalidRequest("who performed the duty must be given")
    if evidence is not None:
        if not evidence:
            raise InvalidRequest(f"the evidence file {evidence_name!r} is empty")
        if len(evidence) > MAX_EVIDENCE_BYTES:
            raise InvalidRequest(f"the evidence file {evidence_name!r} is larger than {MAX_EVIDENCE_BYTES >> 20} MiB")
    digest = None if evidence is None else hashlib.sha256(evidence).hexdigest()

    def work(session: Session) -> DutyRecordInfo:
        from sqlalchemy import select as sa_select

        row = DutyRow(kind=kind, performed_on=performed_on, performed_entered=performed_entered.strip()[:64],
                      performed_by=performed_by.strip()[:255], recorded_at=recorded,
                      evidence_name=None if evidence_name is None else evidence_name[:255],
                      evidence_path=evidence_path, evidence_sha256=digest,
                      evidence_size=None if evidence is None else len(evidence), evidence=evidence, note=note)
        session.add(row)
        session.flush()
        return _info(session.execute(sa_select(*_columns()).where(col(DutyRow.id) == row.id)).one())

    return write(store, f"cannot record the {kind} duty", work)


def records(store: Store, tz: str, kind: str | None = None, until: date | None = None) -> list[DutyRecordInfo]:
    """Duty records (of one kind or all) performed before ``until``, oldest first; third-party
    scans come as ``scan`` records (source ``external_scan``, with the ids of their own table)."""
    found = _own(store, kind, until)
    if kind in (None, SCAN_KIND):
        found += _external(store, tz, until)
    return sorted(found, key=lambda r: (r.performed_on, r.source, r.id))


def _own(store: Store, kind: str | None, until: date | None) -> list[DutyRecordInfo]:
    """Rows of the duty table alone (of one kind or all) performed before ``until``."""
    from sqlalchemy import select as sa_select

    query = sa_select(*_columns())
    if kind is not None:
        query = query.where(col(DutyRow.kind) == kind)
    if until is not None:
        query = query.where(col(DutyRow.performed_on) < until)
    return read(store, "cannot read duty records", lambda s: [_info(f) for f in s.execute(query)])


def _external(store: Store, tz: str, until: date | None) -> list[DutyRecordInfo]:
    from zoneinfo import ZoneInfo

    from state.external_scans import scans

    zone = ZoneInfo(tz)
    out: list[DutyRecordInfo] = []
    for s in scans(store):
        on = s.performed_at.astimezone(zone).date()
        if until is not None and on >= until:
            continue
        entered = s.performed_entered or on.isoformat()
        out.append(DutyRecordInfo(s.id, SCAN_KIND, on, entered, s.performed_by, s.recorded_at, s.evidence_name,
                                  None, s.evidence_sha256, s.evidence_size,
                                  f"third-party scan of {s.asset}" + (f": {s.note}" if s.note else ""),
                                  source="external_scan"))
    return out


def last_done(store: Store, tz: str, until: date | None = None) -> dict[str, date]:
    """kind -> the newest date a duty record says it was done (before ``until``): for ``scan``,
    the newest firm-wide record (``duty record scan``), third-party scans of one asset aside."""
    out: dict[str, date] = {}
    for r in _own(store, None, until):
        if r.kind not in out or r.performed_on > out[r.kind]:
            out[r.kind] = r.performed_on
    return out


def evidence(store: Store, info: DutyRecordInfo) -> bytes | None:
    """The evidence bytes of a record (either table)."""
    if info.source == "external_scan":
        from state.external_scans import evidence as external_evidence

        return external_evidence(store, info.id)[1]

    def work(session: Session) -> bytes | None:
        row = session.exec(select(DutyRow).where(DutyRow.id == info.id)).first()
        if row is None:
            raise NotFound(f"no duty record with id {info.id}")
        return None if row.evidence is None else bytes(row.evidence)

    return read(store, f"cannot read the evidence of duty record {info.id}", work)
