"""The compliance calendar's records: a periodic duty (penetration test, drill, declaration...) done.

Registered on :data:`state.tables.core.metadata` (``state.tables`` imports this module).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, Index, Integer, LargeBinary, String, Text
from sqlmodel import Field

from state.coltypes import UTCDateTime
from state.tables.core import Base


class DutyRow(Base, table=True):
    """One duty performed: the calendar date as entered, who did it, its evidence kept byte for byte."""

    __tablename__ = "duty_records"
    __table_args__ = (Index(None, "kind", "performed_on"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(sa_column=Column(String(32), nullable=False))  # schedules.duties.DutyKind
    performed_on: date = Field(sa_column=Column(Date, nullable=False))  # a calendar date (agent time zone)
    performed_entered: str = Field(sa_column=Column(String(64), nullable=False))  # exactly as typed
    performed_by: str = Field(sa_column=Column(String(255), nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    evidence_name: str | None = Field(default=None, sa_column=Column(String(255), nullable=True))
    evidence_path: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # as given
    evidence_sha256: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    evidence_size: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    # Listing queries name their columns: they must not pull megabytes of reports.
    evidence: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
