"""What a report holds: frozen, storage-free, the same for every output format.

Every datetime is timezone-aware UTC; renderers convert to the agent's time zone.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schedules.duties import DutyStatus
from schedules.remediation import CadenceState
from state.delivery_views import ExternalScanInfo
from vocab import SEVERITY_ORDER, FindingState, ScanStatus, Trigger


class Lang(enum.StrEnum):
    ZH_TW = "zh-TW"
    EN = "en"


class ReportFormat(enum.StrEnum):
    HTML = "html"
    CSV = "csv"
    JSON = "json"
    PDF = "pdf"  # the HTML printed by Chromium


@dataclass(frozen=True)
class Period:
    since: datetime  # inclusive
    until: datetime  # exclusive
    timezone: str  # the agent's: dates are read and shown in it
    declaration: bool  # the default: the half-year a declaration covers


@dataclass(frozen=True)
class Policy:
    deadline_days: Mapping[str, int | None]
    per_kind: Mapping[str, Mapping[str, int]]
    reopened_keeps_deadline: bool
    cadence_days: int
    cadence_warn_days: int
    expiry_warning_days: int  # [tls] expiry_warning_days: certificates this close to expiry are flagged


@dataclass(frozen=True)
class ClauseRef:
    label: str
    source: str  # the Chinese clause name, as the regulation names it
    zh: str
    en: str


@dataclass(frozen=True)
class ProbeError:
    probe: str
    kind: str | None
    error: str


@dataclass(frozen=True)
class ScanEntry:
    id: int
    started_at: datetime
    finished_at: datetime | None
    status: ScanStatus
    trigger: Trigger
    full: bool
    counts_for_cadence: bool  # complete and not narrowed with --probe
    grade: str | None  # the TLS grade, when the tls probe graded this scan
    findings: int  # findings this scan reported
    errors: tuple[ProbeError, ...]
    error: str | None  # scan-level error (DNS, unreachable, interrupted)
    # Per step and probe that applies: (probe, ran | skipped | failed, why or the error).
    steps: tuple[tuple[str, str, str | None], ...] = ()


@dataclass(frozen=True)
class DecisionEntry:
    """One entry of a finding's decision history, as recorded: who, when, why, until (as typed)."""

    at: datetime
    kind: str  # accepted | false_positive | acceptance_expired | reopened | resolved_by_config | note
    by: str | None
    reason: str | None  # the reason, or a note's text
    until: datetime | None = None  # accepted: the end (exclusive)
    until_entered: str | None = None  # accepted: the end exactly as the person typed it
    config_change: tuple[str | None, str | None] | None = None  # resolved by configuration: hashes


@dataclass(frozen=True)
class Evidence:
    """What the finding's last occurrence up to the report's moment showed (the probe's own record)."""

    scan_id: int
    seen_at: datetime
    fields: Mapping[str, object]


@dataclass(frozen=True)
class DeclaredControl:
    """A control the firm declared for an asset (``declared`` in its config) beside what posture observed."""

    key: str  # waf | ddos | cdn
    text: str
    observed: str | None  # what the asset's last edge run in the period saw; None: no edge run
    scan_id: int | None = None


@dataclass(frozen=True)
class FindingEntry:
    id: int
    check_id: str
    title_en: str
    title_zh: str
    severity: str
    clauses: tuple[ClauseRef, ...]
    key: str
    probe: str
    first_seen: datetime
    deadline: datetime | None  # None: the severity has no deadline
    state: FindingState  # as of the report's moment
    fixed_at: datetime | None  # when state is fixed
    reopened_count: int
    overdue: bool  # needs fixing and past its deadline at the report's moment
    fixed_late: bool  # fixed, but after its deadline
    decision_reason: str | None = None  # accepted / false positive: why
    decision_by: str | None = None
    accepted_until: datetime | None = None
    accepted_until_entered: str | None = None  # as typed (2027-03-31): what every output shows
    config_change: tuple[str | None, str | None] | None = None  # resolved by configuration: hashes
    remediation_en: str = ""  # the catalog's advice
    remediation_zh: str = ""
    evidence: Evidence | None = None
    history: tuple[DecisionEntry, ...] = ()  # every decision up to the report's moment, oldest first

    def title(self, lang: Lang) -> str:
        return self.title_zh if lang is Lang.ZH_TW else self.title_en

    def remediation(self, lang: Lang) -> str:
        return self.remediation_zh if lang is Lang.ZH_TW else self.remediation_en


