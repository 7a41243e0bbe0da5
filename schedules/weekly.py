"""What changed in a week, and what is about to expire: the digest's selections.

Pure functions over stored history (finding events, TLS observations) and a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

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
class CertExpiry:
    address: str
    subject: str
    not_after: datetime
    days_left: int  # whole days from now, toward zero (negative once a day past)
    expired: bool


@dataclass(frozen=True)
class Expiring:
    host: str | None
    port: int | None
    certificates: tuple[CertExpiry, ...] = field(default_factory=tuple)


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def expiring_certificates(tls_observations: Mapping[str, Any], now: datetime, within_days: int) -> Expiring:
    """Leaf certificates (per address) that expire within ``within_days`` of ``now``, or have expired.

    Days are counted again from ``now``: the scan that saw the certificate may be days old.
    """
    found: list[CertExpiry] = []
    addresses = tls_observations.get("addresses")
    for address, entry in (addresses.items() if isinstance(addresses, Mapping) else ()):
        cert = entry.get("certificate") if isinstance(entry, Mapping) else None
        if not isinstance(cert, Mapping):
            continue
        not_after = _parse_time(cert.get("not_after"))
        if not_after is None:
            continue
        days_left = int((not_after - now) / timedelta(days=1))
        if not_after <= now or days_left <= within_days:
            found.append(CertExpiry(str(address), str(cert.get("subject") or ""), not_after, days_left,
                                    not_after <= now))
    found.sort(key=lambda c: (c.not_after, c.address))
    host, port = tls_observations.get("host"), tls_observations.get("port")
    return Expiring(host if isinstance(host, str) else None, port if isinstance(port, int) else None, tuple(found))
