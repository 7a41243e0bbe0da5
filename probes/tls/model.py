"""The tls probe's typed ``Settings`` and ``Observations`` (see :mod:`probes.model`).

Stored shape of the observations (unchanged since the first release)::

    {"host", "port", "sni", "host_unicode"?,
     "addresses": {ADDRESS: {"status", "protocol", "cipher", "cipher_bits",
                             "certificate": {"subject", "not_after", ...}, "chain", "trust",
                             "hostname_match", "errors"?}},
     "skipped_addresses": {ADDRESS: REASON},
     "trust_store", "expiry_warning_days", "suites"?, "hsts_max_age"?, "grade": {"grade": LETTER, ...}?}

A run skipped for want of an address stores only ``skipped_addresses``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from probes.model import JSON, Bound, instant, integer, mapping, refuse_unknown, split, text

#: Where the grade letter sits in stored tls observations (state/evidence.py reads it in SQL).
GRADE_PATH = ("grade", "grade")

#: Evidence keys that summarise a tls finding in one line, first present wins (agent/output.py).
SUMMARY_KEYS = ("reason", "days_left", "protocols", "suites", "addresses")


@dataclass(frozen=True)
class Settings:
    """``[tls]``: days before expiry a certificate is reported (``tls.cert.expiring``)."""

    expiry_warning_days: int = 30

    SECTION: ClassVar[str] = "tls"
    BOUNDS: ClassVar[Mapping[str, Bound]] = {"expiry_warning_days": Bound(0, 3650)}

    def __post_init__(self) -> None:
        self.BOUNDS["expiry_warning_days"].check(self.SECTION, "expiry_warning_days", self.expiry_warning_days,
                                                 integer=True)

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Settings:
        refuse_unknown(cls.SECTION, raw, ("expiry_warning_days",))
        return cls(expiry_warning_days=raw.get("expiry_warning_days", cls.expiry_warning_days))

    def to_json(self) -> dict[str, JSON]:
        return {"expiry_warning_days": self.expiry_warning_days}


@dataclass(frozen=True)
class Certificate:
    """The leaf certificate of one address, as the other layers read it."""

    subject: str | None
    not_after: datetime | None
    rest: Mapping[str, JSON] = field(default_factory=dict)  # every stored key, as stored

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Certificate:
        return cls(text(raw.get("subject")), instant(raw.get("not_after")), dict(raw))

    def to_json(self) -> dict[str, JSON]:
        return dict(self.rest)


@dataclass(frozen=True)
class Address:
    """What one address answered: ``status`` ok|error, its leaf certificate when one was read."""

    status: str | None
    certificate: Certificate | None
    errors: Mapping[str, JSON] = field(default_factory=dict)  # stage -> {kind, message}
    rest: Mapping[str, JSON] = field(default_factory=dict)

    _KEYS: ClassVar[tuple[str, ...]] = ("status", "certificate", "errors")

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Address:
        cert = mapping(raw.get("certificate"))
        return cls(text(raw.get("status")), Certificate.from_json(cert) if cert is not None else None,
                   dict(mapping(raw.get("errors")) or {}), split(raw, cls._KEYS))

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = dict(self.rest)
        if self.certificate is not None:
            out["certificate"] = self.certificate.to_json()
        if self.errors:
            out["errors"] = dict(self.errors)
        if self.status is not None:
            out["status"] = self.status
        return out


@dataclass(frozen=True)
class Observations:
    host: str | None = None
    port: int | None = None
    addresses: Mapping[str, Address] | None = None  # None: the run reached no address (skipped)
    skipped_addresses: Mapping[str, str] = field(default_factory=dict)
    rest: Mapping[str, JSON] = field(default_factory=dict)  # sni, trust store, suites, grade, ...

    _KEYS: ClassVar[tuple[str, ...]] = ("host", "port", "addresses", "skipped_addresses")

    @property
    def grade(self) -> str | None:
        """The grade letter (A+ to F, T, M), when the strength half graded the endpoint."""
        g = mapping(self.rest.get(GRADE_PATH[0]))
        return text(g.get(GRADE_PATH[1])) if g is not None else None

    @property
    def hsts_max_age(self) -> int | None:
        return integer(self.rest.get("hsts_max_age"))

    def certificates(self) -> list[tuple[str, Certificate]]:
        """``(address, leaf)`` for every address whose certificate was read, in stored order."""
        return [(a, e.certificate) for a, e in (self.addresses or {}).items() if e.certificate is not None]

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Observations:
        addresses = mapping(raw.get("addresses"))
        skipped = mapping(raw.get("skipped_addresses")) or {}
        return cls(
            host=text(raw.get("host")),
            port=integer(raw.get("port")),
            addresses=None if addresses is None else {
                str(a): Address.from_json(e if isinstance(e, Mapping) else {}) for a, e in addresses.items()},
            skipped_addresses={str(k): str(v) for k, v in skipped.items()},
            rest=split(raw, cls._KEYS),
        )

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        if self.host is not None:
            out["host"] = self.host
        if self.port is not None:
            out["port"] = self.port
        out.update({k: v for k, v in self.rest.items() if k in ("sni", "host_unicode")})
        if self.addresses is not None:
            out["addresses"] = {a: e.to_json() for a, e in self.addresses.items()}
        out["skipped_addresses"] = dict(self.skipped_addresses)
        out.update({k: v for k, v in self.rest.items() if k not in ("sni", "host_unicode")})
        return out
