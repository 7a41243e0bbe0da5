"""The weekly digest: per configured asset, what changed this week and what needs doing.

Built from stored history as of a moment, over a window of events (``posture digest``: the
week ending at that moment; a scheduled digest: from where the last one sent ended to its
firing), then rendered as JSON (for scripts), plain text, or Markdown (channels that take
Markdown or HTML), in Traditional Chinese or English.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.notify import i18n
from agent.observed import tls_certificates
from agent.targets import display_url
from agent.tracking.duties import status_json
from schedules.due import DueState, due_state
from schedules.remediation import CadenceState
from schedules.weekly import CertExpiry, changes, expiring_certificates, week_window
from vocab import SEVERITY_ORDER, FindingState, severity_position

if TYPE_CHECKING:
    from agent.config import Config
    from agent.tracking.remediation import AssetCadence
    from probes.catalog import Catalog
    from schedules.duties import DutyStatus
    from state.store import Store
    from state.views import AssetInfo, EventInfo, FindingInfo

SEVERITIES = tuple(s.value for s in SEVERITY_ORDER)  # worst first (the one order: vocab)
# The decisions (and configuration changes) the digest reports, in the order it lists them.
DECISIONS = ("accepted", "false_positive", "reopened", "resolved_by_config", "acceptance_expired")
# Events that are a decision of another name: a person's ``findings reopen`` is the "reopened" decision.
_DECIDED_AS = {"reopened_by_decision": "reopened"}


@dataclass(frozen=True)
class Line:
    id: int
    check_id: str
    key: str
    severity: str
    state: str
    title_en: str
    title_zh: str
    due: datetime | None
    until: str | None = None  # accepted: the end date as the person typed it
    config: tuple[str | None, str | None] | None = None  # resolved by configuration: hashes before, after

    def title(self, lang: str) -> str:
        return self.title_zh if i18n.lang_of(lang) == "zh-TW" else self.title_en

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "check_id": self.check_id, "key": self.key, "severity": self.severity,
               "state": self.state, "title": self.title_en, "title_zh": self.title_zh,
               "due": None if self.due is None else self.due.isoformat()}
        if self.until is not None:
            out["accepted_until"] = self.until
        if self.config is not None:
            out["config_hash_before"], out["config_hash_after"] = self.config
        return out


@dataclass(frozen=True)
class Decision:
    """A person's decision on a finding this week (or configuration resolving it): who, when, why, until."""

    line: Line
    kind: str  # accepted | false_positive | reopened | resolved_by_config | acceptance_expired
    at: datetime
    by: str | None
    reason: str | None
    until: str | None  # accepted: the end as the person typed it

    def to_json(self) -> dict[str, Any]:
        return {**self.line.to_json(), "decision": self.kind, "at": self.at.isoformat(), "by": self.by,
                "reason": self.reason, **({"until": self.until} if self.until is not None else {})}


@dataclass(frozen=True)
class ScanProblem:
    """A scan this week that did not give a complete record: failed (unreachable), interrupted or partial."""

    id: int
    at: datetime
    status: str
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {"scan_id": self.id, "started_at": self.at.isoformat(), "status": self.status, "error": self.error}


@dataclass(frozen=True)
class AssetDigest:
    name: str
    url: str
    kind: str
    new: tuple[Line, ...]
    fixed: tuple[Line, ...]
    resolved_by_config: tuple[Line, ...]
    accepted: tuple[Line, ...]
    last_external_entered: str | None
    open_by_severity: Mapping[str, int]
    overdue: tuple[Line, ...]
    due_soon: tuple[Line, ...]
    certificates: tuple[CertExpiry, ...]
    cadence: AssetCadence
    decisions: tuple[Decision, ...] = ()
    scan_problems: tuple[ScanProblem, ...] = ()

    @property
    def cadence_at_risk(self) -> bool:
        return self.cadence.cadence.state is not CadenceState.OK or bool(self.cadence.no_room)

    @property
    def has_news(self) -> bool:
        """Something a manager should read: the digest's text lists only these assets."""
        return bool(self.new or self.fixed or self.resolved_by_config or self.decisions or self.scan_problems
                    or self.overdue or self.due_soon or self.certificates or self.cadence_at_risk)

    def to_json(self) -> dict[str, Any]:
        c = self.cadence.cadence
        return {
            "asset": self.name, "url": display_url(self.url), "kind": self.kind,
            "new": [x.to_json() for x in self.new], "fixed": [x.to_json() for x in self.fixed],
            "resolved_by_config": [x.to_json() for x in self.resolved_by_config],
            "accepted": [x.to_json() for x in self.accepted],
            "decisions": [x.to_json() for x in self.decisions],
            "scan_problems": [x.to_json() for x in self.scan_problems],
            "has_news": self.has_news,
            "open_by_severity": dict(self.open_by_severity),
            "overdue": [x.to_json() for x in self.overdue], "due_soon": [x.to_json() for x in self.due_soon],
            "certificates_expiring": [
                {"address": x.address, "subject": x.subject, "not_after": x.not_after.isoformat(),
                 "days_left": x.days_left} for x in self.certificates
            ],
            "cadence": {
                "state": c.state.value, "due": c.due.isoformat(), "days_left": c.days_left,
                "last_complete": None if c.last_complete is None else c.last_complete.isoformat(),
                "last_scan": None if self.cadence.last_attempt is None else self.cadence.last_attempt.isoformat(),
                "last_complete_scan": None if self.cadence.last_scan is None
                else self.cadence.last_scan.isoformat(),
                "last_third_party_scan": None if self.cadence.last_external is None
                else self.last_external_entered or self.cadence.last_external.isoformat(),
                "no_room": self.cadence.no_room,
            },
        }


