"""The digest as a manager reads it: a summary first, then only the assets with something to report.

A quiet asset (nothing new, fixed, decided, failed, overdue, due soon or expiring, and its
cadence fine) is counted in the summary, not listed: 50 assets fit on one screen. Where a
list is capped, the line that says how many more there are names the command that prints
exactly that list in full (``posture --now END digest --section KEY [--asset NAME]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from agent.notify import i18n
from agent.notify.channels import Message
from agent.notify.digest import DECISIONS, SEVERITIES, AssetDigest, Decision, Digest, Line, ScanProblem
from agent.notify.duty_alerts import calendar_heading, calendar_lines
from agent.targets import display_name, display_url
from schedules.remediation import CadenceState
from schedules.weekly import CertExpiry

# Section keys (``posture digest --section``), in the order an asset's sections are shown.
SECTIONS = ("new", "fixed", "config", "decisions", "scans", "overdue", "soon", "certs", "accepted", "open",
            "cadence")
SUMMARY_NAMES = 8  # asset names listed in a summary line before "N more"


@dataclass(frozen=True)
class Section:
    key: str
    heading: str
    items: tuple[str, ...]  # every item (the renderer caps)
    inline: bool = False  # one value shown beside the heading


def _local(d: Digest, at: datetime) -> str:
    return at.astimezone(ZoneInfo(d.tz)).isoformat(timespec="seconds")


def when_arg(d: Digest) -> str:
    """The --now that rebuilds this digest: the moment it was built as of, in the agent's time zone."""
    return _local(d, d.as_of)


def more_command(d: Digest, section: str, asset: str | None = None) -> str:
    """The command that prints exactly this list: the same "as of" and, when it is not the week
    ending then (a scheduled digest covers up to its firing), the same window."""
    window = "" if d.week_ending_now else f" --since {_local(d, d.start)} --until {_local(d, d.end)}"
    target = f" --asset {asset}" if asset is not None else ""
    return f"posture --now {when_arg(d)} digest{window} --section {section}{target}"


# ---------------------------------------------------------------- one line each


def finding(lang: str, x: Line, tz: str, with_due: bool) -> str:
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


def _decision(lang: str, x: Decision, tz: str) -> str:
    head = finding(lang, x.line, tz, False)
    parts = [i18n.t(lang, f"decision_{x.kind}")]
    if x.by:
        parts.append(i18n.t(lang, "decision_by", by=x.by))
    if x.reason:
        parts.append(i18n.t(lang, "decision_reason", reason=x.reason))
    if x.until:
        parts.append(i18n.t(lang, "decision_until", until=x.until))
    parts.append(i18n.moment(x.at, tz))
    joiner = "，" if lang == "zh-TW" else ", "
    return head + ("：" if lang == "zh-TW" else ": ") + joiner.join(parts)


def _scan(lang: str, x: ScanProblem, tz: str) -> str:
    status = i18n.t(lang, f"scan_{x.status}")
    line = i18n.t(lang, "scan_line", status=status, at=i18n.moment(x.at, tz), id=x.id)
    return line + (("：" if lang == "zh-TW" else ": ") + x.error if x.error else "")


def _cadence(lang: str, a: AssetDigest, tz: str) -> str:
    c = a.cadence.cadence
    values = {"due": i18n.day(c.due, tz, lang), "last": i18n.day(c.last_complete, tz, lang)}
    room = i18n.t(lang, "no_room", why=a.cadence.no_room) if a.cadence.no_room else ""
    if c.state is CadenceState.OVERDUE:
        if c.days_left == 0:
            return i18n.t(lang, "cadence_due_today", **values) + room
        return i18n.t(lang, "cadence_overdue", days=-c.days_left, **values) + room
    key = {CadenceState.WARNING: "cadence_warning", CadenceState.NEVER_SCANNED: "cadence_never"}.get(
        c.state, "cadence_ok")
    return i18n.t(lang, key, days=c.days_left, **values) + room


def _cert(lang: str, x: CertExpiry, tz: str) -> str:
    values = {"address": x.address, "subject": x.subject, "not_after": i18n.day(x.not_after, tz, lang)}
    if x.expired:
        return i18n.t(lang, "cert_expired", **values)
    return i18n.t(lang, "cert_line", days=x.days_left, **values)


