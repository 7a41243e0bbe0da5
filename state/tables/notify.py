"""Tables for remediation tracking's side records: the notification delivery log and
scans performed by other tools or third parties.

Registered on :data:`state.tables.core.metadata` (``state.tables.core`` imports this module), so
alembic's comparison and the migrations see them with the rest of the schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field

from state.coltypes import StrEnumType, UTCDateTime
from state.delivery_views import DeliveryEvent, DeliveryState
from state.tables.core import Base


class DeliveryRow(Base, table=True):
    """One alert condition (or digest firing) for one channel: sent once, retried until it is.

    ``channel`` is a hash of the channel's URL, never the URL: URLs carry secrets.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("channel", "condition"),
        Index(None, "state", "next_retry_at"),
        Index(None, "channel", "state"),
        Index(None, "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(sa_column=Column(String(64), nullable=False))
    channel_label: str = Field(sa_column=Column(Text, nullable=False))  # the URL with its secrets masked
    event: DeliveryEvent = Field(sa_column=Column(StrEnumType(DeliveryEvent), nullable=False))
    condition: str = Field(sa_column=Column(String(255), nullable=False))
    state: DeliveryState = Field(sa_column=Column(StrEnumType(DeliveryState), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    attempts: int = Field(default=0, nullable=False)
    last_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    next_retry_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ExternalScanRow(Base, table=True):
    """A scan another tool or a third party performed, with its report kept byte for byte."""

    __tablename__ = "external_scans"
    __table_args__ = (Index(None, "asset_id", "performed_at"),)

    id: int | None = Field(default=None, primary_key=True)
    asset_id: int = Field(
        sa_column=Column(Integer, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False)
    )
    performed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    performed_by: str = Field(sa_column=Column(String(255), nullable=False))
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    evidence_name: str = Field(sa_column=Column(String(255), nullable=False))
    evidence_sha256: str = Field(sa_column=Column(String(64), nullable=False))
    evidence_size: int = Field(sa_column=Column(Integer, nullable=False))
    # Listing queries name their columns: they must not pull megabytes of reports.
    evidence: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The date as the person typed it (2026-11-15); performed_at is its instant.
    performed_entered: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
