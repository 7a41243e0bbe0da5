"""Cipher-suite metadata, loaded from ``probes/tls/suites.toml``.

The data file says what each suite is (key exchange, authentication, cipher,
effective bits, block size, AEAD) and why it is weak (``flags``); this module
only indexes it and answers the questions the scanner and the judges ask:
which suites to offer for a protocol and in what order, and whether a suite is
weak, forward-secret or AEAD.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from vocab import DataFileError, parses_data_file


class Protocol(enum.StrEnum):
    """A protocol version, named the way reports name it; members oldest first."""

    SSL3 = "SSLv3"
    TLS10 = "TLSv1.0"
    TLS11 = "TLSv1.1"
    TLS12 = "TLSv1.2"
    TLS13 = "TLSv1.3"

    @property
    def wire(self) -> tuple[int, int]:
        return _WIRE[self]

    @property
    def rank(self) -> int:
        return _WIRE[self][1]

    @classmethod
    def from_wire(cls, version: tuple[int, int]) -> Protocol | None:
        for proto, wire in _WIRE.items():
            if wire == tuple(version):
                return proto
        return None


_WIRE = {
    Protocol.SSL3: (3, 0),
    Protocol.TLS10: (3, 1),
    Protocol.TLS11: (3, 2),
    Protocol.TLS12: (3, 3),
    Protocol.TLS13: (3, 4),
}

PROTOCOLS: tuple[Protocol, ...] = tuple(Protocol)
LEGACY_PROTOCOLS = frozenset({Protocol.SSL3, Protocol.TLS10, Protocol.TLS11})


class Weakness(enum.StrEnum):
    NULL = "null"  # no encryption
    ANON = "anon"  # no server authentication
    EXPORT = "export"  # export-grade key exchange and cipher
    RC4 = "rc4"
    DES = "des"
    TRIPLE_DES = "3des"
    BLOCK64 = "block64"  # 64-bit block cipher (SWEET32)
    LOW_BITS = "low_bits"  # under 128 bits of effective strength


class KexFamily(enum.StrEnum):
    """What a ServerKeyExchange carries, so the scanner can read the group from it."""

    EC = "ec"
    FF = "ff"


FORWARD_SECRET_KX = frozenset({"DHE", "ECDHE", "TLS13"})
_EC_KX = frozenset({"ECDHE", "ECDH_anon"})
_FF_KX = frozenset({"DHE", "DH_anon", "DHE_EXPORT", "DH_anon_EXPORT"})
# Suites no client we model prefers; offered last so that what a server picks
# from a full offer is what a modern client would get.
_UNCOMMON_CIPHERS = ("CAMELLIA", "ARIA", "SEED", "IDEA")


@dataclass(frozen=True)
class Suite:
    id: int
    name: str
    kx: str
    auth: str
    cipher: str
    bits: int
    block: int
    aead: bool
    since: Protocol
    flags: frozenset[Weakness]
    source: str

    @property
    def forward_secret(self) -> bool:
        return self.kx in FORWARD_SECRET_KX

    @property
    def tls13(self) -> bool:
        return self.kx == "TLS13"

    @property
    def weaknesses(self) -> frozenset[Weakness]:
        extra = {Weakness.LOW_BITS} if self.bits < 128 else set()
        return self.flags | extra

    @property
    def weak(self) -> bool:
        return bool(self.weaknesses)

    @property
    def kex_family(self) -> KexFamily | None:
        if self.kx in _EC_KX:
            return KexFamily.EC
        if self.kx in _FF_KX:
            return KexFamily.FF
        return None

    def offered_in(self, protocol: Protocol) -> bool:
        if protocol is Protocol.TLS13:
            return self.tls13
        return not self.tls13 and protocol.rank >= self.since.rank

    @property
    def offer_rank(self) -> tuple[int, ...]:
        """Sort key for offers: modern-client order, weak suites last."""
        return (
            int(self.weak),
            int(not self.forward_secret),
            int(not self.aead),
            int(any(self.cipher.startswith(c) for c in _UNCOMMON_CIPHERS)),
            int(self.kx in {"DH", "ECDH"}),
        )


class SuiteTable:
    def __init__(self, version: str, suites: Iterable[Suite]) -> None:
        self.version = version
        self.suites = tuple(suites)
        self._by_id = {s.id: s for s in self.suites}
        self._by_name = {s.name: s for s in self.suites}
        self._candidates: dict[Protocol, tuple[Suite, ...]] = {}

    def by_id(self, suite_id: int) -> Suite | None:
        return self._by_id.get(suite_id)

    def by_name(self, name: str) -> Suite | None:
        return self._by_name.get(name)

    def name_of(self, suite_id: int) -> str:
        suite = self.by_id(suite_id)
        return suite.name if suite else f"UNKNOWN_0x{suite_id:04X}"

    def candidates(self, protocol: Protocol) -> tuple[Suite, ...]:
        """Every suite worth offering in ``protocol``, in offer order (stable); sorted once."""
        found = self._candidates.get(protocol)
        if found is None:
            offered = [s for s in self.suites if s.offered_in(protocol)]
            found = self._candidates[protocol] = tuple(sorted(offered, key=lambda s: s.offer_rank))
        return found

    def lookup(self, names: Iterable[str]) -> list[Suite]:
        return [s for s in (self.by_name(n) for n in names) if s is not None]


@parses_data_file("TLS suites")
def parse_suites(text: str) -> SuiteTable:
    raw = tomllib.loads(text)
    suites: list[Suite] = []
    seen: set[int] = set()
    for entry in raw.get("suites", []):
        if entry["id"] in seen:
            raise DataFileError(f"duplicate suite id 0x{entry['id']:04X}")
        seen.add(entry["id"])
        try:
            since = Protocol(entry["since"])
            flags = frozenset(Weakness(f) for f in entry["flags"])
        except ValueError as exc:
            raise DataFileError(f"{entry['name']}: {exc}") from None
        suites.append(
            Suite(
                id=int(entry["id"]),
                name=str(entry["name"]),
                kx=str(entry["kx"]),
                auth=str(entry["auth"]),
                cipher=str(entry["cipher"]),
                bits=int(entry["bits"]),
                block=int(entry["block"]),
                aead=bool(entry["aead"]),
                since=since,
                flags=flags,
                source=str(entry["source"]),
            )
        )
    return SuiteTable(version=str(raw["version"]), suites=tuple(suites))


@cache
def suite_table() -> SuiteTable:
    text = resources.files("probes.tls").joinpath("suites.toml").read_text("utf-8")
    return parse_suites(text)