@dataclass(frozen=True)
class Gap:
    """A stretch longer than the cadence without a complete scan."""

    start: datetime  # the complete scan before (or when the asset was added)
    end: datetime  # the next complete scan, or the report's moment
    days: int
    ongoing: bool  # no complete scan has ended it yet


@dataclass(frozen=True)
class CadenceRecord:
    cadence_days: int
    warn_days: int
    complete_scans: tuple[datetime, ...]  # in the period, oldest first (posture's and third parties')
    previous_complete: datetime | None  # the last complete scan before the period
    gaps: tuple[Gap, ...]
    state: CadenceState  # at the report's moment
    due: datetime  # the next complete scan is due by then
    days_left: int  # negative when overdue
    last_complete: datetime | None


@dataclass(frozen=True)
class CertificateEntry:
    address: str
    subject: str | None
    not_after: datetime
    days_left: int  # at the report's moment; negative when expired
    scan_id: int  # the scan that saw it (the asset's last in the period with a tls result)
    seen_at: datetime


@dataclass(frozen=True)
class SeriesPoint:
    at: datetime
    counts: Mapping[str, int]  # severity -> findings needing a fix at that moment

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class AssetReport:
    name: str
    url: str
    kind: str
    added_at: datetime | None  # None: configured but never stored (never scanned)
    scans: tuple[ScanEntry, ...]
    external_scans: tuple[ExternalScanInfo, ...]  # registered third-party scans in the period
    findings: tuple[FindingEntry, ...]
    cadence: CadenceRecord
    certificates: tuple[CertificateEntry, ...]
    series: tuple[SeriesPoint, ...]
    declared: tuple[DeclaredControl, ...] = ()

    @property
    def latest_grade(self) -> str | None:
        return next((s.grade for s in reversed(self.scans) if s.grade), None)

    def open_by_severity(self) -> dict[str, int]:
        counts = dict.fromkeys(map(str, SEVERITY_ORDER), 0)
        for f in self.findings:
            if f.state in (FindingState.OPEN, FindingState.REOPENED):
                counts[f.severity] = counts.get(f.severity, 0) + 1
        return counts

    @property
    def overdue(self) -> int:
        return sum(f.overdue for f in self.findings)



@dataclass(frozen=True)
class WatchEntry:
    domain: str
    watched_at: datetime | None  # the newest lookalike run up to the report's moment; None: none
    candidates: int
    registered: tuple[dict[str, Any], ...]  # domain, unicode, fuzzer, records, decision (as the watch stored them)
    mail: dict[str, Any]  # the newest mail run's spf/dmarc observations

    def to_json(self) -> dict[str, Any]:
        return {"domain": self.domain, "watched_at": None if self.watched_at is None else self.watched_at.isoformat(),
                "candidates": self.candidates, "registered": list(self.registered), "mail": self.mail}


@dataclass(frozen=True)
class ReportData:
    period: Period
    as_of: datetime  # the report's moment: the end of the period, or now when that is earlier
    generated_at: datetime
    posture_version: str
    catalog_version: str
    policy: Policy
    assets: tuple[AssetReport, ...]
    series: tuple[SeriesPoint, ...]  # every asset together
    duties: tuple[DutyStatus, ...] = ()  # the compliance calendar on the period's last day ([firm] set)
    watch: tuple[WatchEntry, ...] = ()  # per watched domain (issue 18)

    def clauses(self) -> tuple[ClauseRef, ...]:
        """Every clause a finding in the report refers to, by label."""
        seen: dict[str, ClauseRef] = {}
        for a in self.assets:
            for f in a.findings:
                for c in f.clauses:
                    seen.setdefault(c.label, c)
        return tuple(seen[k] for k in sorted(seen))

    def scan_count(self) -> int:
        """Scans in the period: posture's (whatever their status) and registered third-party ones."""
        return sum(len(a.scans) + len(a.external_scans) for a in self.assets)

    def open_by_severity(self) -> dict[str, int]:
        counts = dict.fromkeys(map(str, SEVERITY_ORDER), 0)
        for a in self.assets:
            for sev, n in a.open_by_severity().items():
                counts[sev] = counts.get(sev, 0) + n
        return counts

    def certificates(self) -> list[tuple[str, CertificateEntry]]:
        """(asset, certificate) for every asset, soonest expiry first."""
        out = [(a.name, c) for a in self.assets for c in a.certificates]
        out.sort(key=lambda pair: (pair[1].not_after, pair[0], pair[1].address))
        return out
