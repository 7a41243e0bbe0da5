"""The weekly digest: per configured asset, what changed this week and what needs doing.

Built from stored history at a moment (the week ends there), then rendered as JSON
(for scripts), plain text, or Markdown (channels that take Markdown or HTML), in
Traditional Chinese or English.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.notify import i18n
from agent.notify.channels import Message
from agent.observed import tls_certificates
from schedules.due import DueState, due_state
from schedules.remediation import CadenceState
from schedules.weekly import CertExpiry, changes, expiring_certificates, week_window

if TYPE_CHECKING:
    from agent.config import Config
    from agent.tracking.remediation import AssetCadence
    from probes.catalog import Catalog
    from state.store import Store
    from state.views import AssetInfo, EventInfo, FindingInfo

SEVERITIES = ("critical", "high", "medium", "low", "info")


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

    def to_json(self) -> dict[str, Any]:
        c = self.cadence.cadence
        return {
            "asset": self.name, "url": self.url, "kind": self.kind,
            "new": [x.to_json() for x in self.new], "fixed": [x.to_json() for x in self.fixed],
            "resolved_by_config": [x.to_json() for x in self.resolved_by_config],
            "accepted": [x.to_json() for x in self.accepted],
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
    start: datetime
    end: datetime
    tz: str
    assets: tuple[AssetDigest, ...]

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
        }

    def to_json(self) -> dict[str, Any]:
        return {"week_start": self.start.isoformat(), "week_end": self.end.isoformat(), "timezone": self.tz,
                "totals": self.totals(), "assets": [a.to_json() for a in self.assets]}


def build(cfg: Config, store: Store, now: datetime, catalog: Catalog,
          stored: Mapping[str, AssetInfo] | None = None) -> Digest:
    """The digest of the configured assets for the week ending at ``now``."""
    from agent.tracking.remediation import cadences, deadline_policy, deadlines
    from state import evidence, external_scans
    from state.history_reads import latest_runs
    from state.lifecycle import NEEDS_FIX
    from state.views import AssetInfo, FindingFilter

    start, end = week_window(now)
    specs = cfg.asset_specs()
    known = dict(stored) if stored is not None else {a.name: a for a in store.assets()}
    # An asset not stored yet (never scanned, no run --once since it was configured) counts from now.
    infos = {s.name: known.get(s.name) or AssetInfo(0, s.name, s.url.normalised, s.kind, True, now) for s in specs}
    everything = [f for f in store.findings(FindingFilter.ALL) if f.asset in infos]
    kinds = {name: info.kind for name, info in infos.items()}
    due = deadlines(store, deadline_policy(cfg), [f for f in everything if f.state in NEEDS_FIX], kinds)
    by_id = {f.id: f for f in everything}
    cad = cadences(cfg, store, infos, now)
    tls = latest_runs(store, "tls", [n for n in infos if n in known])
    warn_days = cfg.tls.expiry_warning_days

    def line(f: FindingInfo, config: tuple[str | None, str | None] | None = None) -> Line:
        check = catalog.checks.get(f.check_id)
        until = None
        if f.state.value == "accepted":
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
    by_asset: dict[str, list[FindingInfo]] = {}
    for f in everything:
        by_asset.setdefault(f.asset, []).append(f)

    assets: list[AssetDigest] = []
    for spec in specs:
        name = spec.name
        mine = by_asset.get(name, [])
        events = week_events.get(name, []) if name in known else []
        week = changes(events, start, end)
        config_hashes = {e.finding_id: (e.detail.get("config_hash_before"), e.detail.get("config_hash_after"))
                         for e in events if e.kind.value == "resolved_by_config"}
        open_now = sorted((f for f in mine if f.id in due), key=_rank)
        states = {f.id: due_state(due[f.id], now) for f in open_now}
        counts = {s: sum(1 for f in open_now if f.severity == s) for s in SEVERITIES}
        certs = expiring_certificates(tls_certificates(tls[name].observations), now, warn_days) if name in tls else ()
        assets.append(AssetDigest(
            name=name, url=spec.url.normalised, kind=spec.kind,
            new=tuple(line(by_id[i]) for i in week.new if i in by_id),
            fixed=tuple(line(by_id[i]) for i in week.fixed if i in by_id),
            resolved_by_config=tuple(line(by_id[i], config_hashes.get(i)) for i in week.resolved_by_config
                                     if i in by_id),
            accepted=tuple(line(f) for f in sorted(mine, key=_rank) if f.state.value == "accepted"),
            last_external_entered=external_entered.get(name),
            open_by_severity={s: n for s, n in counts.items() if n},
            overdue=tuple(line(f) for f in open_now if states[f.id] is DueState.OVERDUE),
            due_soon=tuple(line(f) for f in open_now if states[f.id] is DueState.SOON),
            certificates=tuple(certs),
            cadence=cad[name],
        ))
    return Digest(start, end, cfg.agent.timezone, tuple(assets))


def _rank(f: FindingInfo) -> tuple[int, str, str]:
    return (SEVERITIES.index(f.severity) if f.severity in SEVERITIES else 9, f.check_id, f.key)


# ---------------------------------------------------------------- rendering


def _finding(lang: str, x: Line, tz: str, with_due: bool) -> str:
    sev = i18n.severity(lang, x.severity)
    if with_due and x.due is not None:
        return i18n.t(lang, "due_line", sev=sev, title=x.title(lang), check=x.check_id, key=x.key, id=x.id,
                      due=i18n.day(x.due, tz, lang))
    return i18n.t(lang, "finding_line", sev=sev, title=x.title(lang), check=x.check_id, key=x.key, id=x.id)


def _config(lang: str, x: Line) -> str:
    before, after = x.config or (None, None)
    return i18n.t(lang, "config_line", sev=i18n.severity(lang, x.severity), title=x.title(lang),
                  check=x.check_id, key=x.key, id=x.id, before=before or "?", after=after or "?")


def _accepted(lang: str, x: Line) -> str:
    return i18n.t(lang, "accepted_line", sev=i18n.severity(lang, x.severity), title=x.title(lang),
                  check=x.check_id, key=x.key, id=x.id, until=x.until or "?")


def _cadence(lang: str, a: AssetDigest, tz: str) -> str:
    c = a.cadence.cadence
    values = {"due": i18n.day(c.due, tz, lang), "last": i18n.day(c.last_complete, tz, lang)}
    room = i18n.t(lang, "no_room", why=a.cadence.no_room) if a.cadence.no_room else ""
    if c.state is CadenceState.OVERDUE:
        return i18n.t(lang, "cadence_overdue", days=-c.days_left, **values) + room
    key = {CadenceState.WARNING: "cadence_warning", CadenceState.NEVER_SCANNED: "cadence_never"}.get(
        c.state, "cadence_ok")
    return i18n.t(lang, key, days=c.days_left, **values) + room


def _cert(lang: str, x: CertExpiry, tz: str) -> str:
    values = {"address": x.address, "subject": x.subject, "not_after": i18n.day(x.not_after, tz, lang)}
    if x.expired:
        return i18n.t(lang, "cert_expired", **values)
    return i18n.t(lang, "cert_line", days=x.days_left, **values)


@dataclass(frozen=True)
class _Section:
    heading: str
    items: tuple[str, ...]  # listed (capped)
    total: int  # how many there are
    inline: bool = False  # a one-line summary shown beside the heading


def _sections(d: Digest, a: AssetDigest, lang: str, cap: int | None) -> list[_Section]:
    tz = d.tz

    def listed(key: str, items: Sequence[str]) -> _Section:
        shown = list(items) if cap is None or len(items) <= cap else [
            *items[:cap], i18n.t(lang, "more", n=len(items) - cap)]
        return _Section(i18n.t(lang, key), tuple(shown), len(items))

    joiner = "、" if lang == "zh-TW" else ", "
    counts = joiner.join(f"{i18n.severity(lang, s)} {n}" for s, n in a.open_by_severity.items())
    return [
        listed("digest_new", [_finding(lang, x, tz, False) for x in a.new]),
        listed("digest_fixed", [_finding(lang, x, tz, False) for x in a.fixed]),
        listed("digest_config", [_config(lang, x) for x in a.resolved_by_config]),
        _Section(i18n.t(lang, "digest_open"), (counts or i18n.t(lang, "digest_none"),),
                 sum(a.open_by_severity.values()), inline=True),
        listed("digest_overdue", [_finding(lang, x, tz, True) for x in a.overdue]),
        listed("digest_soon", [_finding(lang, x, tz, True) for x in a.due_soon]),
        listed("digest_accepted", [_accepted(lang, x) for x in a.accepted]),
        listed("digest_certs", [_cert(lang, x, tz) for x in a.certificates]),
        _Section(i18n.t(lang, "digest_cadence"), (_cadence(lang, a, tz),), 1, inline=True),
    ]


def title(d: Digest, language: str) -> str:
    lang = i18n.lang_of(language)
    return i18n.t(lang, "digest_title", start=i18n.day(d.start, d.tz, lang), end=i18n.day(d.end, d.tz, lang))


def _header(d: Digest, lang: str) -> list[str]:
    totals = d.totals()
    return [
        i18n.t(lang, "digest_intro", start=i18n.moment(d.start, d.tz), end=i18n.moment(d.end, d.tz), tz=d.tz,
               n=len(d.assets)),
        i18n.t(lang, "digest_totals", new=totals["new"], fixed=totals["fixed"], open=totals["open"],
               overdue=totals["overdue"], soon=totals["due_soon"]),
    ]


def render_text(d: Digest, language: str, cap: int | None = None) -> str:
    lang = i18n.lang_of(language)
    out = [title(d, lang), *_header(d, lang)]
    none = i18n.t(lang, "digest_none")
    for a in d.assets:
        out += ["", f"== {a.name}  {a.url}"]
        for s in _sections(d, a, lang, cap):
            if s.inline:
                out.append(f"{s.heading}: {s.items[0]}")
            else:
                out.append(f"{s.heading}: {s.total or none}")
                out += [f"  - {item}" for item in s.items]
    return "\n".join(out) + "\n"


def render_markdown(d: Digest, language: str, cap: int | None = None) -> str:
    from agent.notify.alerts import md_escape

    lang = i18n.lang_of(language)
    out = [f"## {md_escape(title(d, lang))}", "", *(md_escape(x) + "  " for x in _header(d, lang))]
    none = i18n.t(lang, "digest_none")
    for a in d.assets:
        out += ["", f"### {md_escape(a.name)}", "", md_escape(a.url), ""]
        for s in _sections(d, a, lang, cap):
            if s.inline:
                out += [f"**{md_escape(s.heading)}**: {md_escape(s.items[0])}", ""]
                continue
            out += [f"**{md_escape(s.heading)}**: {s.total or none}", ""]
            if s.items:
                out += [*(f"- {md_escape(item)}" for item in s.items), ""]
    return "\n".join(out).strip() + "\n"


def message(d: Digest, language: str, cap: int) -> Message:
    return Message(title=title(d, language), text=render_text(d, language, cap),
                   markdown=render_markdown(d, language, cap), kind="info")
