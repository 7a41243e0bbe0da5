"""The storage API the agent uses::

    with Store.open(default_db_url()) as store:
        stored = store.record_scan(record)     # one transaction: scan + lifecycle
        open_now = store.findings(FindingFilter.OPEN)

Opening a store upgrades its schema to this version's head. Every write is one
transaction; every read returns frozen dataclasses (state.views) with no session
attached. Errors leave as :mod:`state.errors` exceptions with one-line messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from state import lifecycle, queries, scan_write
from state.engine import default_db_url, make_engine, parse_url, safe_url, writer
from state.errors import StoreError, UnstorableValue, translate
from state.lifecycle import ScanHeader, aware
from state.records import AssetRecord, FindingState, ScanRecord, ScanStatus, Trigger
from state.views import (
    AssetInfo,
    EventInfo,
    FindingFilter,
    FindingInfo,
    HistoryEntry,
    ScanDetail,
    ScanInfo,
    StoredScan,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

__all__ = ["Store", "default_db_url"]

T = TypeVar("T")


class Store:
    def __init__(self, engine: Engine, url: str) -> None:
        """Use :meth:`open`; this wraps an engine whose schema is already current."""
        self._engine = engine
        self._writer = writer(engine)
        self.url = url  # password hidden: safe for messages and logs

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect, upgrade the schema to head, and return the store."""
        from state.migrate import upgrade

        parsed = parse_url(url)
        shown = safe_url(parsed)
        try:
            engine = make_engine(parsed)
        except Exception as exc:
            raise translate(exc, f"cannot use database {shown}") from None
        try:
            with engine.connect():
                pass
            upgrade(writer(engine), reader=engine)
        except StoreError:
            engine.dispose()
            raise
        except Exception as exc:
            engine.dispose()
            raise translate(exc, f"cannot open database {shown}") from None
        return cls(engine, shown)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------

    @contextmanager
    def _session(self, doing: str, *, write: bool) -> Iterator[Session]:
        from sqlalchemy.exc import SQLAlchemyError
        from sqlmodel import Session

        try:
            with Session(self._writer if write else self._engine, expire_on_commit=False) as session:
                yield session
                if write:
                    session.commit()
        except (SQLAlchemyError, UnstorableValue) as exc:
            raise translate(exc, doing) from None

    def _write(self, doing: str, work: Callable[[Session], T]) -> T:
        with self._session(doing, write=True) as session:
            return work(session)

    def _read(self, doing: str, work: Callable[[Session], T]) -> T:
        with self._session(doing, write=False) as session:
            return work(session)

    # -- scans ----------------------------------------------------------------------

    def upsert_asset(self, asset: AssetRecord, at: datetime) -> AssetInfo:
        """Register an asset (configured assets count for cadence from when they were added)."""
        return self._write(
            f"cannot store asset {asset.name!r}",
            lambda s: queries.asset_info(lifecycle.upsert_asset(s, asset, at)),
        )

    def rename_asset(self, old: str, new: str) -> AssetInfo:
        """The stored asset ``old`` takes the name ``new``, history and findings with it."""
        return self._write(f"cannot rename asset {old!r}",
                           lambda s: queries.asset_info(lifecycle.rename_asset(s, old, new)))

    def record_scan(self, rec: ScanRecord) -> StoredScan:
        """Store a finished scan and apply the finding lifecycle, in one transaction."""
        header = _header(rec.started_at, rec.trigger, rec.full, rec.forced_active,
                         rec.posture_version, rec.catalog_version, rec.config_hash)

        from sqlalchemy.exc import SQLAlchemyError

        # A plain connection, no ORM session: scan_write speaks SQLAlchemy Core.
        try:
            with self._writer.begin() as conn:
                return scan_write.record_scan(conn, rec, header)
        except (SQLAlchemyError, UnstorableValue) as exc:
            raise translate(exc, f"cannot store the scan of {rec.asset.name!r}") from None

    def begin_scan(
        self,
        asset: AssetRecord,
        started_at: datetime,
        *,
        posture_version: str,
        catalog_version: str,
        config_hash: str,
        trigger: Trigger = Trigger.MANUAL,
        full: bool = True,
        forced_active: bool = False,
    ) -> int:
        """Store a RUNNING scan row now, so a crash leaves a row to mark interrupted."""
        header = _header(started_at, trigger, full, forced_active, posture_version, catalog_version,
                         config_hash)
        return self._write(
            f"cannot start a scan of {asset.name!r}",
            lambda s: _scan_id(lifecycle.begin_scan(s, asset, header)),
        )

    def finish_scan(self, scan_id: int, rec: ScanRecord) -> StoredScan:
        """Complete a RUNNING scan with everything it found, in one transaction."""
        return self._write(
            f"cannot store the scan of {rec.asset.name!r}",
            lambda s: lifecycle.finish_scan(s, lifecycle.running_scan(s, scan_id), rec),
        )

    def mark_interrupted(self, scan_id: int, at: datetime, error: str | None = None) -> None:
        self._write(
            f"cannot mark scan {scan_id} interrupted",
            lambda s: lifecycle.mark_interrupted(s, scan_id, at, error),
        )

    def prune_scans(self, before: datetime) -> int:
        """Delete scans started before ``before`` (findings and events stay); returns how many."""
        return self._write("cannot prune old scans", lambda s: lifecycle.prune_scans(s, before))

    # -- people's decisions ---------------------------------------------------------

    def accept(self, finding_id: int, reason: str, by: str, until: datetime, at: datetime,
               until_entered: str | None = None) -> None:
        """Accept the risk until ``until``; it reopens by itself when that passes."""
        self._write(
            f"cannot accept finding {finding_id}",
            lambda s: lifecycle.accept(s, finding_id, reason, by, until, at, until_entered),
        )

    def mark_false_positive(self, finding_id: int, reason: str, by: str, at: datetime) -> None:
        self._write(
            f"cannot mark finding {finding_id} false positive",
            lambda s: lifecycle.mark_false_positive(s, finding_id, reason, by, at),
        )

    def reopen(self, finding_id: int, reason: str, by: str, at: datetime) -> FindingState:
        """Undo an acceptance or a false-positive mark (who and why are recorded)."""
        return self._write(
            f"cannot reopen finding {finding_id}",
            lambda s: lifecycle.reopen(s, finding_id, reason, by, at),
        )

    def add_note(self, finding_id: int, text: str, by: str, at: datetime) -> None:
        self._write(
            f"cannot add a note to finding {finding_id}",
            lambda s: lifecycle.add_note(s, finding_id, text, by, at),
        )

    def reopen_expired_acceptances(self, now: datetime) -> list[int]:
        """Accepted findings past their ``until`` go back to open; returns their ids."""
        moment = aware(now, "now")
        return self._write(
            "cannot expire acceptances", lambda s: lifecycle.expire_acceptances(s, moment)
        )

    # -- queries --------------------------------------------------------------------

    def assets(self) -> list[AssetInfo]:
        return self._read("cannot list assets", queries.assets)

    def asset(self, name: str) -> AssetInfo:
        return self._read(f"cannot read asset {name!r}", lambda s: queries.asset(s, name))

    def findings(
        self, state: FindingFilter = FindingFilter.ALL, asset: str | None = None, *, now: datetime | None = None
    ) -> list[FindingInfo]:
        """Findings by stored state; with ``now``, as they stand at ``now`` (a lapsed acceptance is
        open). Every report of the present passes ``now``."""
        return self._read("cannot list findings", lambda s: queries.findings(s, state, asset, now))

    def findings_with_ids(self, ids: Iterable[int]) -> list[FindingInfo]:
        """The findings with these ids (unknown ones left out), by id."""
        return self._read("cannot list findings", lambda s: queries.findings_with_ids(s, ids))

    def finding(self, finding_id: int) -> FindingInfo:
        return self._read(f"cannot read finding {finding_id}", lambda s: queries.finding(s, finding_id))

    def events(self, finding_id: int) -> list[EventInfo]:
        return self._read(
            f"cannot read the history of finding {finding_id}", lambda s: queries.events(s, finding_id)
        )

    def scans(
        self,
        asset: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        status: ScanStatus | None = None,
    ) -> list[ScanInfo]:
        """Scans started in [since, until), oldest first."""
        lo = None if since is None else aware(since, "since")
        hi = None if until is None else aware(until, "until")
        return self._read("cannot list scans", lambda s: queries.scans(s, asset, lo, hi, status))

    def scan(self, scan_id: int) -> ScanDetail:
        return self._read(f"cannot read scan {scan_id}", lambda s: queries.scan(s, scan_id))

    def last_complete_scan(self, asset: str) -> ScanInfo | None:
        """None when the asset has no complete, full scan (or is unknown)."""
        return self._read(
            f"cannot read the scans of {asset!r}", lambda s: queries.last_complete_scan(s, asset)
        )

    def history(
        self, asset: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[HistoryEntry]:
        lo = None if since is None else aware(since, "since")
        hi = None if until is None else aware(until, "until")
        return self._read(
            f"cannot read the history of {asset!r}", lambda s: queries.history(s, asset, lo, hi)
        )


def _header(
    started_at: datetime,
    trigger: Trigger,
    full: bool,
    forced_active: bool,
    posture_version: str,
    catalog_version: str,
    config_hash: str,
) -> ScanHeader:
    return ScanHeader(
        started_at=aware(started_at, "started_at"), trigger=trigger, full=full,
        forced_active=forced_active, posture_version=posture_version,
        catalog_version=catalog_version, config_hash=config_hash,
    )


def _scan_id(scan: object) -> int:
    scan_id = getattr(scan, "id", None)
    if not isinstance(scan_id, int):
        raise StoreError("the database returned no id for the new scan")
    return scan_id
