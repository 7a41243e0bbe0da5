"""Bulk reads the evidence report needs beyond :mod:`state.evidence`: what each finding's
last occurrence up to a moment showed (the evidence a probe recorded then)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from state.evidence import _read
from state.lifecycle import aware
from state.tables.core import OccurrenceRow, ScanRow

if TYPE_CHECKING:
    from state.store import Store

_CHUNK = 500


@dataclass(frozen=True)
class Occurrence:
    finding_id: int
    scan_id: int
    at: datetime  # when that scan started
    evidence: dict[str, Any]


def last_occurrences(store: Store, finding_ids: Iterable[int], until: datetime) -> dict[int, Occurrence]:
    """finding id -> its latest occurrence in a scan started before ``until`` (two queries per 500 findings)."""
    ids = sorted(set(finding_ids))
    moment = aware(until, "until")

    def work(session: Session) -> dict[int, Occurrence]:
        out: dict[int, Occurrence] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            latest = (
                select(OccurrenceRow.finding_id, func.max(col(ScanRow.started_at)).label("at"))
                .join(ScanRow, col(ScanRow.id) == OccurrenceRow.scan_id)
                .where(col(OccurrenceRow.finding_id).in_(chunk), col(ScanRow.started_at) < moment)
                .group_by(col(OccurrenceRow.finding_id))
                .subquery()
            )
            rows = session.exec(
                select(OccurrenceRow.finding_id, OccurrenceRow.scan_id, ScanRow.started_at, OccurrenceRow.evidence)
                .join(ScanRow, col(ScanRow.id) == OccurrenceRow.scan_id)
                .join(latest, (latest.c.finding_id == OccurrenceRow.finding_id)
                      & (latest.c.at == ScanRow.started_at))
                .order_by(col(OccurrenceRow.finding_id), col(OccurrenceRow.scan_id))
            )
            for finding_id, scan_id, at, evidence in rows:
                out[int(finding_id)] = Occurrence(int(finding_id), int(scan_id), aware(at, "at"),
                                                  dict(evidence) if isinstance(evidence, dict) else {})
        return out

    return _read(store, "cannot read findings' evidence", work)
