"""What the delivery log and the third-party scan register hand back (cheap to import)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any


class DeliveryEvent(enum.StrEnum):
    ALERT = "alert"
    DIGEST = "digest"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # not delivered yet: due at next_retry_at (None: at once)
    SENT = "sent"
    SUPERSEDED = "superseded"  # its condition gave way to a newer one before it was delivered
    FAILED = "failed"  # a one-off send (a manual digest) that failed: not retried


@dataclass(frozen=True)
class DeliveryInfo:
    id: int
    channel: str
    channel_label: str
    event: DeliveryEvent
    condition: str
    state: DeliveryState
    created_at: datetime
    attempts: int
    last_attempt_at: datetime | None
    next_retry_at: datetime | None
    sent_at: datetime | None
    last_error: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class ExternalScanInfo:
    id: int
    asset: str
    performed_at: datetime
    performed_by: str
    recorded_at: datetime
    evidence_name: str
    evidence_sha256: str
    evidence_size: int
    note: str | None
    performed_entered: str | None = None  # the date as typed (2026-11-15); performed_at is its instant
