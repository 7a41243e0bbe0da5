"""The shared words: one definition each, imported by every layer.

Stored values are these strings (the database keeps ``"critical"``, ``"website"``,
``"ok"``...), so a StrEnum member and its value compare equal and read back alike.
"""

from __future__ import annotations

import enum


class Severity(enum.StrEnum):
    """A finding's severity, worst first. ``rank``: critical 4 .. info 0."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Higher is worse: critical 4 .. info 0."""
        return len(SEVERITY_ORDER) - 1 - SEVERITY_ORDER.index(self)


#: Every severity, worst first (the order reports, digests and alerts list them in).
SEVERITY_ORDER: tuple[Severity, ...] = tuple(Severity)


def severity_rank(value: str, default: int = 0) -> int:
    """The rank of a stored severity string (critical 4 .. info 0); ``default`` for an unknown one."""
    try:
        return Severity(value).rank
    except ValueError:
        return default


def severity_position(value: str, default: int = 9) -> int:
    """Where a stored severity string sorts, worst first (critical 0 .. info 4); ``default`` if unknown."""
    try:
        return SEVERITY_ORDER.index(Severity(value))
    except ValueError:
        return default


class AssetKind(enum.StrEnum):
    """What an asset is: a public website, a trading endpoint, an API."""

    WEBSITE = "website"
    TRADING = "trading"
    API = "api"
    WATCH = "watch"  # a domain of the phishing watch (a pseudo-asset, never configured as an asset)


class RunStatus(enum.StrEnum):
    """How one probe run (or the scan's reach step) ended."""

    OK = "ok"
    ERROR = "error"
    SKIPPED = "skipped"


class ScanStatus(enum.StrEnum):
    COMPLETE = "complete"  # the service was reached and every probe that applies ran and succeeded
    PARTIAL = "partial"  # a probe that applies was skipped (quiet hours, --probe) or failed; the rest is stored
    FAILED = "failed"  # the service was not reached (or nothing that ran succeeded)
    INTERRUPTED = "interrupted"  # the agent was stopped mid-scan
    RUNNING = "running"  # claimed, not finished (daemon jobs)


class FindingState(enum.StrEnum):
    OPEN = "open"
    FIXED = "fixed"
    REOPENED = "reopened"
    ACCEPTED = "accepted"
    FALSE_POSITIVE = "false_positive"
    # Gone because the asset's configuration changed (an allow-list, a declared control, an
    # override, the kind, probe settings) while the condition was still there: not fixed.
    RESOLVED_BY_CONFIG = "resolved_by_config"


class Trigger(enum.StrEnum):
    """What started a scan."""

    MANUAL = "manual"
    SCHEDULED = "scheduled"
