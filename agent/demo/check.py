"""Did each lab site show what it was built to show? (pure; no I/O)

A site passes when the scan reported exactly its expected checks: all of
them, and nothing else (the clean site: nothing at all). A site whose
expectation depends on something this machine lacks (nmap for the ports
probe, TLS 1.0 in OpenSSL) is *skipped* with the reason, never failed.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.demo.sites import Site


class Verdict(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"  # an expected check was not reported
    EXTRA = "extra"  # something else was reported too
    FAILED = "failed"  # the scan itself failed
    SKIPPED = "skipped"


@dataclass(frozen=True)
class SiteCheck:
    site: Site
    verdict: Verdict
    found: tuple[str, ...]  # check ids reported, sorted, once each
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict in (Verdict.OK, Verdict.SKIPPED)

    def line(self) -> str:
        shown = ", ".join(self.site.expected) or "no findings"
        if self.verdict is Verdict.OK:
            return f"ok       {self.site.asset:<13} {shown}"
        if self.verdict is Verdict.SKIPPED:
            return f"skipped  {self.site.asset:<13} {shown} ({self.reason})"
        detail = []
        if self.missing:
            detail.append(f"missing {', '.join(self.missing)}")
        if self.extra:
            detail.append(f"also reported {', '.join(self.extra)}")
        if self.reason:
            detail.append(self.reason)
        return f"{self.verdict.value.upper():<8} {self.site.asset:<13} expected {shown}: {'; '.join(detail)}"


def check_site(site: Site, doc: Mapping[str, Any] | None, skipped: str | None = None) -> SiteCheck:
    """Judge one site from its scan document (``agent.output.scan_json``)."""
    if doc is None:
        return SiteCheck(site, Verdict.FAILED, (), reason="not scanned")
    found = tuple(sorted({f["check_id"] for f in doc.get("findings", ())}))
    extra = tuple(c for c in found if c not in site.expected)
    missing = tuple(c for c in site.expected if c not in found)
    if skipped is not None and missing:
        return SiteCheck(site, Verdict.EXTRA if extra else Verdict.SKIPPED, found, missing, extra, skipped)
    if doc.get("status") == "failed":
        errors = doc.get("errors") or [{}]
        return SiteCheck(site, Verdict.FAILED, found, reason=str(errors[0].get("error", "scan failed")))
    if missing:
        return SiteCheck(site, Verdict.MISSING, found, missing, extra)
    if extra:
        return SiteCheck(site, Verdict.EXTRA, found, (), extra)
    return SiteCheck(site, Verdict.OK, found)


def check_lab(sites: Sequence[Site], docs: Iterable[Mapping[str, Any]],
              skipped: Mapping[str, str] | None = None) -> list[SiteCheck]:
    """One check per site, in the lab's order; ``skipped`` maps an asset to why its check cannot hold here."""
    by_asset = {d.get("asset"): d for d in docs}
    skipped = skipped or {}
    return [check_site(s, by_asset.get(s.asset), skipped.get(s.asset)) for s in sites]
