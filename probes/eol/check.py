"""End-of-life verdicts: product and version -> release cycle -> end date (pure).

A banner's product name is resolved through the data file's aliases
(``Microsoft-IIS`` is iis, ``cpe:/a:openbsd:openssh`` is openssh); its version
is matched to the product's cycle whose components are the longest prefix of
the version's (``1.1.1w`` -> cycle ``1.1.1``, ``9.0.80`` -> Tomcat ``9``,
``7.4p1`` -> OpenSSH ``7``). A product posture does not know, a version that
matches no cycle, or an nmap version range spanning two cycles gives no
verdict: posture reports end of life only when the data says so.

The end date itself counts as end of life: on that day no further fix is
promised. :func:`eol_findings` is what probes and the agent call with the
banners they saw.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from probes.base import Finding
from probes.eol.banners import Banner
from probes.eol.data import (
    Cycle,
    EolData,
    ImportRecord,
    Product,
    Versioning,
    default_eol_data,
    load_eol_data,
    parse_eol_data,
    refresh_from_export,
    write_eol_data,
)

__all__ = [
    "CHECK_ID",
    "Cycle",
    "EolData",
    "ImportRecord",
    "Product",
    "Verdict",
    "Versioning",
    "default_eol_data",
    "eol_findings",
    "judge",
    "load_eol_data",
    "match_cycle",
    "parse_eol_data",
    "refresh_from_export",
    "verdict",
    "version_components",
    "write_eol_data",
]

CHECK_ID = "software.eol"

_NUMERIC = re.compile(r"\s*v?(\d+(?:\.\d+)*)")
_WORD = re.compile(r"[a-z0-9]+")
_RANGE = re.compile(r"\s+-\s+")  # nmap's "9.6.0 - 9.6.7"


def version_components(text: str, versioning: Versioning = Versioning.NUMERIC) -> tuple[int | str, ...]:
    """``"1.0.2k-fips"`` -> ``(1, 0, 2)``; by name, ``"2012 R2"`` -> ``("2012", "r2")``."""
    if versioning is Versioning.NAME:
        return tuple(_WORD.findall(text.lower()))
    m = _NUMERIC.match(text)
    return tuple(int(x) for x in m.group(1).split(".")) if m else ()


def match_cycle(product: Product, version: str) -> Cycle | None:
    """The cycle ``version`` belongs to, or None when the data has none for it."""
    ends = _RANGE.split(version.strip())
    if len(ends) == 2:
        low, high = (match_cycle(product, end) for end in ends)
        return low if low is not None and low == high else None
    parts = version_components(version, product.versioning)
    if not parts:
        return None
    best: Cycle | None = None
    best_len = 0
    for cycle in product.cycles:
        prefix = version_components(cycle.cycle, product.versioning)
        if prefix and len(prefix) > best_len and parts[: len(prefix)] == prefix:
            best, best_len = cycle, len(prefix)
    return best


@dataclass(frozen=True)
class Verdict:
    product: Product = field(repr=False)
    cycle: Cycle
    version: str
    is_eol: bool
    end: dt.date | None  # None when the source says only true/false
    days_past: int | None  # days since the end date, when end of life and dated

    @property
    def key(self) -> str:
        return f"{self.product.key}:{self.cycle.cycle}"


def verdict(product: Product, version: str, today: dt.date) -> Verdict | None:
    cycle = match_cycle(product, version)
    if cycle is None:
        return None
    if isinstance(cycle.eol, bool):
        return Verdict(product, cycle, version, cycle.eol, None, None)
    is_eol = today >= cycle.eol
    days = (today - cycle.eol).days if is_eol else None
    return Verdict(product, cycle, version, is_eol, cycle.eol, days)


def judge(data: EolData, product_name: str, version: str, today: dt.date) -> Verdict | None:
    """The verdict for a product as a banner names it; None when posture cannot tell."""
    product = data.product_for(product_name)
    if product is None or not version.strip():
        return None
    return verdict(product, version, today)


def eol_findings(banners: Iterable[Banner], data: EolData | None, today: dt.date) -> list[Finding]:
    """One software.eol finding per end-of-life product cycle among ``banners``.

    Key ``"{product}:{cycle}"`` (``openssh:7``), stable while the software
    stays; evidence lists every place the cycle was seen. A supported cycle,
    an unknown product and an unmatched version give nothing. ``data`` None
    is the data file shipped with posture.
    """
    data = data or default_eol_data()
    groups: dict[str, tuple[Verdict, list[Banner]]] = {}
    for banner in banners:
        v = judge(data, banner.product, banner.version, today)
        if v is None or not v.is_eol:
            continue
        groups.setdefault(v.key, (v, []))[1].append(banner)
    return [_finding(key, *groups[key], data) for key in sorted(groups)]


def _finding(key: str, v: Verdict, seen: list[Banner], data: EolData) -> Finding:
    versions = sorted({b.version for b in seen})
    places: dict[tuple[str, str], dict[str, str]] = {}
    for b in seen:
        # nmap's product/version and its CPE are one sighting, not two.
        place = {"where": b.where, "source": b.source.value, "banner": b.raw or f"{b.product}/{b.version}"}
        places.setdefault((b.where, b.source.value), place)
    evidence: dict[str, Any] = {
        "product": v.product.name,
        "product_id": v.product.key,
        "version": versions[0],
        "versions": versions,
        "cycle": v.cycle.cycle,
        "end_date": v.end.isoformat() if v.end else None,
        "days_past": v.days_past,
        "latest": v.cycle.latest,
        "link": v.cycle.link,
        "seen": list(places.values()),
        "data_date": data.updated.isoformat(),
        "data_source": v.product.source,
    }
    if v.cycle.note:
        evidence["note"] = v.cycle.note
    return Finding(check_id=CHECK_ID, key=key, evidence=evidence)
