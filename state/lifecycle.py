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

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from state.coltypes import as_utc
from state.errors import InvalidRequest, InvalidTransition, NotFound
from state.records import (
    REACH_STEP,
    AssetRecord,
    FindingRecord,
    FindingState,
    ProbeRunRecord,
    RunStatus,
    ScanRecord,
    ScanStatus,
    Trigger,
)
from state.tables.core import AssetRow, EventRow, FindingRow, OccurrenceRow, ProbeRunRow, ScanRow, metadata
from state.views import EventKind, StoredScan

NEEDS_FIX = (FindingState.OPEN, FindingState.REOPENED)
# States a finding leaves for good unless a scan reports it again (then it reopens).
CLOSED = (FindingState.FIXED, FindingState.RESOLVED_BY_CONFIG)
# A probe that ran OK in one of these proves its own findings fixed. A failed or interrupted
# scan proves nothing, except that a reach step that ran OK proves the service reachable.
CONCLUSIVE = (ScanStatus.COMPLETE, ScanStatus.PARTIAL)


def aware(value: datetime, name: str) -> datetime:
    try:
        return as_utc(value)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: {exc}") from None


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


@dataclass(frozen=True)
class ScanHeader:
    started_at: datetime
    trigger: Trigger
    full: bool
    forced_active: bool
    posture_version: str
    catalog_version: str
    config_hash: str
    asset_config_hash: str | None = None


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


@dataclass
class _Outcome:
    finding_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    opened: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    fixed: list[int] = field(default_factory=list)
    resolved_by_config: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    seen_again: list[int] = field(default_factory=list)


