"""What changed in a week, and what is about to expire: the digest's selections.

Pure functions over stored history (finding events, TLS observations) and a clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

WEEK = timedelta(days=7)
_NEW = ("opened", "reopened")
_FIXED = ("fixed",)
_CONFIG = ("resolved_by_config",)


class EventLike(Protocol):
    @property
    def finding_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def at(self) -> datetime: ...


def week_window(end: datetime, length: timedelta = WEEK) -> tuple[datetime, datetime]:
    """The [start, end) window of the digest that ends at ``end``."""
    return end - length, end


@dataclass(frozen=True)
class Changes:
    new: tuple[int, ...] = ()  # finding ids opened or reopened in the window, first event first
    fixed: tuple[int, ...] = ()  # finding ids fixed in the window
    resolved_by_config: tuple[int, ...] = ()  # gone because the configuration changed, not fixed


def changes(events: Iterable[EventLike], since: datetime, until: datetime) -> Changes:
    """Findings that appeared or were fixed in [since, until); each finding once per list."""
    new: dict[int, None] = {}
    fixed: dict[int, None] = {}
    config: dict[int, None] = {}
    for e in sorted(events, key=lambda e: e.at):
        if not since <= e.at < until:
            continue
        if str(e.kind) in _NEW:
            new.setdefault(e.finding_id)
        elif str(e.kind) in _FIXED:
            fixed.setdefault(e.finding_id)
        elif str(e.kind) in _CONFIG:
            config.setdefault(e.finding_id)
    return Changes(tuple(new), tuple(fixed), tuple(config))


@dataclass(frozen=True)
class CertFacts:
    """One address's leaf certificate, as a scan saw it (agent/ reads it from the tls observations)."""

    address: str
    subject: str
    not_after: datetime


@dataclass(frozen=True)
class CertExpiry:
    address: str
    subject: str
    not_after: datetime
    days_left: int  # whole days from now, toward zero (negative once a day past)
    expired: bool


def expiring_certificates(certs: Iterable[CertFacts], now: datetime, within_days: int) -> tuple[CertExpiry, ...]:
    """Leaf certificates (per address) that expire within ``within_days`` of ``now``, or have expired.

    Days are counted again from ``now``: the scan that saw the certificate may be days old.
    """
    found: list[CertExpiry] = []
    for cert in certs:
        days_left = int((cert.not_after - now) / timedelta(days=1))
        if cert.not_after <= now or days_left <= within_days:
            found.append(CertExpiry(cert.address, cert.subject, cert.not_after, days_left, cert.not_after <= now))
    found.sort(key=lambda c: (c.not_after, c.address))
    return tuple(found)
