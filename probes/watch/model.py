"""Typed, frozen settings and observations of the watch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The probe-run names a watch stores on its pseudo-asset; the lifecycle fixes findings per run name.
LOOKALIKE_RUN = "lookalike"
MAIL_RUN = "mail"
RDTYPES = ("A", "AAAA", "MX", "NS")

#: TLD swaps that matter for Taiwan's firms (the issue's list); ``.台灣`` is xn--kpry57d.
TLD_SWAPS = ("com.tw", "tw", "com", "net", "台灣")
#: Words scammers add to a firm's name.
WORDS = ("login", "secure", "app", "online", "trade", "service", "account", "verify")


@dataclass(frozen=True)
class Settings:
    domains: tuple[str, ...]  # the firm's own domains (A-labels)
    allow: frozenset[str] = frozenset()  # lookalikes the firm owns (A-labels)
    resolver: str | None = None  # "ip[:port]"; None: the system's
    rate: float = 50.0  # DNS queries per second, for the whole watch
    concurrency: int = 8  # queries in flight at once
    timeout: float = 3.0  # seconds per query
    words: tuple[str, ...] = WORDS
    tlds: tuple[str, ...] = TLD_SWAPS


@dataclass(frozen=True)
class Candidate:
    name: str  # A-label, normalised
    fuzzer: str  # how it was made (dnstwist's fuzzer name, "tld-swap", "idn-homoglyph")
    unicode: str | None = None  # the Unicode form of an IDN


@dataclass(frozen=True)
class Lookup:
    """What the resolver said about one name: records by type, or why it could not say."""

    name: str
    records: dict[str, tuple[str, ...]] = field(default_factory=dict)  # rdtype -> answers (sorted)
    nxdomain: bool = False
    error: str | None = None  # a lookup that failed (timeout, SERVFAIL): proves nothing

    @property
    def resolves(self) -> bool:
        return any(self.records.get(t) for t in RDTYPES)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {t: list(v) for t, v in sorted(self.records.items()) if v}
        if self.nxdomain:
            out["nxdomain"] = True
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True)
class MailRecords:
    """The TXT records that speak for a domain's mail: the apex (SPF) and _dmarc."""

    domain: str
    apex_txt: tuple[str, ...] = ()
    dmarc_txt: tuple[str, ...] = ()
    apex_error: str | None = None
    dmarc_error: str | None = None


@dataclass(frozen=True)
class DomainObservation:
    domain: str
    candidates: int
    lookups: tuple[tuple[Candidate, Lookup], ...]
    mail: MailRecords
    started: float = 0.0
    seconds: float = 0.0