def finish_scan(session: Session, scan: ScanRow, rec: ScanRecord, asset_row: AssetRow | None = None) -> StoredScan:
    """Complete a RUNNING scan row with everything ``rec`` holds and apply the lifecycle.

    ``asset_row``: the row :func:`begin_scan` upserted and locked in this same transaction
    (then it is not upserted again).
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

    runs = [
        ProbeRunRow(
            scan_id=_id(scan.id), probe=run.probe, status=RunStatus(run.status),
            started_at=aware(run.started_at, f"{run.probe}.started_at"),
            finished_at=aware(run.finished_at, f"{run.probe}.finished_at"),
            observations=dict(run.observations), error_kind=run.error_kind, error=run.error,
            skip_reason=run.skip_reason, config_hash=run.config_hash,
        )
        for run in rec.probe_runs
    ]
    session.add_all(runs)
    session.flush()

    # The same identity reported twice in one scan is one finding; the last report wins.
    reported: dict[tuple[str, str], tuple[FindingRecord, ProbeRunRow]] = {}
    for run_rec, run_row in zip(rec.probe_runs, runs, strict=True):
        for finding in run_rec.findings:
            reported[(finding.check_id, finding.key)] = (finding, run_row)

    asset_id = _id(asset_row.id)
    known = {
        (row.check_id, row.key): row
        for row in session.exec(select(FindingRow).where(FindingRow.asset_id == asset_id))
    }
    outcome = _Outcome()
    scan_id = _id(scan.id)
    outcome.expired = expire_acceptances(session, finished, asset_id=asset_id, scan_id=scan_id)
    _apply_reported(session, scan_id, asset_id, finished, reported, known, outcome)
    # A run that left part of itself out (an active part in quiet hours) proves nothing fixed.
    ok_runs = {row.probe: (row, r) for row, r in zip(runs, rec.probe_runs, strict=True)
               if row.status == RunStatus.OK and not row.skip_reason}
    if scan.status == ScanStatus.FAILED:
        ok_runs = {p: r for p, r in ok_runs.items() if p == REACH_STEP}
    if scan.status in CONCLUSIVE or (scan.status == ScanStatus.FAILED and ok_runs):
        _apply_fixed(session, scan_id, finished, ok_runs, reported, known, outcome)
    session.flush()
    return StoredScan(
        scan_id=scan_id, finding_ids=outcome.finding_ids, opened=tuple(outcome.opened),
        reopened=tuple(outcome.reopened), fixed=tuple(outcome.fixed),
        resolved_by_config=tuple(outcome.resolved_by_config), expired=tuple(outcome.expired),
        seen_again=tuple(outcome.seen_again),
    )


def _apply_reported(
    session: Session,
    scan_id: int,
    asset_id: int,
    at: datetime,
    reported: dict[tuple[str, str], tuple[FindingRecord, ProbeRunRow]],
    known: dict[tuple[str, str], FindingRow],
    outcome: _Outcome,
) -> None:
    new_rows: list[FindingRow] = []
    events: list[tuple[FindingRow, EventKind, FindingState | None, dict[str, Any]]] = []
    for ident, (finding, run) in reported.items():
        row = known.get(ident)
        if row is None:
            row = FindingRow(
                asset_id=asset_id, check_id=finding.check_id, key=finding.key, probe=run.probe,
                severity=str(finding.severity), state=FindingState.OPEN, first_seen=at, last_seen=at,
                fixed_at=None, reopened_count=0, evidence=dict(finding.evidence),
            )
            new_rows.append(row)
            known[ident] = row
            events.append((row, EventKind.OPENED, None, {"severity": row.severity}))
            continue
        if row.state in CLOSED:
            events.append((row, EventKind.REOPENED, row.state,
                           {"severity": str(finding.severity), "fixed_at": _iso(row.fixed_at)}))
            row.state, row.fixed_at = FindingState.REOPENED, None
            row.reopened_count += 1
        row.last_seen, row.severity, row.probe = at, str(finding.severity), run.probe
        row.evidence = dict(finding.evidence)
    session.add_all(new_rows)
    session.flush()  # assigns the new findings' ids

    for ident, (finding, run) in reported.items():
        row = known[ident]
        finding_id = _id(row.id)
        outcome.finding_ids[ident] = finding_id
        session.add(OccurrenceRow(scan_id=scan_id, finding_id=finding_id, probe_run_id=_id(run.id),
                                  severity=str(finding.severity), evidence=dict(finding.evidence)))
    new_ids = {id(row) for row in new_rows}
    for row, kind, from_state, detail in events:
        (outcome.opened if id(row) in new_ids else outcome.reopened).append(_id(row.id))
        session.add(EventRow(finding_id=_id(row.id), scan_id=scan_id, at=at, kind=kind,
                             from_state=from_state, to_state=row.state, detail=detail))
    changed = {_id(row.id) for row, _, _, _ in events}
    outcome.seen_again.extend(i for i in outcome.finding_ids.values() if i not in changed)


def _apply_fixed(
    session: Session,
    scan_id: int,
    at: datetime,
    ok_runs: dict[str, tuple[ProbeRunRow, ProbeRunRecord]],
    reported: dict[tuple[str, str], tuple[FindingRecord, ProbeRunRow]],
    known: dict[tuple[str, str], FindingRow],
    outcome: _Outcome,
) -> None:
    vanished = [(ident, row) for ident, row in known.items()
                if row.probe in ok_runs and ident not in reported and row.state in NEEDS_FIX]
    before = _config_when_last_seen(session, [_id(row.id) for _, row in vanished])
    for ident, row in vanished:
        run, run_rec = ok_runs[row.probe]
        previous = row.state
        config_before, config_after = before.get(_id(row.id)), run_rec.config_hash
        changed = config_before is not None and config_after is not None and config_before != config_after
        still_there = None if run_rec.observed is None else run_rec.observed.still_there(ident)
        detail: dict[str, Any] = {"probe": row.probe, "probe_run_id": run.id}
        if still_there or (changed and still_there is None):
            # The condition is (or may be) still there: the configuration stopped reporting it.
            detail |= {"config_hash_before": config_before, "config_hash_after": config_after,
                       "condition_still_observed": still_there}
            row.state, row.fixed_at = FindingState.RESOLVED_BY_CONFIG, at
            outcome.resolved_by_config.append(_id(row.id))
            kind = EventKind.RESOLVED_BY_CONFIG
        else:
            if changed:  # observed gone: a fix, even though the configuration changed too
                detail |= {"config_hash_before": config_before, "config_hash_after": config_after}
            row.state, row.fixed_at = FindingState.FIXED, at
            outcome.fixed.append(_id(row.id))
            kind = EventKind.FIXED
        session.add(EventRow(finding_id=_id(row.id), scan_id=scan_id, at=at, kind=kind,
                             from_state=previous, to_state=row.state, detail=detail))


def _config_when_last_seen(session: Session, finding_ids: list[int]) -> dict[int, str | None]:
    """finding id -> config hash of the probe run that last reported it."""
    if not finding_ids:
        return {}
    from sqlalchemy import func

    latest = (
        select(OccurrenceRow.finding_id, func.max(OccurrenceRow.scan_id).label("scan_id"))
        .where(col(OccurrenceRow.finding_id).in_(finding_ids))
        .group_by(col(OccurrenceRow.finding_id))
        .subquery()
    )
    rows = session.execute(
        select(latest.c.finding_id, ProbeRunRow.config_hash)
        .join(OccurrenceRow, (col(OccurrenceRow.finding_id) == latest.c.finding_id)
              & (col(OccurrenceRow.scan_id) == latest.c.scan_id))
        .join(ProbeRunRow, col(ProbeRunRow.id) == OccurrenceRow.probe_run_id)
    )
    return {int(fid): h for fid, h in rows}


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
