"""The http probe's typed ``Settings`` and ``Observations`` (see :mod:`probes.model`).

Stored shape of the observations::

    {"plain": {HOST:PORT: {address: {...walk...}}}, "https": {HOST:PORT: {...}},
     "http_port"?: PORT, "banners"?: [{"product", "version", "source", "where", "raw"}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from probes.model import JSON, Bound, integer, mapping, refuse_unknown, split
from probes.net.web import DEFAULT_HSTS_MIN_AGE, parse_age

DEFAULT_HTTP_PORT = 80

#: Evidence keys that summarise an http finding in one line, first present wins (agent/output.py).
#: End-of-life findings (probes/eol) have none: their title says it.
SUMMARY_KEYS = ("reason", "max_age", "addresses")


@dataclass(frozen=True)
class Settings:
    """``[http]``: where an HTTPS asset's plain-HTTP twin listens, and the HSTS max-age threshold.

    ``hsts_min_age`` is kept as written (``"180d"`` or seconds); :attr:`min_age` is its value.
    """

    http_port: int = DEFAULT_HTTP_PORT
    hsts_min_age: int | str | None = None

    SECTION: ClassVar[str] = "http"
    BOUNDS: ClassVar[Mapping[str, Bound]] = {"http_port": Bound(1, 65535)}

    def __post_init__(self) -> None:
        self.BOUNDS["http_port"].check(self.SECTION, "http_port", self.http_port, integer=True)
        if self.hsts_min_age is not None:
            try:
                parse_age(self.hsts_min_age)
            except ValueError as exc:
                raise ValueError(f"{self.SECTION}.hsts_min_age: {exc}") from None

    @property
    def min_age(self) -> int:
        return DEFAULT_HSTS_MIN_AGE if self.hsts_min_age is None else parse_age(self.hsts_min_age)

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Settings:
        refuse_unknown(cls.SECTION, raw, ("http_port", "hsts_min_age"))
        port = raw.get("http_port")
        return cls(http_port=DEFAULT_HTTP_PORT if port is None else port, hsts_min_age=raw.get("hsts_min_age"))

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"http_port": self.http_port}
        if self.hsts_min_age is not None:
            out["hsts_min_age"] = self.hsts_min_age
        return out


@dataclass(frozen=True)
class Observations:
    """Per scheme, per endpoint (``host:port``), per address: the walk and what it meant."""

    plain: Mapping[str, Mapping[str, JSON]] = field(default_factory=dict)
    https: Mapping[str, Mapping[str, JSON]] = field(default_factory=dict)
    http_port: int | None = None  # the plain-HTTP twin's port, once known
    banners: tuple[Mapping[str, JSON], ...] = ()  # software named in response headers
    rest: Mapping[str, JSON] = field(default_factory=dict)

    _KEYS: ClassVar[tuple[str, ...]] = ("plain", "https", "http_port", "banners")

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Observations:
        banners = raw.get("banners")
        return cls(
            plain=dict(mapping(raw.get("plain")) or {}),
            https=dict(mapping(raw.get("https")) or {}),
            http_port=integer(raw.get("http_port")),
            banners=tuple(b for b in banners if isinstance(b, Mapping)) if isinstance(banners, list) else (),
            rest=split(raw, cls._KEYS),
        )

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"plain": dict(self.plain), "https": dict(self.https)}
        if self.http_port is not None:
            out["http_port"] = self.http_port
        if self.banners:
            out["banners"] = [dict(b) for b in self.banners]
        out.update(self.rest)
        return out
