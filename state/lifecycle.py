"""Writing scans and moving findings through their lifecycle.

Functions here take an open session and never commit: the store wraps each call
in one transaction, so a scan and every transition it causes land together or
not at all.

States (issue 9): a reported finding that is new opens; a fixed one reopens; any
other is refreshed (last_seen, severity, evidence) and keeps its state. A probe
that ran OK in a COMPLETE or PARTIAL scan and no longer reports an open finding of its
own proves it fixed (so does a ``reach`` step that ran OK, even in a failed scan). A
probe that errored or was skipped, and a scan that was interrupted, prove nothing.

Resolved by configuration (issue 14): when the configuration hash of the finding's probe
differs from the one of the run that last reported it, and the probe still observed the condition
(or cannot say whether it did), the finding is ``resolved_by_config``, not fixed; the
event keeps both hashes. Reported again, it reopens like a fixed one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from state import scan_write
from state.coltypes import as_utc
from state.errors import InvalidRequest, InvalidTransition, NotFound
from state.records import AssetRecord, FindingState, ScanRecord, ScanStatus, Trigger

# Re-exported: the lifecycle's vocabulary lives with the code that writes scans.
from state.scan_write import CLOSED as CLOSED
from state.scan_write import CONCLUSIVE as CONCLUSIVE
from state.scan_write import NEEDS_FIX as NEEDS_FIX
from state.scan_write import ScanHeader as ScanHeader
from state.scan_write import aware as aware
from state.tables.core import AssetRow, EventRow, FindingRow, ScanRow, metadata
from state.views import EventKind, StoredScan


def upsert_asset(session: Session, asset: AssetRecord, at: datetime) -> AssetRow:
    """Insert the asset if new, refresh url/kind/configured, and lock its row.

    The row lock (PostgreSQL) serialises concurrent scans of one asset, so two of them
    never both create the same finding; SQLite already serialises writers.
    """
    if not asset.name:
        raise InvalidRequest("an asset needs a name")
    table = metadata.tables["assets"]
    values = {"name": asset.name, "url": asset.url, "kind": asset.kind,
              "configured": asset.configured, "added_at": aware(at, "added_at")}
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(table).values(values).on_conflict_do_nothing(index_elements=["name"]))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(table).values(values).on_conflict_do_nothing(index_elements=["name"]))
    row = session.exec(select(AssetRow).where(AssetRow.name == asset.name).with_for_update()).one()
    row.url, row.kind, row.configured = asset.url, asset.kind, asset.configured
    return row


def rename_asset(session: Session, old: str, new: str) -> AssetRow:
    """The stored asset ``old`` is ``new`` from now on: its scans, findings and their deadlines
    stay its own (a configuration that renamed an asset, same URL, must not restart them)."""
    if session.exec(select(AssetRow.id).where(AssetRow.name == new)).first() is not None:
        raise InvalidRequest(f"cannot rename asset {old!r}: {new!r} is already stored")
    row = session.exec(select(AssetRow).where(AssetRow.name == old).with_for_update()).first()
    if row is None:
        raise NotFound(f"no asset named {old!r}")
    row.name = new
    return row


def begin_scan(session: Session, asset: AssetRecord, header: ScanHeader) -> ScanRow:
    return begin_scan_row(session, asset, header)[0]


def begin_scan_row(session: Session, asset: AssetRecord, header: ScanHeader) -> tuple[ScanRow, AssetRow]:
    """:func:`begin_scan`, and the asset row it upserted and locked."""
    started = aware(header.started_at, "started_at")
    asset_row = upsert_asset(session, asset, started)
    scan = ScanRow(
        asset_id=_id(asset_row.id), status=ScanStatus.RUNNING, trigger=Trigger(header.trigger),
        full=header.full, forced_active=header.forced_active, started_at=started, finished_at=None,
        posture_version=header.posture_version, catalog_version=header.catalog_version,
        config_hash=header.config_hash, asset_config_hash=header.asset_config_hash, dns={}, error=None,
        target=scan_write.scan_target(asset.url),
    )
    session.add(scan)
    session.flush()
    return scan, asset_row


def running_scan(session: Session, scan_id: int) -> ScanRow:
    scan = session.get(ScanRow, scan_id, with_for_update=True)
    if scan is None:
        raise NotFound(f"no scan with id {scan_id}")
    if scan.status != ScanStatus.RUNNING:
        raise InvalidTransition(f"scan {scan_id} is {scan.status.value}, not running")
    return scan


def mark_interrupted(session: Session, scan_id: int, at: datetime, error: str | None) -> None:
    scan = running_scan(session, scan_id)
    scan.status = ScanStatus.INTERRUPTED
    scan.finished_at = aware(at, "at")
    scan.error = error or "interrupted before the scan finished"


def finish_scan(session: Session, scan: ScanRow, rec: ScanRecord, asset_row: AssetRow | None = None) -> StoredScan:
    """Complete a RUNNING scan row with everything ``rec`` holds and apply the lifecycle.

    ``asset_row``: the row :func:`begin_scan` upserted and locked in this same transaction
    (then it is not upserted again). A scan stored whole at once takes
    :func:`state.scan_write.record_scan` instead (no RUNNING row to update).
    """
    if rec.status == ScanStatus.RUNNING:
        raise InvalidRequest("a finished scan cannot have status running")
    finished = aware(rec.finished_at, "finished_at")
    if asset_row is None:
        asset_row = upsert_asset(session, rec.asset, aware(rec.started_at, "started_at"))
    if asset_row.id != scan.asset_id:
        raise InvalidRequest(f"scan {scan.id} was begun for another asset than {rec.asset.name!r}")
    scan.status, scan.finished_at = ScanStatus(rec.status), finished
    scan.started_at = aware(rec.started_at, "started_at")
    scan.trigger, scan.full, scan.forced_active = Trigger(rec.trigger), rec.full, rec.forced_active
    scan.posture_version, scan.catalog_version = rec.posture_version, rec.catalog_version
    scan.config_hash, scan.dns, scan.error = rec.config_hash, dict(rec.dns), rec.error
    scan.asset_config_hash = rec.asset_config_hash
    scan.target = scan_write.scan_target(rec.asset.url)
    runs = scan_write.run_rows(rec.probe_runs)
    session.flush()  # the scan row and the asset row, before the rest is written in Core
    return scan_write.complete(session.connection(), _id(scan.id), _id(asset_row.id), scan.status, finished, rec,
                               runs)


def expire_acceptances(
    session: Session, now: datetime, *, asset_id: int | None = None, scan_id: int | None = None
) -> list[int]:
    """Accepted findings whose acceptance ended by ``now`` go back to open."""
    query = select(FindingRow).where(
        FindingRow.state == FindingState.ACCEPTED, col(FindingRow.accepted_until) <= now
    )
    if asset_id is not None:
        query = query.where(FindingRow.asset_id == asset_id)
    expired: list[int] = []
    for row in session.exec(query.order_by(col(FindingRow.id)).with_for_update()):
        row.state = FindingState.OPEN
        expired.append(_id(row.id))
        session.add(EventRow(finding_id=_id(row.id), scan_id=scan_id, at=now,
                             kind=EventKind.ACCEPTANCE_EXPIRED, from_state=FindingState.ACCEPTED,
                             to_state=FindingState.OPEN,
                             detail={"until": _iso(row.accepted_until), "reason": row.accepted_reason,
                                     "by": row.accepted_by,
                                     **({"until_entered": row.accepted_until_entered}
                                        if row.accepted_until_entered else {})}))
    return expired


def _decision_target(session: Session, finding_id: int) -> FindingRow:
    row = session.get(FindingRow, finding_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no finding with id {finding_id}")
    return row


def _required(value: str, name: str) -> str:
    if not value or not value.strip():
        raise InvalidRequest(f"{name} must not be empty")
    return value.strip()


def accept(session: Session, finding_id: int, reason: str, by: str, until: datetime, at: datetime,
           until_entered: str | None = None) -> None:
    """``until_entered``: the end as the person typed it (a calendar date), shown in every output."""
    row = _decision_target(session, finding_id)
    until, at = aware(until, "until"), aware(at, "at")
    if row.state in CLOSED:
        raise InvalidTransition(f"finding {finding_id} is {row.state.value}: there is no risk left to accept")
    if until <= at:
        raise InvalidRequest(f"acceptance must end after it starts ({until.isoformat()} <= {at.isoformat()})")
    reason, by = _required(reason, "reason"), _required(by, "by")
    previous = row.state
    # Accepting again: the earlier acceptance stays in the event log, and this event names it.
    replaces = ({"replaces": {"reason": row.accepted_reason, "by": row.accepted_by,
                              "until": _iso(row.accepted_until),
                              **({"until_entered": row.accepted_until_entered}
                                 if row.accepted_until_entered else {})}}
                if previous == FindingState.ACCEPTED else {})
    row.state = FindingState.ACCEPTED
    row.accepted_reason, row.accepted_by, row.accepted_until = reason, by, until
    entered = (until_entered or "").strip()[:64] or None
    row.accepted_until_entered = entered
    session.add(EventRow(finding_id=finding_id, scan_id=None, at=at, kind=EventKind.ACCEPTED,
                         from_state=previous, to_state=FindingState.ACCEPTED,
                         detail={"reason": reason, "by": by, "until": until.isoformat(),
                                 **({"until_entered": entered} if entered else {}), **replaces}))


def mark_false_positive(session: Session, finding_id: int, reason: str, by: str, at: datetime) -> None:
    row = _decision_target(session, finding_id)
    at = aware(at, "at")
    reason, by = _required(reason, "reason"), _required(by, "by")
    previous = row.state
    row.state = FindingState.FALSE_POSITIVE
    row.false_positive_reason, row.false_positive_by = reason, by
    session.add(EventRow(finding_id=finding_id, scan_id=None, at=at, kind=EventKind.FALSE_POSITIVE,
                         from_state=previous, to_state=FindingState.FALSE_POSITIVE,
                         detail={"reason": reason, "by": by}))


DECIDED = (FindingState.ACCEPTED, FindingState.FALSE_POSITIVE)


def reopen(session: Session, finding_id: int, reason: str, by: str, at: datetime) -> FindingState:
    """Undo an acceptance or a false-positive mark; returns the state the finding goes back to.

    The finding returns to what it was before people decided on it: fixed (or resolved by
    configuration) when it was so and no scan has reported it since, else open. The event keeps
    who, why and the decision undone.
    """
    row = _decision_target(session, finding_id)
    at = aware(at, "at")
    if row.state not in DECIDED:
        raise InvalidTransition(f"finding {finding_id} is {row.state.value}: only an accepted finding or a "
                                "false positive can be reopened")
    reason, by = _required(reason, "reason"), _required(by, "by")
    decisions = session.exec(
        select(EventRow).where(EventRow.finding_id == finding_id,
                               col(EventRow.kind).in_([EventKind.ACCEPTED, EventKind.FALSE_POSITIVE]))
        .order_by(col(EventRow.at).desc(), col(EventRow.id).desc())
    ).all()
    before: FindingState | None = None
    decided_at: datetime | None = None
    for e in decisions:  # newest first: the first decision of the current run of decisions
        if e.from_state in DECIDED:
            continue
        before, decided_at = e.from_state, as_utc(e.at)
        break
    target = FindingState.OPEN
    if (before in CLOSED and decided_at is not None and as_utc(row.last_seen) <= decided_at
            and row.fixed_at is not None):
        target = before
    elif before == FindingState.REOPENED:
        target = FindingState.REOPENED
    previous = row.state
    undone: dict[str, Any] = ({"reason": row.accepted_reason, "by": row.accepted_by,
                               "until": _iso(row.accepted_until),
                               **({"until_entered": row.accepted_until_entered}
                                  if row.accepted_until_entered else {})}
                              if previous == FindingState.ACCEPTED
                              else {"reason": row.false_positive_reason, "by": row.false_positive_by})
    row.state = target
    session.add(EventRow(finding_id=finding_id, scan_id=None, at=at, kind=EventKind.REOPENED_BY_DECISION,
                         from_state=previous, to_state=target,
                         detail={"reason": reason, "by": by, "undid": previous.value, "undone": undone}))
    return target


def add_note(session: Session, finding_id: int, text: str, by: str, at: datetime) -> None:
    row = _decision_target(session, finding_id)
    session.add(EventRow(finding_id=finding_id, scan_id=None, at=aware(at, "at"), kind=EventKind.NOTE,
                         from_state=row.state, to_state=row.state,
                         detail={"text": _required(text, "note"), "by": _required(by, "by")}))


def prune_scans(session: Session, before: datetime) -> int:
    """Delete finished scans started before ``before`` with their probe runs and occurrences.

    Findings and their events stay: the events lose their scan link, not their history.
    The retention floor (three years by default) is the caller's policy, not enforced here.
    """
    from sqlalchemy import delete

    cutoff = aware(before, "before")
    result = session.execute(
        delete(ScanRow).where(col(ScanRow.started_at) < cutoff, col(ScanRow.status) != ScanStatus.RUNNING)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _id(value: int | None) -> int:
    if value is None:  # only before a flush; every caller flushes first
        raise RuntimeError("row has no id yet")
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
