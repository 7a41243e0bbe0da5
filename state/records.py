"""What the agent hands to storage, and the enums storage keeps.

Frozen, storage-agnostic records: the agent builds them from probe results;
:mod:`state.store` writes each :class:`ScanRecord` in one transaction.
``state`` imports nothing from ``agent``, ``probes`` or ``schedules``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vocab import AssetKind, Severity
from vocab import FindingState as FindingState
from vocab import RunStatus as RunStatus
from vocab import ScanStatus as ScanStatus
from vocab import Trigger as Trigger

# The scan's first step (did anything answer?), stored as a probe run of this name.
REACH_STEP = "reach"


@dataclass(frozen=True)
class AssetRecord:
    name: str
    url: str  # normalised
    kind: AssetKind
    configured: bool  # from the config file, not an ad-hoc URL on the command line


@dataclass(frozen=True)
class FindingRecord:
    check_id: str
    key: str
    severity: Severity  # effective severity for this instance
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Observed:
    """The conditions a probe run saw, reported or not: how a fix is told from a config change."""

    checks: frozenset[str]  # the check ids this run can speak for
    present: frozenset[tuple[str, str]]  # (check_id, key) still there
    looked_at: frozenset[tuple[str, str]] | None = None  # of those checks, what was examined (None: all)

    def still_there(self, ident: tuple[str, str]) -> bool | None:
        """True: observed; False: looked for and not there; None: this run cannot say."""
        if ident[0] not in self.checks:
            return None
        if ident in self.present:
            return True
        if self.looked_at is not None and ident not in self.looked_at:
            return None
        return False


@dataclass(frozen=True)
class ProbeRunRecord:
    probe: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime
    observations: dict[str, Any] = field(default_factory=dict)
    findings: tuple[FindingRecord, ...] = ()
    error_kind: str | None = None
    error: str | None = None
    skip_reason: str | None = None
    # What this run observed whether or not it reported it (an allow-list may cover a
    # port still open); None: the probe cannot tell.
    observed: Observed | None = None
    # Hash of the configuration that decides this probe's findings on this asset.
    config_hash: str | None = None


@dataclass(frozen=True)
class ScanRecord:
    asset: AssetRecord
    status: ScanStatus
    started_at: datetime  # timezone-aware
    finished_at: datetime
    posture_version: str
    catalog_version: str
    config_hash: str
    probe_runs: tuple[ProbeRunRecord, ...] = ()
    trigger: Trigger = Trigger.MANUAL
    full: bool = True  # every applicable probe was asked for (no --probe narrowing)
    forced_active: bool = False
    dns: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # scan-level error (e.g. DNS failure), one line
    # Hash of what decides this asset's findings; a change between scans is how a finding
    # that vanished is told apart: resolved by configuration, not fixed.
    asset_config_hash: str | None = None
