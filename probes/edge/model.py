"""The edge probe's typed ``Observations`` (see :mod:`probes.model`); it has no settings of its own.

Stored shape::

    {"waf"?, "cdn"?, "proxy"?, "active"?, "signatures_version"?,   # once a verdict was reached
     "cname_chain": [NAME], "declared": {CONTROL: VENDOR}, "baseline"?: {...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from probes.model import JSON, mapping, split, text

#: Evidence keys that summarise an edge finding in one line, first present wins (agent/output.py).
SUMMARY_KEYS = ("reason", "signature")


@dataclass(frozen=True)
class Settings:
    """No ``[edge]`` section: the probe reads only the asset (CNAME chain, declared controls)."""

    SECTION: ClassVar[str] = "edge"

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Settings:
        if raw:
            raise ValueError(f"edge: unknown setting {sorted(raw)[0]!r} (the edge probe has no settings)")
        return cls()

    def to_json(self) -> dict[str, JSON]:
        return {}


@dataclass(frozen=True)
class Observations:
    waf: Mapping[str, JSON] | None = None
    cdn: Mapping[str, JSON] | None = None
    proxy: Mapping[str, JSON] | None = None
    active: Mapping[str, JSON] | None = None
    signatures_version: str | None = None
    cname_chain: tuple[str, ...] = ()
    declared: Mapping[str, str] = field(default_factory=dict)
    baseline: Mapping[str, JSON] | None = None
    rest: Mapping[str, JSON] = field(default_factory=dict)

    _VERDICT: ClassVar[tuple[str, ...]] = ("waf", "cdn", "proxy", "active")
    _KEYS: ClassVar[tuple[str, ...]] = (*_VERDICT, "signatures_version", "cname_chain", "declared", "baseline")

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Observations:
        chain, declared = raw.get("cname_chain"), mapping(raw.get("declared")) or {}
        return cls(
            waf=mapping(raw.get("waf")), cdn=mapping(raw.get("cdn")), proxy=mapping(raw.get("proxy")),
            active=mapping(raw.get("active")), signatures_version=text(raw.get("signatures_version")),
            cname_chain=tuple(str(c) for c in chain) if isinstance(chain, list) else (),
            declared={str(k): str(v) for k, v in declared.items()},
            baseline=mapping(raw.get("baseline")),
            rest=split(raw, cls._KEYS),
        )

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        for key in self._VERDICT:
            value = getattr(self, key)
            if value is not None:
                out[key] = dict(value)
        if self.signatures_version is not None:
            out["signatures_version"] = self.signatures_version
        out["cname_chain"] = list(self.cname_chain)
        out["declared"] = dict(self.declared)
        if self.baseline is not None:
            out["baseline"] = dict(self.baseline)
        out.update(self.rest)
        return out
