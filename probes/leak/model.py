"""The leak probe's typed ``Observations`` (see :mod:`probes.model`); it has no settings of its own.

Stored shape::

    {"address", "requests": [{...one per request...}], "request_count", "parameters": [...],
     "signatures_version", "banners"?: [...], "suppressed_by_normal_page"?: {SIGNATURE: [URL]}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from probes.model import JSON, integer, mapping, split, text

#: Evidence keys that summarise a leak finding in one line (agent/output.py).
SUMMARY_KEYS = ("signature",)


@dataclass(frozen=True)
class Settings:
    """No ``[leak]`` section: what the probe sends is fixed (probes/leak/provoke.py)."""

    SECTION: ClassVar[str] = "leak"

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Settings:
        if raw:
            raise ValueError(f"leak: unknown setting {sorted(raw)[0]!r} (the leak probe has no settings)")
        return cls()

    def to_json(self) -> dict[str, JSON]:
        return {}


@dataclass(frozen=True)
class Observations:
    address: str | None = None
    requests: tuple[Mapping[str, JSON], ...] = ()
    parameters: tuple[JSON, ...] = ()
    signatures_version: str | None = None
    banners: tuple[JSON, ...] | None = None  # once judged
    suppressed_by_normal_page: Mapping[str, tuple[str, ...]] | None = None  # once judged
    request_count: int | None = None  # as stored; len(requests) for a new run
    rest: Mapping[str, JSON] = field(default_factory=dict)

    _KEYS: ClassVar[tuple[str, ...]] = ("address", "requests", "request_count", "parameters", "signatures_version",
                                        "banners", "suppressed_by_normal_page")

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Observations:
        requests, params, banners = raw.get("requests"), raw.get("parameters"), raw.get("banners")
        suppressed = mapping(raw.get("suppressed_by_normal_page"))
        return cls(
            address=text(raw.get("address")),
            requests=tuple(r for r in requests if isinstance(r, Mapping)) if isinstance(requests, list) else (),
            parameters=tuple(params) if isinstance(params, list) else (),
            signatures_version=text(raw.get("signatures_version")),
            banners=tuple(banners) if isinstance(banners, list) else None,
            suppressed_by_normal_page=None if suppressed is None else {
                str(k): tuple(str(u) for u in v) if isinstance(v, list) else () for k, v in suppressed.items()},
            request_count=integer(raw.get("request_count")),
            rest=split(raw, cls._KEYS),
        )

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {
            "address": self.address,
            "requests": [dict(r) for r in self.requests],
            "request_count": len(self.requests) if self.request_count is None else self.request_count,
            "parameters": list(self.parameters),
            "signatures_version": self.signatures_version,
        }
        if self.banners is not None:
            out["banners"] = list(self.banners)
        if self.suppressed_by_normal_page is not None:
            out["suppressed_by_normal_page"] = {k: list(v) for k, v in self.suppressed_by_normal_page.items()}
        out.update(self.rest)
        return out