@dataclass(frozen=True)
class Digest:
    start: datetime  # the window of events: [start, end)
    end: datetime
    tz: str
    assets: tuple[AssetDigest, ...]
    duties: tuple[DutyStatus, ...] = ()  # the compliance calendar (with a [firm] section)
    at: datetime | None = None  # "as of": open counts, deadlines, cadence, certificates (None: the end)
    periods: int = 1  # scheduled firings the window covers: more than one catches up on digests not sent

    @property
    def as_of(self) -> datetime:
        return self.end if self.at is None else self.at

    @property
    def week_ending_now(self) -> bool:
        """The window is the week ending at the "as of" moment (what ``posture --now AT digest`` builds)."""
        return (self.start, self.end) == week_window(self.as_of)

    def totals(self) -> dict[str, int]:
        return {
            "new": sum(len(a.new) for a in self.assets),
            "fixed": sum(len(a.fixed) for a in self.assets),
            "resolved_by_config": sum(len(a.resolved_by_config) for a in self.assets),
            "open": sum(sum(a.open_by_severity.values()) for a in self.assets),
            "overdue": sum(len(a.overdue) for a in self.assets),
            "due_soon": sum(len(a.due_soon) for a in self.assets),
            "certificates_expiring": sum(len(a.certificates) for a in self.assets),
            "cadence_overdue": sum(a.cadence.cadence.state is CadenceState.OVERDUE for a in self.assets),
            "cadence_warning": sum(a.cadence.cadence.state is CadenceState.WARNING for a in self.assets),
            "cadence_never_scanned": sum(a.cadence.last_scan is None and a.cadence.last_external is None
                                         for a in self.assets),
            "accepted": sum(len(a.accepted) for a in self.assets),
            **{f"decided_{k}": sum(1 for a in self.assets for x in a.decisions if x.kind == k) for k in DECISIONS},
            "scans_failed": sum(1 for a in self.assets for x in a.scan_problems if x.status != "partial"),
            "scans_partial": sum(1 for a in self.assets for x in a.scan_problems if x.status == "partial"),
            "assets_listed": sum(a.has_news for a in self.assets),
        }

    def to_json(self) -> dict[str, Any]:
        return {"week_start": self.start.isoformat(), "week_end": self.end.isoformat(), "timezone": self.tz,
                "as_of": self.as_of.isoformat(), "periods": self.periods,
                "totals": self.totals(), "assets": [a.to_json() for a in self.assets],
                "duties": [status_json(x) for x in self.duties]}


