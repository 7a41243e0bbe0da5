"""Storing a finished scan and the finding lifecycle it causes, in SQLAlchemy Core.

The rules are those of :mod:`state.lifecycle` (its docstring); this module is how they are
written: a handful of statements per scan whatever it found (the asset upsert, the scan
row, every probe run in one INSERT, one SELECT of the asset's findings, one INSERT each for
new findings, occurrences and events, one UPDATE per set of changed columns), no ORM unit
of work. Only the columns a scan changes are written, as the ORM did, so a decision taken
on a finding meanwhile (accepted, false positive) is never overwritten with a stale state.

Functions take a connection inside the caller's transaction and never commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import Text, bindparam, cast, func, insert, select, update

from state.coltypes import as_utc
from state.errors import InvalidRequest
from state.jsoncodec import dumps
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
from state.tables.core import metadata
from state.views import EventKind, StoredScan

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.dml import Update

NEEDS_FIX = (FindingState.OPEN, FindingState.REOPENED)
# States a finding leaves for good unless a scan reports it again (then it reopens).
CLOSED = (FindingState.FIXED, FindingState.RESOLVED_BY_CONFIG)
# A probe that ran OK in one of these proves its own findings fixed. A failed or interrupted
# scan proves nothing, except that a reach step that ran OK proves the service reachable.
CONCLUSIVE = (ScanStatus.COMPLETE, ScanStatus.PARTIAL)

ASSETS = metadata.tables["assets"]
SCANS = metadata.tables["scans"]
RUNS = metadata.tables["probe_runs"]
FINDINGS = metadata.tables["findings"]
OCCURRENCES = metadata.tables["finding_occurrences"]
EVENTS = metadata.tables["finding_events"]

# What a scan may change on a finding row, in the order the UPDATE names them.
_MUTABLE = ("state", "fixed_at", "reopened_count", "last_seen", "severity", "probe", "evidence")
# By id: the events a scan writes come in one order on every database. Evidence as the
# stored text: compared with the new evidence as it would be stored, it is parsed only when
# it differs (most findings of an asset are not reported in a given scan).
_KNOWN = select(
    FINDINGS.c.id, FINDINGS.c.check_id, FINDINGS.c.key, *(FINDINGS.c[c] for c in _MUTABLE[:-1]),
    cast(FINDINGS.c.evidence, Text), FINDINGS.c.accepted_until, FINDINGS.c.accepted_reason,
    FINDINGS.c.accepted_by, FINDINGS.c.accepted_until_entered,
).where(FINDINGS.c.asset_id == bindparam("asset_id")).order_by(FINDINGS.c.id)
_EXPIRING = (
    select(FINDINGS.c.id, FINDINGS.c.state, FINDINGS.c.accepted_until, FINDINGS.c.accepted_reason,
           FINDINGS.c.accepted_by, FINDINGS.c.accepted_until_entered)
    .where(FINDINGS.c.id.in_(bindparam("ids", expanding=True)), FINDINGS.c.state == FindingState.ACCEPTED,
           FINDINGS.c.accepted_until <= bindparam("now"))
    .order_by(FINDINGS.c.id)
    .with_for_update()
)
_INSERT_SCAN = insert(SCANS).returning(SCANS.c.id)
_INSERT_RUNS = insert(RUNS).returning(RUNS.c.id, RUNS.c.probe)
_INSERT_RUN = insert(RUNS).returning(RUNS.c.id)
_INSERT_FINDINGS = insert(FINDINGS).returning(FINDINGS.c.id, FINDINGS.c.check_id, FINDINGS.c.key)
_INSERT_OCCURRENCES = insert(OCCURRENCES)
_INSERT_EVENTS = insert(EVENTS)
_LATEST = (
    select(OCCURRENCES.c.finding_id, func.max(OCCURRENCES.c.scan_id).label("scan_id"))
    .where(OCCURRENCES.c.finding_id.in_(bindparam("ids", expanding=True)))
    .group_by(OCCURRENCES.c.finding_id)
    .subquery()
)
_CONFIG_WHEN_LAST_SEEN = (
    select(_LATEST.c.finding_id, RUNS.c.config_hash, SCANS.c.target)
    .join(OCCURRENCES, (OCCURRENCES.c.finding_id == _LATEST.c.finding_id)
          & (OCCURRENCES.c.scan_id == _LATEST.c.scan_id))
    .join(RUNS, RUNS.c.id == OCCURRENCES.c.probe_run_id)
    .join(SCANS, SCANS.c.id == _LATEST.c.scan_id)
)
_UPSERTS: dict[str, Any] = {}
_UPDATES: dict[tuple[str, ...], Update] = {}


def aware(value: datetime, name: str) -> datetime:
    try:
        return as_utc(value)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: {exc}") from None


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


@dataclass
class _Outcome:
    finding_ids: dict[tuple[str, str], int] = field(default_factory=dict)
    opened: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    fixed: list[int] = field(default_factory=list)
    resolved_by_config: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    seen_again: list[int] = field(default_factory=list)

    def stored(self, scan_id: int) -> StoredScan:
        return StoredScan(
            scan_id=scan_id, finding_ids=self.finding_ids, opened=tuple(self.opened),
            reopened=tuple(self.reopened), fixed=tuple(self.fixed),
            resolved_by_config=tuple(self.resolved_by_config), expired=tuple(self.expired),
            seen_again=tuple(self.seen_again),
        )


@dataclass(slots=True)
class _Finding:
    """A finding row as this scan sees it: ``was`` holds the mutable columns as read."""

    id: int
    state: FindingState
    fixed_at: datetime | None
    reopened_count: int
    last_seen: datetime
    severity: str
    probe: str
    evidence: dict[str, Any] | None  # None: unchanged, as stored (``stored_evidence``)
    stored_evidence: str | None = None
    accepted_until: datetime | None = None
    accepted_reason: str | None = None
    accepted_by: str | None = None
    accepted_until_entered: str | None = None
    was: tuple[Any, ...] | None = None  # None: inserted by this scan

    def changes(self) -> dict[str, Any]:
        if self.was is None:
            return {}
        now = (self.state, self.fixed_at, self.reopened_count, self.last_seen, self.severity, self.probe)
        changed: dict[str, Any] = {
            name: new for name, old, new in zip(_MUTABLE, self.was, now, strict=False) if old != new}
        if self.evidence is not None:
            changed["evidence"] = self.evidence
        return changed

    def refresh_evidence(self, evidence: dict[str, Any]) -> None:
        """Written only if it differs from what is stored (as the ORM compared: by value)."""
        stored = self.stored_evidence
        if stored is None or (dumps(evidence) != stored and json.loads(stored) != evidence):
            self.evidence = evidence


def upsert_asset_id(conn: Connection, asset: AssetRecord, at: datetime) -> int:
    """Insert the asset if new, refresh url/kind/configured, lock its row; its id.

    One statement: ``ON CONFLICT DO UPDATE`` takes the row lock on PostgreSQL (serialising
    concurrent scans of one asset, as ``SELECT ... FOR UPDATE`` did); SQLite already
    serialises writers.
    """
    if not asset.name:
        raise InvalidRequest("an asset needs a name")
    values = {"name": asset.name, "url": asset.url, "kind": asset.kind,
              "configured": asset.configured, "added_at": aware(at, "added_at")}
    stmt = _UPSERTS.get(conn.dialect.name)
    if stmt is None:
        stmt = _UPSERTS[conn.dialect.name] = _upsert(conn.dialect.name)
    return int(conn.execute(stmt, values).scalar_one())


def _upsert(dialect: str) -> Any:
    refreshed = ("url", "kind", "configured")
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(ASSETS)
        stmt: Any = pg.on_conflict_do_update(index_elements=["name"], set_={c: pg.excluded[c] for c in refreshed})
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(ASSETS)
        stmt = lite.on_conflict_do_update(index_elements=["name"], set_={c: lite.excluded[c] for c in refreshed})
    return stmt.returning(ASSETS.c.id)


def record_scan(conn: Connection, rec: ScanRecord, header: ScanHeader) -> StoredScan:
    """Store a finished scan (never RUNNING) with its runs, and apply the lifecycle.

    ``conn``: a connection inside the caller's transaction (or ``session.connection()``).
    """
    if rec.status == ScanStatus.RUNNING:
        raise InvalidRequest("a finished scan cannot have status running")
    started = aware(header.started_at, "started_at")
    finished = aware(rec.finished_at, "finished_at")
    runs = run_rows(rec.probe_runs)
    asset_id = upsert_asset_id(conn, rec.asset, started)
    scan_id = int(conn.execute(_INSERT_SCAN, {
        "asset_id": asset_id, "status": ScanStatus(rec.status), "trigger": Trigger(rec.trigger),
        "full": rec.full, "forced_active": rec.forced_active, "started_at": aware(rec.started_at, "started_at"),
        "finished_at": finished, "posture_version": rec.posture_version, "catalog_version": rec.catalog_version,
        "config_hash": rec.config_hash, "asset_config_hash": rec.asset_config_hash, "dns": dict(rec.dns),
        "error": rec.error, "target": scan_target(rec.asset.url),
    }).scalar_one())
    return complete(conn, scan_id, asset_id, ScanStatus(rec.status), finished, rec, runs)


def run_rows(records: Sequence[ProbeRunRecord]) -> list[dict[str, Any]]:
    return [
        {"probe": run.probe, "status": RunStatus(run.status),
         "started_at": aware(run.started_at, f"{run.probe}.started_at"),
         "finished_at": aware(run.finished_at, f"{run.probe}.finished_at"),
         "observations": dict(run.observations), "error_kind": run.error_kind, "error": run.error,
         "skip_reason": run.skip_reason, "config_hash": run.config_hash}
        for run in records
    ]


def complete(
    conn: Connection,
    scan_id: int,
    asset_id: int,
    status: ScanStatus,
    finished: datetime,
    rec: ScanRecord,
    runs: list[dict[str, Any]] | None = None,
) -> StoredScan:
    """Write the probe runs of scan ``scan_id`` (its row already final) and apply the lifecycle."""
    if runs is None:
        runs = run_rows(rec.probe_runs)
    run_ids = _insert_runs(conn, scan_id, runs)

    # The same identity reported twice in one scan is one finding; the last report wins.
    reported: dict[tuple[str, str], tuple[FindingRecord, int, str]] = {}
    for run_rec, run_id in zip(rec.probe_runs, run_ids, strict=True):
        for finding in run_rec.findings:
            reported[(finding.check_id, finding.key)] = (finding, run_id, run_rec.probe)

    known: dict[tuple[str, str], _Finding] = {}
    for r in conn.execute(_KNOWN, {"asset_id": asset_id}):
        row = _Finding(id=r[0], state=r[3], fixed_at=r[4], reopened_count=r[5], last_seen=r[6], severity=r[7],
                       probe=r[8], evidence=None, stored_evidence=r[9], accepted_until=r[10],
                       accepted_reason=r[11], accepted_by=r[12], accepted_until_entered=r[13])
        row.was = (row.state, row.fixed_at, row.reopened_count, row.last_seen, row.severity, row.probe)
        known[(r[1], r[2])] = row
    outcome = _Outcome()
    events: list[dict[str, Any]] = []
    _expire(conn, scan_id, finished, known.values(), events, outcome)
    _apply_reported(conn, scan_id, asset_id, finished, reported, known, events, outcome)
    # A run that left part of itself out (an active part in quiet hours) proves nothing fixed.
    ok_runs = {r.probe: (run_id, r) for r, run_id in zip(rec.probe_runs, run_ids, strict=True)
               if RunStatus(r.status) == RunStatus.OK and not r.skip_reason}
    if status == ScanStatus.FAILED:
        ok_runs = {p: r for p, r in ok_runs.items() if p == REACH_STEP}
    if status in CONCLUSIVE or (status == ScanStatus.FAILED and ok_runs):
        _apply_fixed(conn, scan_id, finished, ok_runs, reported, known, events, outcome, scan_target(rec.asset.url))
    if events:
        conn.execute(_INSERT_EVENTS, events)
    _update_findings(conn, known.values())
    return outcome.stored(scan_id)


def _insert_runs(conn: Connection, scan_id: int, runs: list[dict[str, Any]]) -> list[int]:
    """Insert the runs; their ids in the order given."""
    if not runs:
        return []
    for run in runs:
        run["scan_id"] = scan_id
    probes = [run["probe"] for run in runs]
    if len(set(probes)) == len(probes):  # one INSERT; its RETURNING rows matched by probe name
        by_probe = {p: int(i) for i, p in conn.execute(_INSERT_RUNS, runs)}
        return [by_probe[p] for p in probes]
    return [int(conn.execute(_INSERT_RUN, run).scalar_one()) for run in runs]


def _expire(
    conn: Connection,
    scan_id: int,
    now: datetime,
    rows: Iterable[_Finding],
    events: list[dict[str, Any]],
    outcome: _Outcome,
) -> None:
    """Accepted findings of the asset whose acceptance ended by ``now`` go back to open."""
    candidates = {row.id: row for row in rows
                  if row.state == FindingState.ACCEPTED and row.accepted_until is not None
                  and row.accepted_until <= now}
    if not candidates:
        return
    # Locked and read again (PostgreSQL): a decision taken meanwhile is respected.
    for fid, state, until, reason, by, entered in conn.execute(_EXPIRING, {"ids": list(candidates), "now": now}):
        row = candidates[fid]
        row.state, row.accepted_until, row.accepted_reason = FindingState.OPEN, until, reason
        row.accepted_by, row.accepted_until_entered = by, entered
        outcome.expired.append(fid)
        events.append(_event(fid, scan_id, now, EventKind.ACCEPTANCE_EXPIRED, state, FindingState.OPEN,
                             {"until": _iso(until), "reason": reason, "by": by,
                              **({"until_entered": entered} if entered else {})}))


def _apply_reported(
    conn: Connection,
    scan_id: int,
    asset_id: int,
    at: datetime,
    reported: dict[tuple[str, str], tuple[FindingRecord, int, str]],
    known: dict[tuple[str, str], _Finding],
    events: list[dict[str, Any]],
    outcome: _Outcome,
) -> None:
    new: list[tuple[tuple[str, str], dict[str, Any]]] = []
    changed: list[tuple[tuple[str, str], EventKind, FindingState | None, dict[str, Any]]] = []
    for ident, (finding, _run_id, probe) in reported.items():
        row = known.get(ident)
        severity = str(finding.severity)
        if row is None:
            new.append((ident, {
                "asset_id": asset_id, "check_id": finding.check_id, "key": finding.key, "probe": probe,
                "severity": severity, "state": FindingState.OPEN, "first_seen": at, "last_seen": at,
                "fixed_at": None, "reopened_count": 0, "evidence": dict(finding.evidence),
            }))
            changed.append((ident, EventKind.OPENED, None, {"severity": severity}))
            continue
        if row.state in CLOSED:
            changed.append((ident, EventKind.REOPENED, row.state,
                            {"severity": severity, "fixed_at": _iso(row.fixed_at)}))
            row.state, row.fixed_at = FindingState.REOPENED, None
            row.reopened_count += 1
        row.last_seen, row.severity, row.probe = at, severity, probe
        row.refresh_evidence(dict(finding.evidence))
    if new:
        ids = {(c, k): int(i) for i, c, k in conn.execute(_INSERT_FINDINGS, [values for _, values in new])}
        for ident, values in new:
            known[ident] = _Finding(id=ids[ident], state=FindingState.OPEN, fixed_at=None, reopened_count=0,
                                    last_seen=at, severity=values["severity"], probe=values["probe"],
                                    evidence=values["evidence"])

    occurrences = []
    for ident, (finding, run_id, _probe) in reported.items():
        finding_id = known[ident].id
        outcome.finding_ids[ident] = finding_id
        occurrences.append({"scan_id": scan_id, "finding_id": finding_id, "probe_run_id": run_id,
                            "severity": str(finding.severity), "evidence": dict(finding.evidence)})
    if occurrences:
        conn.execute(_INSERT_OCCURRENCES, occurrences)
    for ident, kind, from_state, detail in changed:
        row = known[ident]
        (outcome.opened if kind == EventKind.OPENED else outcome.reopened).append(row.id)
        events.append(_event(row.id, scan_id, at, kind, from_state, row.state, detail))
    touched = {known[ident].id for ident, _, _, _ in changed}
    outcome.seen_again.extend(i for i in outcome.finding_ids.values() if i not in touched)


def _apply_fixed(
    conn: Connection,
    scan_id: int,
    at: datetime,
    ok_runs: dict[str, tuple[int, ProbeRunRecord]],
    reported: dict[tuple[str, str], tuple[FindingRecord, int, str]],
    known: dict[tuple[str, str], _Finding],
    events: list[dict[str, Any]],
    outcome: _Outcome,
    target: str,
) -> None:
    vanished = [(ident, row) for ident, row in known.items()
                if row.probe in ok_runs and ident not in reported and row.state in NEEDS_FIX]
    before = config_when_last_seen(conn, [row.id for _, row in vanished])
    for ident, row in vanished:
        run_id, run_rec = ok_runs[row.probe]
        previous = row.state
        config_before, target_before = before.get(row.id, (None, None))
        config_after = run_rec.config_hash
        changed = config_before is not None and config_after is not None and config_before != config_after
        still_there = None if run_rec.observed is None else run_rec.observed.still_there(ident)
        detail: dict[str, Any] = {"probe": row.probe, "probe_run_id": run_id}
        if target_before is not None and target_before != target:
            # The asset was pointed elsewhere: this scan never looked where the finding was seen.
            detail |= {"config_hash_before": config_before, "config_hash_after": config_after,
                       "target_before": target_before, "target_after": target}
            row.state, row.fixed_at = FindingState.RESOLVED_BY_CONFIG, at
            outcome.resolved_by_config.append(row.id)
            kind = EventKind.RESOLVED_BY_CONFIG
        elif still_there or (changed and still_there is None):
            # The condition is (or may be) still there: the configuration stopped reporting it.
            detail |= {"config_hash_before": config_before, "config_hash_after": config_after,
                       "condition_still_observed": still_there}
            row.state, row.fixed_at = FindingState.RESOLVED_BY_CONFIG, at
            outcome.resolved_by_config.append(row.id)
            kind = EventKind.RESOLVED_BY_CONFIG
        else:
            if changed:  # observed gone: a fix, even though the configuration changed too
                detail |= {"config_hash_before": config_before, "config_hash_after": config_after}
            row.state, row.fixed_at = FindingState.FIXED, at
            outcome.fixed.append(row.id)
            kind = EventKind.FIXED
        events.append(_event(row.id, scan_id, at, kind, previous, row.state, detail))


def config_when_last_seen(conn: Connection, finding_ids: list[int]) -> dict[int, tuple[str | None, str | None]]:
    """finding id -> (config hash of the probe run that last reported it, that scan's target)."""
    if not finding_ids:
        return {}
    rows = conn.execute(_CONFIG_WHEN_LAST_SEEN, {"ids": finding_ids})
    return {int(fid): (h, t) for fid, h, t in rows}


def scan_target(url: str) -> str:
    """Where a scan of the asset at ``url`` looks: the URL without its query or fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _update_findings(conn: Connection, rows: Iterable[_Finding]) -> None:
    """One executemany UPDATE per set of changed columns; untouched columns are not written."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        changes = row.changes()
        if changes:
            groups.setdefault(tuple(changes), []).append(
                {"f_id": row.id, **{f"v_{name}": value for name, value in changes.items()}})
    for columns, params in groups.items():
        stmt = _UPDATES.get(columns)
        if stmt is None:
            stmt = _UPDATES[columns] = (update(FINDINGS).where(FINDINGS.c.id == bindparam("f_id"))
                                        .values({name: bindparam(f"v_{name}") for name in columns}))
        conn.execute(stmt, params)


def _event(finding_id: int, scan_id: int | None, at: datetime, kind: EventKind, from_state: FindingState | None,
           to_state: FindingState, detail: dict[str, Any]) -> dict[str, Any]:
    return {"finding_id": finding_id, "scan_id": scan_id, "at": at, "kind": kind, "from_state": from_state,
            "to_state": to_state, "detail": detail}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