def sections(d: Digest, a: AssetDigest, lang: str) -> list[Section]:
    """Every section of an asset, empty ones included (the renderer leaves those out)."""
    tz = d.tz
    joiner = "、" if lang == "zh-TW" else ", "
    counts = joiner.join(f"{i18n.severity(lang, s)} {n}" for s, n in a.open_by_severity.items() if n)

    def s(key: str, items: Sequence[str]) -> Section:
        return Section(key, i18n.t(lang, f"digest_{key}"), tuple(items))

    return [
        s("new", [finding(lang, x, tz, False) for x in a.new]),
        s("fixed", [finding(lang, x, tz, False) for x in a.fixed]),
        s("config", [_config(lang, x) for x in a.resolved_by_config]),
        s("decisions", [_decision(lang, x, tz) for x in a.decisions]),
        s("scans", [_scan(lang, x, tz) for x in a.scan_problems]),
        s("overdue", [finding(lang, x, tz, True) for x in a.overdue]),
        s("soon", [finding(lang, x, tz, True) for x in a.due_soon]),
        s("certs", [_cert(lang, x, tz) for x in a.certificates]),
        s("accepted", [_accepted(lang, x) for x in a.accepted]),
        Section("open", i18n.t(lang, "digest_open"), (counts,) if counts else (), inline=True),
        Section("cadence", i18n.t(lang, "digest_cadence"),
                (_cadence(lang, a, tz),) if a.cadence_at_risk else (), inline=True),
    ]


# ---------------------------------------------------------------- the summary


def title(d: Digest, language: str) -> str:
    lang = i18n.lang_of(language)
    start, end = i18n.day(d.start, d.tz, lang), i18n.day(d.end, d.tz, lang)
    if d.periods > 1:  # digests were not sent (posture was down): this one covers everything since
        return i18n.t(lang, "digest_title_catch_up", start=start, end=end, n=d.periods)
    return i18n.t(lang, "digest_title", start=start, end=end)


def _names(d: Digest, lang: str, names: Sequence[str], section: str) -> str:
    joiner = "、" if lang == "zh-TW" else ", "
    shown = joiner.join(display_name(n) for n in names[:SUMMARY_NAMES])
    if len(names) > SUMMARY_NAMES:
        shown += i18n.t(lang, "names_more", n=len(names) - SUMMARY_NAMES, command=more_command(d, section))
    return shown


def summary(d: Digest, lang: str) -> list[str]:
    """The first lines: counts, this week's changes and decisions, scans that failed, cadence at risk."""
    totals = d.totals()
    joiner = "、" if lang == "zh-TW" else ", "
    none = i18n.t(lang, "digest_none")
    listed = totals["assets_listed"]
    out = [i18n.t(lang, "digest_intro", start=i18n.moment(d.start, d.tz), end=i18n.moment(d.end, d.tz), tz=d.tz,
                  n=len(d.assets), listed=listed, quiet=len(d.assets) - listed)]
    opened = {s: sum(a.open_by_severity.get(s, 0) for a in d.assets) for s in SEVERITIES}
    counts = joiner.join(f"{i18n.severity(lang, s)} {n}" for s, n in opened.items() if n) or none
    out.append(i18n.t(lang, "summary_open", counts=counts, open=totals["open"], overdue=totals["overdue"],
                      soon=totals["due_soon"], accepted=totals["accepted"], certs=totals["certificates_expiring"]))
    out.append(i18n.t(lang, "summary_week", new=totals["new"], fixed=totals["fixed"],
                      config=totals["resolved_by_config"]))
    decided = joiner.join(f"{i18n.t(lang, f'decision_{k}')} {totals[f'decided_{k}']}"
                          for k in DECISIONS if totals[f"decided_{k}"])
    out.append(i18n.t(lang, "summary_decisions", decisions=decided or none))
    failed = [a.name for a in d.assets if any(x.status != "partial" for x in a.scan_problems)]
    partial = [a.name for a in d.assets if any(x.status == "partial" for x in a.scan_problems)]
    scans = []
    if failed:
        scans.append(i18n.t(lang, "summary_failed", n=totals["scans_failed"], names=_names(d, lang, failed, "scans")))
    if partial:
        scans.append(i18n.t(lang, "summary_partial", n=totals["scans_partial"],
                            names=_names(d, lang, partial, "scans")))
    out.append(i18n.t(lang, "summary_scans", scans="；".join(scans) if lang == "zh-TW" else "; ".join(scans))
               if scans else i18n.t(lang, "summary_scans", scans=none))
    risk = []
    for state, key in ((CadenceState.OVERDUE, "cadence_state_overdue"), (CadenceState.WARNING, "cadence_state_warning"),
                       (CadenceState.NEVER_SCANNED, "cadence_state_never")):
        names = [a.name for a in d.assets if a.cadence.cadence.state is state]
        if names:
            risk.append(f"{i18n.t(lang, key)} {len(names)}（{_names(d, lang, names, 'cadence')}）" if lang == "zh-TW"
                        else f"{i18n.t(lang, key)} {len(names)} ({_names(d, lang, names, 'cadence')})")
    room = [a.name for a in d.assets if a.cadence.no_room and a.cadence.cadence.state is CadenceState.OK]
    if room:
        risk.append(i18n.t(lang, "cadence_state_no_room", n=len(room), names=_names(d, lang, room, "cadence")))
    out.append(i18n.t(lang, "summary_cadence", risk=("；" if lang == "zh-TW" else "; ").join(risk) or none))
    return out


