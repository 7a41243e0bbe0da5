"""SQLModel tables. The schema itself is owned by the alembic migrations in
``state/migrations``; a test keeps these classes and the migrations identical.

A brand-new SQLite database is made from these classes directly (``state.migrate``,
no alembic), so they match the migrated schema column for column: a column a later
revision added comes last in its table, in the order the revisions added them
(tests/state/test_new_database.py compares the two databases' DDL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from state.coltypes import StrEnumType, UTCDateTime
from state.records import FindingState, RunStatus, ScanStatus, Trigger
from state.views import EventKind

# Deterministic constraint names on both databases: migrations can name what they alter.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class Base(SQLModel, registry=registry(metadata=metadata)):
    pass


def _fk(target: str, *, nullable: bool = False) -> Any:
    return Field(sa_column=Column(Integer, ForeignKey(target, ondelete="CASCADE"), nullable=nullable))


def _at(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _text(length: int | None = None, *, nullable: bool = True) -> Any:
    kind = String(length) if length else Text()
    return Field(default=None, sa_column=Column(kind, nullable=nullable))


class AssetRow(Base, table=True):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(255), nullable=False))
    url: str = Field(sa_column=Column(Text, nullable=False))
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    configured: bool = Field(default=False, nullable=False)
    added_at: datetime = _at()


class ScanRow(Base, table=True):
    __tablename__ = "scans"
    __table_args__ = (
        Index(None, "asset_id", "started_at"),
        Index(None, "asset_id", "status", "full", "finished_at"),
        Index(None, "status"),
        Index(None, "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = _fk("assets.id")
    status: ScanStatus = Field(sa_column=Column(StrEnumType(ScanStatus), nullable=False))
    trigger: Trigger = Field(sa_column=Column(StrEnumType(Trigger), nullable=False))
    full: bool = Field(default=True, nullable=False)
    forced_active: bool = Field(default=False, nullable=False)
    started_at: datetime = _at()
    finished_at: datetime | None = _at(nullable=True)
    posture_version: str = Field(sa_column=Column(String(64), nullable=False))
    catalog_version: str = Field(sa_column=Column(String(64), nullable=False))
    config_hash: str = Field(sa_column=Column(String(128), nullable=False))
    dns: dict[str, Any] = _json()
    error: str | None = _text()
    # What decides this asset's findings (kind, allow-lists, declarations, overrides, probe
    # settings); None before revision 0005.
    asset_config_hash: str | None = _text(128)
    # Where the scan looked: the asset's URL then, without its query (revision 0010; None before).
    # A finding last seen at another target is not observed fixed by a scan of this one.
    target: str | None = _text()


class ProbeRunRow(Base, table=True):
    __tablename__ = "probe_runs"
    __table_args__ = (Index(None, "scan_id"),)

    id: int | None = Field(default=None, primary_key=True)
    scan_id: int = _fk("scans.id")
    probe: str = Field(sa_column=Column(String(64), nullable=False))
    status: RunStatus = Field(sa_column=Column(StrEnumType(RunStatus), nullable=False))
    started_at: datetime = _at()
    finished_at: datetime = _at()
    observations: dict[str, Any] = _json()
    error_kind: str | None = _text(64)
    error: str | None = _text()
    skip_reason: str | None = _text()
    # What decides this probe's findings on this asset (its settings, allow-list, declarations,
    # kind, overrides); None before revision 0005.
    config_hash: str | None = _text(128)


class FindingRow(Base, table=True):
    """One row per identity (asset, check, key); its id is the finding id users see."""

    __tablename__ = "findings"
    __table_args__ = (
        UniqueConstraint("asset_id", "check_id", "key"),
        Index(None, "asset_id", "probe", "state"),
        Index(None, "state"),
        Index(None, "accepted_until"),
    )

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = _fk("assets.id")
    check_id: str = Field(sa_column=Column(String(128), nullable=False))
    key: str = Field(sa_column=Column(String(512), nullable=False))
    probe: str = Field(sa_column=Column(String(64), nullable=False))
    severity: str = Field(sa_column=Column(String(16), nullable=False))
    state: FindingState = Field(sa_column=Column(StrEnumType(FindingState), nullable=False))
    first_seen: datetime = _at()
    last_seen: datetime = _at()
    fixed_at: datetime | None = _at(nullable=True)
    reopened_count: int = Field(default=0, nullable=False)
    accepted_reason: str | None = _text()
    accepted_by: str | None = _text(255)
    accepted_until: datetime | None = _at(nullable=True)
    false_positive_reason: str | None = _text()
    false_positive_by: str | None = _text(255)
    evidence: dict[str, Any] = _json()
    accepted_until_entered: str | None = _text(64)  # as the person typed it: 2027-03-31


class OccurrenceRow(Base, table=True):
    """What one scan saw of one finding."""

    __tablename__ = "finding_occurrences"
    __table_args__ = (
        UniqueConstraint("scan_id", "finding_id"),
        Index(None, "finding_id"),
        Index(None, "probe_run_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    scan_id: int = _fk("scans.id")
    finding_id: int = _fk("findings.id")
    probe_run_id: int = _fk("probe_runs.id")
    severity: str = Field(sa_column=Column(String(16), nullable=False))
    evidence: dict[str, Any] = _json()


class EventRow(Base, table=True):
    """Every lifecycle transition, so an auditor can replay a finding's history."""

    __tablename__ = "finding_events"
    __table_args__ = (
        Index(None, "finding_id", "at"),
        Index(None, "scan_id"),
        Index(None, "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    finding_id: int = _fk("findings.id")
    # Pruning old scans must not erase the history of a finding that outlives them.
    scan_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("scans.id", ondelete="SET NULL"), nullable=True)
    )
    at: datetime = _at()
    kind: EventKind = Field(sa_column=Column(StrEnumType(EventKind), nullable=False))
    from_state: FindingState | None = Field(
        default=None, sa_column=Column(StrEnumType(FindingState), nullable=True)
    )
    to_state: FindingState = Field(sa_column=Column(StrEnumType(FindingState), nullable=False))
    detail: dict[str, Any] = _json()
