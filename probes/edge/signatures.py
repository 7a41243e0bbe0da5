"""WAF/CDN signatures as data: the model of ``probes/edge/signatures.toml``.

Each entry is one vendor and one signal (a header, a cookie, the Server
header, a block-page marker or a CNAME suffix) with the role it proves, whether
one match is enough to name the vendor, and where the fact comes from. Adding a
vendor is adding entries to the data file; nothing here names a vendor.
"""

from __future__ import annotations

import enum
import fnmatch
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from vocab import DataFileError, parses_data_file


class Role(enum.StrEnum):
    """What a match proves. ``both``: a CDN that also sells a WAF; its presence proves
    the CDN, and a WAF only once a block is observed (the WAF may be off or log-only).
    ``proxy``: a load balancer or access gateway; named, it proves neither."""

    WAF = "waf"
    CDN = "cdn"
    BOTH = "both"
    PROXY = "proxy"

    @property
    def waf(self) -> bool:
        """The vendor may be the WAF in front (named as such when a block is seen)."""
        return self in (Role.WAF, Role.BOTH)

    @property
    def proves_waf(self) -> bool:
        """A match alone proves a WAF: a marker only the WAF product emits."""
        return self is Role.WAF

    @property
    def cdn(self) -> bool:
        return self in (Role.CDN, Role.BOTH)


class Signal(enum.StrEnum):
    HEADER = "header"
    COOKIE = "cookie"
    SERVER = "server"
    BODY = "body"
    CNAME = "cname"


@dataclass(frozen=True)
class Signature:
    vendor: str
    role: Role
    signal: Signal
    conclusive: bool
    source: str
    example: str
    name: re.Pattern[str] | None = None  # header/cookie name, full match
    value: re.Pattern[str] | None = None  # header/cookie value, Server, body: searched
    suffix: str | None = None  # cname

    @property
    def pattern_text(self) -> str:
        """The signature as a person reads it (README, evidence)."""
        if self.signal is Signal.CNAME:
            return f"*.{self.suffix}"
        value = self.value.pattern if self.value is not None else ""
        name = self.name.pattern if self.name is not None else ""
        if self.signal is Signal.HEADER:
            return f"{name}: /{value}/" if value else name
        if self.signal is Signal.COOKIE:
            return f"{name}=/{value}/" if value else name
        return f"/{value}/"

    def example_header(self) -> tuple[str, str] | None:
        """The example as one response header, for header/cookie/server signals."""
        if self.signal is Signal.HEADER:
            name, _, value = self.example.partition(":")
            return name.strip(), value.strip()
        if self.signal is Signal.COOKIE:
            return "Set-Cookie", self.example
        if self.signal is Signal.SERVER:
            return "Server", self.example
        return None

    def matches_cname(self, name: str) -> bool:
        """``name`` is the suffix or under it; a ``*`` matches within one label (cdnhwc*.com)."""
        if self.suffix is None:
            return False
        host = name.rstrip(".").lower()
        if "*" not in self.suffix:
            return host == self.suffix or host.endswith("." + self.suffix)
        want = self.suffix.split(".")
        labels = host.split(".")
        if len(labels) < len(want):
            return False
        return all(fnmatch.fnmatchcase(label, pat) for label, pat in zip(labels[-len(want):], want, strict=True))


@dataclass(frozen=True)
class BlockWords:
    """Words of block pages, for pages no vendor signature names (see [block_page])."""

    pattern: re.Pattern[str]
    source: str

    def found(self, text: str) -> set[str]:
        return {m.group(0).lower() for m in self.pattern.finditer(text)}


@dataclass(frozen=True)
class SignatureSet:
    version: str
    signatures: tuple[Signature, ...]
    block_words: BlockWords | None = None

    def vendors(self) -> list[str]:
        return sorted({s.vendor for s in self.signatures}, key=str.lower)

    def of(self, signal: Signal) -> tuple[Signature, ...]:
        return tuple(s for s in self.signatures if s.signal is signal)


_KEYS = {"vendor", "role", "signal", "conclusive", "source", "example", "name", "value", "suffix"}
# Which pattern keys each signal requires (r), allows (o) or forbids (absent).
_SHAPE: dict[Signal, dict[str, str]] = {
    Signal.HEADER: {"name": "r", "value": "o"},
    Signal.COOKIE: {"name": "r", "value": "o"},
    Signal.SERVER: {"value": "r"},
    Signal.BODY: {"value": "r"},
    Signal.CNAME: {"suffix": "r"},
}


@parses_data_file("edge signatures")
def parse_signatures(text: str) -> SignatureSet:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"edge signatures are not valid TOML: {exc}") from None
    entries = raw.get("signatures")
    if not isinstance(entries, list) or not entries:
        raise DataFileError("edge signatures: no [[signatures]] entries")
    return SignatureSet(
        version=str(raw.get("version", "")),
        signatures=tuple(_entry(i, e) for i, e in enumerate(entries)),
        block_words=_block_words(raw.get("block_page")),
    )


def _block_words(raw: object) -> BlockWords | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"words", "source"}:
        raise DataFileError("block_page: a table with words and source")
    words = raw.get("words")
    source = raw.get("source")
    if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
        raise DataFileError("block_page: words must be a non-empty list of phrases")
    if not isinstance(source, str) or not source.strip():
        raise DataFileError("block_page: source must be a non-empty string")
    alternation = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True))
    return BlockWords(re.compile(alternation, re.IGNORECASE), source.strip())


def _entry(index: int, entry: Mapping[str, Any]) -> Signature:
    where = f"signature #{index + 1} ({entry.get('vendor', '?')})"
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise DataFileError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("vendor", "role", "signal", "source", "example"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise DataFileError(f"{where}: {key} must be a non-empty string")
    if not isinstance(entry.get("conclusive"), bool):
        raise DataFileError(f"{where}: conclusive must be true or false")
    try:
        role = Role(entry["role"])
        signal = Signal(entry["signal"])
    except ValueError as exc:
        raise DataFileError(f"{where}: {exc}") from None
    shape = _SHAPE[signal]
    for key in ("name", "value", "suffix"):
        rule = shape.get(key)
        present = key in entry
        if rule == "r" and not present:
            raise DataFileError(f"{where}: a {signal} signature needs {key}")
        if rule is None and present:
            raise DataFileError(f"{where}: a {signal} signature has no {key}")
    suffix = entry.get("suffix")
    if suffix is not None:
        if not isinstance(suffix, str) or not suffix.strip(". "):
            raise DataFileError(f"{where}: suffix must be a DNS name")
        suffix = suffix.strip(". ").lower()
        if not re.fullmatch(r"[a-z0-9*-]+(?:\.[a-z0-9*-]+)+", suffix):
            raise DataFileError(f"{where}: suffix must be a DNS name (a * only inside a label)")
    return Signature(
        vendor=entry["vendor"].strip(),
        role=role,
        signal=signal,
        conclusive=entry["conclusive"],
        source=entry["source"].strip(),
        example=entry["example"],
        name=_regex(where, "name", entry.get("name")),
        value=_regex(where, "value", entry.get("value")),
        suffix=suffix,
    )


def _regex(where: str, key: str, pattern: object) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str) or not pattern:
        raise DataFileError(f"{where}: {key} must be a non-empty regex")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise DataFileError(f"{where}: {key} is not a valid regex: {exc}") from None


@cache
def load_signatures() -> SignatureSet:
    text = resources.files("probes.edge").joinpath("signatures.toml").read_text("utf-8")
    return parse_signatures(text)