def build(cfg: Config, store: Store, now: datetime, catalog: Catalog,
          stored: Mapping[str, AssetInfo] | None = None, *,
          window: tuple[datetime, datetime] | None = None, periods: int = 1) -> Digest:
    """The digest of the configured assets as of ``now``, over the events of ``window`` ([start, end);
    default: the week ending at ``now``). ``periods``: the scheduled firings the window covers."""
    from agent.tracking.remediation import cadences, deadline_policy, deadlines
    from state import evidence, external_scans
    from state.history_reads import latest_runs
    from state.lifecycle import NEEDS_FIX
    from state.views import AssetInfo, EventKind, FindingFilter

    start, end = week_window(now) if window is None else window
    specs = cfg.asset_specs()
    known = dict(stored) if stored is not None else {a.name: a for a in store.assets()}
    # An asset not stored yet (never scanned, no run --once since it was configured) counts from now.
    infos = {s.name: known.get(s.name) or AssetInfo(0, s.name, s.url.normalised, s.kind, True, now) for s in specs}
    from agent.scanning.watch import watch_names

    infos |= {n: known[n] for n in watch_names(cfg) if n in known}  # watched domains, once watched
    everything = [f for f in store.findings(FindingFilter.ALL, now=now) if f.asset in infos]
    kinds = {name: info.kind for name, info in infos.items()}
    due = deadlines(store, deadline_policy(cfg), [f for f in everything if f.state in NEEDS_FIX], kinds)
    by_id = {f.id: f for f in everything}
    cad = cadences(cfg, store, infos, now)
    tls = latest_runs(store, "tls", [n for n in infos if n in known])
    warn_days = cfg.tls.expiry_warning_days

    def line(f: FindingInfo, config: tuple[str | None, str | None] | None = None) -> Line:
        check = catalog.checks.get(f.check_id)
        until = None
        if f.state is FindingState.ACCEPTED:
            until = f.accepted_until_entered or (None if f.accepted_until is None else f.accepted_until.isoformat())
        return Line(f.id, f.check_id, f.key, f.severity, f.state.value, check.title_en if check else f.check_id,
                    check.title_zh if check else f.check_id, due.get(f.id), until, config)

    # The newest third-party scan of each asset, its date as the person entered it.
    external_entered = {x.asset: x.performed_entered for x in external_scans.scans(store)}

    # One query for the week's events and one pass over the findings, not one of each per asset:
    # 500 assets' histories took a second on SQLite and three on PostgreSQL (bench/gen_history.py).
    week_events: dict[str, list[EventInfo]] = {}
    for event in evidence.events(store, since=start, until=end):
        week_events.setdefault(event.asset, []).append(event)
    problems: dict[str, list[ScanProblem]] = {}
    troubled = [s for s in evidence.scan_summaries(store, since=start, until=end)
                if s.status.value in ("failed", "interrupted", "partial")]
    why: dict[int, list[str]] = {}
    if troubled:
        wanted = {s.id for s in troubled}
        for r in evidence.run_summaries(store, since=start, until=end):
            if r.scan_id in wanted and r.status.value != "ok":
                why.setdefault(r.scan_id, []).append(f"{r.probe}: {r.error or r.skip_reason or r.status.value}")
    for scan in troubled:
        reason = scan.error or "; ".join(why.get(scan.id, ())) or None
        problems.setdefault(scan.asset, []).append(ScanProblem(scan.id, scan.started_at, scan.status.value, reason))
    by_asset: dict[str, list[FindingInfo]] = {}
    for f in everything:
        by_asset.setdefault(f.asset, []).append(f)

    assets: list[AssetDigest] = []
    for name, info in infos.items():  # configured assets, then watched domains
        mine = by_asset.get(name, [])
        events = week_events.get(name, []) if name in known else []
        week = changes(events, start, end)
        config_hashes = {e.finding_id: (e.detail.get("config_hash_before"), e.detail.get("config_hash_after"))
                         for e in events if e.kind is EventKind.RESOLVED_BY_CONFIG}
        open_now = sorted((f for f in mine if f.id in due), key=_rank)
        states = {f.id: due_state(due[f.id], now) for f in open_now}
        counts = {s: sum(1 for f in open_now if f.severity == s) for s in SEVERITY_ORDER}
        certs = expiring_certificates(tls_certificates(tls[name].observations), now, warn_days) if name in tls else ()
        assets.append(AssetDigest(
            name=name, url=info.url, kind=info.kind,
            new=tuple(line(by_id[i]) for i in week.new if i in by_id),
            fixed=tuple(line(by_id[i]) for i in week.fixed if i in by_id),
            resolved_by_config=tuple(line(by_id[i], config_hashes.get(i)) for i in week.resolved_by_config
                                     if i in by_id),
            accepted=tuple(line(f) for f in sorted(mine, key=_rank) if f.state is FindingState.ACCEPTED),
            last_external_entered=external_entered.get(name),
            open_by_severity={s: n for s, n in counts.items() if n},
            overdue=tuple(line(f) for f in open_now if states[f.id] is DueState.OVERDUE),
            due_soon=tuple(line(f) for f in open_now if states[f.id] is DueState.SOON),
            certificates=tuple(certs),
            cadence=cad[name],
            decisions=tuple(_decisions(events, by_id, line)),
            scan_problems=tuple(problems.get(name, ()) if name in known else ()),
        ))
    return Digest(start, end, cfg.agent.timezone, tuple(assets), _duties(cfg, store, now), now, periods)


def _duties(cfg: Config, store: Store, now: datetime) -> tuple[DutyStatus, ...]:
    from agent.tracking.duties import calendar, local_day

    return () if cfg.firm is None else tuple(calendar(cfg, store, local_day(now, cfg.agent.timezone)))


def _decisions(events: Sequence[EventInfo], by_id: Mapping[int, FindingInfo],
               line: Callable[[FindingInfo], Line]) -> list[Decision]:
    """The week's decisions, oldest first: people's (scan_id None) and configuration changes.

    A person undoing an acceptance or a false positive (``findings reopen``, the event
    ``reopened_by_decision``) is the "reopened" decision. A finding a scan reports again also
    "reopens", but that is a new finding for the digest, not a decision: a ``reopened`` event
    counts only with no scan behind it.
    """
    out = []
    for e in sorted(events, key=lambda e: (e.at, e.id)):
        kind = _DECIDED_AS.get(e.kind.value, e.kind.value)
        if kind not in DECISIONS or e.finding_id not in by_id:
            continue
        if kind == "reopened" and e.scan_id is not None:
            continue
        d = e.detail
        until = d.get("until_entered") or d.get("until") if kind == "accepted" else None
        by, reason = d.get("by"), d.get("reason")
        out.append(Decision(line(by_id[e.finding_id]), kind, e.at, by if isinstance(by, str) else None,
                            reason if isinstance(reason, str) else None, until if isinstance(until, str) else None))
    return out


def _rank(f: FindingInfo) -> tuple[int, str, str]:
    return (severity_position(f.severity), f.check_id, f.key)
