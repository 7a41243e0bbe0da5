"""What the store hands back: frozen dataclasses, never ORM objects.

Cheap to import (no SQLAlchemy), so the CLI can type against them freely.
Every datetime here is timezone-aware UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from state.records import FindingState, RunStatus, ScanStatus, Trigger


class EventKind(enum.StrEnum):
    OPENED = "opened"
    FIXED = "fixed"
    REOPENED = "reopened"
    ACCEPTED = "accepted"
    ACCEPTANCE_EXPIRED = "acceptance_expired"
    FALSE_POSITIVE = "false_positive"
    NOTE = "note"
    RESOLVED_BY_CONFIG = "resolved_by_config"  # gone because the configuration changed, not fixed
    # A person undid an acceptance or a false-positive mark (findings reopen): not a reappearance,
    # so it neither counts as reopened nor restarts a deadline.
    REOPENED_BY_DECISION = "reopened_by_decision"


class FindingFilter(enum.StrEnum):
    OPEN = "open"  # open and reopened: what still needs fixing
    FIXED = "fixed"
    ACCEPTED = "accepted"
    FALSE_POSITIVE = "false_positive"
    RESOLVED_BY_CONFIG = "resolved_by_config"
    ALL = "all"


class HistoryKind(enum.StrEnum):
    SCAN = "scan"
    EVENT = "event"


@dataclass(frozen=True)
class AssetInfo:
    id: int
    name: str
    url: str
    kind: str
    configured: bool
    added_at: datetime


@dataclass(frozen=True)
class ScanInfo:
    id: int
    asset: str
    asset_id: int
    status: ScanStatus
    trigger: Trigger
    full: bool
    forced_active: bool
    started_at: datetime
    finished_at: datetime | None  # None while RUNNING
    posture_version: str
    catalog_version: str
    config_hash: str
    dns: dict[str, Any]
    error: str | None
    asset_config_hash: str | None = None  # what decides this asset's findings (None before 0005)
    target: str | None = None  # where the scan looked: the asset's URL without its query (None before 0010)


@dataclass(frozen=True)
class ProbeRunInfo:
    id: int
    scan_id: int
    probe: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime
    observations: dict[str, Any]
    error_kind: str | None
    error: str | None
    skip_reason: str | None


@dataclass(frozen=True)
class OccurrenceInfo:
    """One finding as one scan saw it."""

    scan_id: int
    finding_id: int
    probe_run_id: int
    probe: str
    check_id: str
    key: str
    severity: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class ScanDetail:
    scan: ScanInfo
    probe_runs: tuple[ProbeRunInfo, ...]
    occurrences: tuple[OccurrenceInfo, ...]


@dataclass(frozen=True)
class FindingInfo:
    id: int  # the stable id users see; the same finding keeps it scan after scan
    asset: str
    asset_id: int
    check_id: str
    key: str
    probe: str
    severity: str  # latest effective severity
    state: FindingState
    first_seen: datetime
    last_seen: datetime
    fixed_at: datetime | None
    reopened_count: int
    evidence: dict[str, Any]  # as last seen
    accepted_reason: str | None = None
    accepted_by: str | None = None
    accepted_until: datetime | None = None
    accepted_until_entered: str | None = None  # as typed (2027-03-31); None before revision 0005
    false_positive_reason: str | None = None
    false_positive_by: str | None = None

    def at(self, now: datetime) -> FindingInfo:
        """This finding as it stands at ``now``. An acceptance ends at its end date whether or not a
        cycle or a scan of the asset has written the expiry yet (state.lifecycle.expire_acceptances):
        past it the finding is open again, exactly as that write would leave it."""
        if self.state is FindingState.ACCEPTED and self.accepted_until is not None and self.accepted_until <= now:
            return replace(self, state=FindingState.OPEN)
        return self


@dataclass(frozen=True)
class EventInfo:
    id: int
    finding_id: int
    asset: str
    check_id: str
    key: str
    scan_id: int | None  # None for people's decisions (accept, false positive, note)
    at: datetime
    kind: EventKind
    from_state: FindingState | None  # None for the opening event
    to_state: FindingState
    detail: dict[str, Any]


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    kind: HistoryKind
    scan: ScanInfo | None = None
    event: EventInfo | None = None


@dataclass(frozen=True)
class StoredScan:
    scan_id: int
    finding_ids: Mapping[tuple[str, str], int]  # (check_id, key) -> finding id, for this scan's findings
    opened: tuple[int, ...] = ()  # new findings (alert material)
    reopened: tuple[int, ...] = ()
    fixed: tuple[int, ...] = ()
    resolved_by_config: tuple[int, ...] = ()  # vanished because the asset's configuration changed
    expired: tuple[int, ...] = ()  # acceptances that lapsed by this scan's time
    seen_again: tuple[int, ...] = ()  # already known, reported again (any state but fixed)
