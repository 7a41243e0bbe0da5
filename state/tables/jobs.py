"""The ``jobs`` table: scheduled work claimed with a lease (migration 0003).

One row per unit of work, named by a deterministic key (``scan:ASSET:DUE`` for a
scheduled scan, ``cycle:SLOT`` for an evaluation cycle), so every agent pointed
at one database computes the same keys and the unique key makes the row the
single place where a claim is decided.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field

from state.coltypes import StrEnumType, UTCDateTime
from state.tables.core import Base


class JobKind(enum.StrEnum):
    SCAN = "scan"  # one scheduled scan of one asset
    CYCLE = "cycle"  # deadlines, cadence, alerts and the digest


class JobState(enum.StrEnum):
    PENDING = "pending"  # due, nobody holds it (new, or released by a stopping or dead agent)
    RUNNING = "running"  # claimed: ``owner`` holds it until ``lease_until``
    DONE = "done"
    FAILED = "failed"  # gave up: it kept dying (max attempts) or could not run


class JobRow(Base, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("key"),
        Index(None, "state", "lease_until"),
        Index(None, "kind", "asset", "state"),
        Index(None, "finished_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_column=Column(String(512), nullable=False))
    kind: JobKind = Field(sa_column=Column(StrEnumType(JobKind), nullable=False))
    asset: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    state: JobState = Field(sa_column=Column(StrEnumType(JobState), nullable=False))
    owner: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    attempts: int = Field(default=0, nullable=False)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    claimed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    # The scan this job's current attempt writes; kept when old scans are pruned (SET NULL).
    scan_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("scans.id", ondelete="SET NULL"), nullable=True)
    )
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