# ---------------------------------------------------------------- rendering


def _selected(d: Digest, everything: bool, asset: str | None) -> list[AssetDigest]:
    return [a for a in d.assets if (asset is None or a.name == asset) and (everything or a.has_news)]


def _capped(d: Digest, lang: str, a: AssetDigest, s: Section, cap: int | None) -> list[str]:
    if cap is None or len(s.items) <= cap:
        return list(s.items)
    return [*s.items[:cap], i18n.t(lang, "more_items", n=len(s.items) - cap, command=more_command(d, s.key, a.name))]


def render_text(d: Digest, language: str, cap: int | None = None, *, everything: bool = False,
                asset: str | None = None, section: str | None = None) -> str:
    """Summary, then the assets with something to report (``everything``: every asset, every section).

    ``section``: only that section of each asset, uncapped, no summary: what a "more" line points to.
    """
    lang = i18n.lang_of(language)
    out = [title(d, lang)]
    if section is None:
        out += summary(d, lang)
    for a in _selected(d, everything or section is not None or asset is not None, asset):
        body: list[str] = []
        for s in sections(d, a, lang):
            if section is not None and s.key != section:
                continue
            if not s.items:
                continue
            if s.inline:
                body.append(f"{s.heading}: {s.items[0]}")
            else:
                body.append(f"{s.heading} ({len(s.items)}):")
                body += [f"  - {item}" for item in _capped(d, lang, a, s, cap)]
        if body or section is None:
            out += ["", f"== {display_name(a.name)}  {display_url(a.url)}", *(body or [i18n.t(lang, "digest_quiet")])]
    if d.duties and section is None and asset is None:  # the compliance calendar ([firm] set)
        out += ["", f"== {calendar_heading(lang, len(d.duties))}",
                *(f"  - {x}" for x in calendar_lines(d.duties, lang))]
    return "\n".join(out) + "\n"


def render_markdown(d: Digest, language: str, cap: int | None = None) -> str:
    from agent.notify.alerts import md_escape

    lang = i18n.lang_of(language)
    out = [f"## {md_escape(title(d, lang))}", "", *(md_escape(x) + "  " for x in summary(d, lang))]
    for a in _selected(d, False, None):
        out += ["", f"### {md_escape(display_name(a.name))}", "", md_escape(display_url(a.url)), ""]
        for s in sections(d, a, lang):
            if not s.items:
                continue
            if s.inline:
                out += [f"**{md_escape(s.heading)}**: {md_escape(s.items[0])}", ""]
                continue
            out += [f"**{md_escape(s.heading)}** ({len(s.items)})", ""]
            out += [*(f"- {md_escape(item)}" for item in _capped(d, lang, a, s, cap)), ""]
    if d.duties:  # the compliance calendar ([firm] set)
        out += ["", f"### {md_escape(calendar_heading(lang, len(d.duties)))}", "",
                *(f"- {md_escape(x)}" for x in calendar_lines(d.duties, lang))]
    return "\n".join(out).strip() + "\n"


def message(d: Digest, language: str, cap: int) -> Message:
    """The digest as one notification: a summary first, capped lists, markdown beside the text."""
    return Message(title=title(d, language), text=render_text(d, language, cap),
                   markdown=render_markdown(d, language, cap), kind="info")
