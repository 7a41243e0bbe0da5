"""What a scan is asked to do and what it hands back, without the scanning machinery.

:class:`ScanOptions` and :class:`ScanOutcome` cross process boundaries (the multi-process
scan pickles them) and are read by commands, the daemon and the store's callers; the
runner (``agent.scanning.runner``) imports the probes, the HTTP client and the resolver,
and only a process that scans needs it. So a command that only coordinates worker
processes and stores what they hand back never loads httpx, anyio or the probes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.targets import AssetSpec
from probes.base import Limits
from state.records import AssetRecord, Trigger

if TYPE_CHECKING:
    from probes.base import ProbeFailure, ProbeResult
    from probes.net.dns import Resolution
    from probes.net.scope import AddressLimits
    from state.records import ScanRecord

Clock = Callable[[], datetime]


def real_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ShiftedClock:
    """Starts at ``base`` and advances in real time (``--now``). Picklable, and the monotonic
    clock is the machine's, so a scan worker process keeps the same time as its parent."""

    base: datetime
    start: float

    def __call__(self) -> datetime:
        from datetime import timedelta

        return self.base + timedelta(seconds=time.monotonic() - self.start)


def make_clock(now: datetime | None) -> Clock:
    """The real clock, or one that starts at ``now`` and advances in real time."""
    if now is None:
        return real_clock
    return ShiftedClock(now.astimezone(UTC), time.monotonic())


@dataclass(frozen=True)
class ScanOptions:
    clock: Clock
    config_hash: str
    posture_version: str
    probes: tuple[str, ...] | None = None  # None: every probe that applies
    resolver: str | None = None
    ca_bundle: str | None = None
    limits: Limits = Limits()
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    severity_overrides: dict[str, str] = field(default_factory=dict)
    concurrency: int = 16
    force_active: bool = False
    trigger: Trigger = Trigger.MANUAL
    # Why active probes must wait for this asset at this moment (its quiet hours), or None.
    quiet: Callable[[AssetSpec, datetime], str | None] | None = None
    dns_timeout: float = 5.0
    # Networks the address policy lets through for every asset ([agent] allow_addresses and
    # POSTURE_ALLOW_ADDRESSES); an asset's own allow_addresses add to them.
    allow: tuple[str, ...] = ()
    # The process-wide per-address limits, made once by the command or daemon and shared
    # by every scan and job; None: this Scanner makes its own.
    address_limits: AddressLimits | None = None
    # Resolutions made before the scan (the multi-process path resolves in the parent to split
    # assets by address): (asset name, host) -> its Resolution or the failure, used instead of
    # asking the DNS again, so the addresses scanned are the ones the split was made on.
    resolved: dict[tuple[str, str], Resolution | ProbeFailure] = field(default_factory=dict)
    # Every configured asset: one that must be left alone now (its quiet window, active probes off)
    # also protects what shares its address from another asset's scan (see Scanner.scan).
    neighbours: tuple[AssetSpec, ...] = ()


@dataclass
class ScanOutcome:
    asset: AssetSpec
    record: ScanRecord
    results: list[ProbeResult]
    resolution: Resolution | None = None
    stored: Any = None  # what the store returned (ids), set by the caller


def asset_record(spec: AssetSpec) -> AssetRecord:
    return AssetRecord(name=spec.name, url=spec.url.normalised, kind=spec.kind, configured=spec.configured)
