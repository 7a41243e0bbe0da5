"""Alert conditions and the grouped message that carries them.

Each condition has a key that names it exactly once (the delivery log sends a key once
per channel): a new finding is ``new:ID:N`` (N counts its reopenings, so a finding that
comes back is news again), a missed deadline ``deadline:ID:DUE``, a slipping cadence
``cadence:ASSET:STATE:DUE`` (a new complete scan moves DUE, so the next slip is news).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.checks import AgentCheck
from agent.notify import i18n
from agent.notify.alert_types import _ORDER
from agent.notify.alert_types import Alert as Alert
from agent.notify.alert_types import AlertKind as AlertKind
from agent.notify.channels import Message
from schedules.remediation import CadenceState
from vocab import Severity, severity_rank

if TYPE_CHECKING:
    from agent.tracking.remediation import AssetCadence
    from probes.catalog import Catalog
    from state.views import FindingInfo

CADENCE_CHECK = AgentCheck.CADENCE_OVERDUE.value
DEADLINE_CHECK = AgentCheck.DEADLINE_MISSED.value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def new_finding(f: FindingInfo) -> Alert:
    return Alert(AlertKind.NEW_FINDING, f"new:{f.id}:{f.reopened_count}", f.asset, f.severity, f.check_id,
                 {"finding_id": f.id, "key": f.key, "reopened": f.reopened_count > 0,
                  "first_seen": _iso(f.first_seen)})


def new_finding_key(condition: str) -> tuple[int, int] | None:
    """(finding id, reopen count) of a ``new:ID:N`` condition; None for any other condition."""
    kind, _, rest = condition.partition(":")
    ident, _, count = rest.partition(":")
    if kind != "new" or not ident.isdigit() or not count.isdigit():
        return None
    return int(ident), int(count)


def still_new(f: FindingInfo | None, count: int, now: datetime) -> bool:
    """A new-finding alert still holds while its finding needs fixing as that same appearance:
    open or reopened (an acceptance past its end counts as open) with ``count`` reopenings.
    Fixed, accepted, marked a false positive, resolved by configuration, gone, or back again
    (a newer ``new:ID:N+1`` says so): it is no longer news."""
    if f is None:
        return False
    from state.lifecycle import NEEDS_FIX

    return f.at(now).state in NEEDS_FIX and f.reopened_count == count


def deadline_missed(f: FindingInfo, due: datetime, now: datetime) -> Alert:
    days = int((now - due) / timedelta(days=1))
    return Alert(AlertKind.DEADLINE_MISSED, f"deadline:{f.id}:{due.isoformat()}", f.asset, f.severity,
                 f.check_id, {"finding_id": f.id, "key": f.key, "due": due.isoformat(), "days_over": days})


def cadence_slipping(c: AssetCadence) -> Alert | None:
    """The worst cadence state of the asset, or None when it is fine (overdue replaces the warning)."""
    state = c.cadence.state
    if state in (CadenceState.OK, CadenceState.NEVER_SCANNED):
        if c.no_room is None:
            return None
        state = CadenceState.WARNING  # quiet windows leave no room before the due date: warn now
    kind = AlertKind.CADENCE_OVERDUE if state is CadenceState.OVERDUE else AlertKind.CADENCE_WARNING
    detail = {"due": c.cadence.due.isoformat(), "days_left": c.cadence.days_left,
              "last_complete": _iso(c.cadence.last_complete)}
    if c.no_room:
        detail["no_room"] = c.no_room
    return Alert(kind, f"cadence:{c.asset}:{state.value}:{c.cadence.due.isoformat()}", c.asset,
                 "high" if state is CadenceState.OVERDUE else "medium", CADENCE_CHECK, detail)


def ordered(alerts: Iterable[Alert]) -> list[Alert]:
    """Most pressing first: cadence overdue, deadlines, new findings, warnings; severity within."""
    return sorted(alerts, key=lambda a: (_ORDER[a.kind], -severity_rank(a.severity), a.asset,
                                         a.condition))


def _parse(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def _line(a: Alert, lang: str, tz: str, catalog: Catalog) -> str:
    d = a.detail
    if a.kind in CALENDAR_KINDS:
        from agent.notify.duty_alerts import line as calendar_line

        return calendar_line(a, lang)
    check = catalog.checks.get(a.check_id)
    title = check.title(lang) if check else a.check_id
    sev = i18n.severity(lang, a.severity)
    if a.kind is AlertKind.NEW_FINDING:
        line = i18n.t(lang, "new_line", sev=sev, asset=a.asset, title=title, check=a.check_id,
                      key=d.get("key", ""), id=d.get("finding_id"))
        return line + (i18n.t(lang, "reopened") if d.get("reopened") else "")
    if a.kind is AlertKind.DEADLINE_MISSED:
        if int(d.get("days_over") or 0) < 1:  # past the deadline by hours: never "0 day(s) overdue"
            return i18n.t(lang, "deadline_today_line", sev=sev, asset=a.asset, title=title, check=a.check_id,
                          key=d.get("key", ""), id=d.get("finding_id"),
                          due=i18n.day(_parse(d.get("due")), tz, lang))
        return i18n.t(lang, "deadline_line", sev=sev, asset=a.asset, title=title, check=a.check_id,
                      key=d.get("key", ""), id=d.get("finding_id"), due=i18n.day(_parse(d.get("due")), tz, lang),
                      days=d.get("days_over"))
    last = i18n.day(_parse(d.get("last_complete")), tz, lang)
    due = i18n.day(_parse(d.get("due")), tz, lang)
    left = int(d.get("days_left", 0))
    room = i18n.t(lang, "no_room", why=d["no_room"]) if d.get("no_room") else ""
    if a.kind is AlertKind.CADENCE_OVERDUE:
        if left >= 0:
            return i18n.t(lang, "cadence_overdue_today_line", asset=a.asset, title=title, due=due, last=last) + room
        return i18n.t(lang, "cadence_overdue_line", asset=a.asset, title=title, due=due, days=-left, last=last) + room
    return i18n.t(lang, "cadence_warning_line", asset=a.asset, due=due, days=left, last=last) + room


CALENDAR_KINDS = (AlertKind.DUTY_OVERDUE, AlertKind.DECLARATION_REMINDER, AlertKind.DUTY_DUE_SOON,
                  AlertKind.PACK_READY, AlertKind.PACK_FAILED)

_SECTIONS = (
    ("section_calendar", CALENDAR_KINDS),
    ("section_cadence", (AlertKind.CADENCE_OVERDUE, AlertKind.CADENCE_WARNING)),
    ("section_deadline", (AlertKind.DEADLINE_MISSED,)),
    ("section_new", (AlertKind.NEW_FINDING,)),
)


def message(alerts: Sequence[Alert], language: str, tz: str, catalog: Catalog, cap: int) -> Message:
    """One grouped message: at most ``cap`` items listed, the rest counted."""
    lang = i18n.lang_of(language)
    listed = ordered(alerts)[:cap]
    text: list[str] = []
    md: list[str] = []
    for heading, kinds in _SECTIONS:
        items = [a for a in listed if a.kind in kinds]
        if not items:
            continue
        total = sum(1 for a in alerts if a.kind in kinds)
        head = (i18n.t(lang, heading, n=total) if heading != "section_calendar"
                else _calendar_heading(lang, total))
        text += ["", head] if text else [head]
        md += ["", f"**{head}**", ""]
        for a in items:
            line = _line(a, lang, tz, catalog)
            text.append(f"- {line}")
            md.append(f"- {md_escape(line)}")
    hidden = ordered(alerts)[cap:]
    if hidden:
        more = _more(hidden, lang)
        text += ["", more]
        md += ["", md_escape(more)]
    worst = max((severity_rank(a.severity) for a in alerts), default=0)
    return Message(
        title=i18n.t(lang, "alert_title", n=len(alerts)),
        text="\n".join(text),
        markdown="\n".join(md).strip() + "\n",
        kind="failure" if worst >= Severity.CRITICAL.rank else "warning",
    )


def _calendar_heading(lang: str, n: int) -> str:
    from agent.notify.duty_alerts import heading

    return heading(lang, n)
def _more(hidden: Sequence[Alert], lang: str) -> str:
    """How many were left out, and exactly which: finding ids (``posture findings show ID``) and assets."""
    sep = "、" if lang == "zh-TW" else ", "
    ids = list(dict.fromkeys(str(a.detail.get("finding_id")) for a in hidden
                             if a.kind in (AlertKind.NEW_FINDING, AlertKind.DEADLINE_MISSED)))
    assets = list(dict.fromkeys(a.asset for a in hidden
                                if a.kind in (AlertKind.CADENCE_OVERDUE, AlertKind.CADENCE_WARNING)))
    parts = []
    if ids:
        parts.append(i18n.t(lang, "more_findings", ids=sep.join(f"#{i}" for i in ids)))
    if assets:
        parts.append(i18n.t(lang, "more_cadence", assets=sep.join(assets)))
    return i18n.t(lang, "more", n=len(hidden), which=("；" if lang == "zh-TW" else "; ").join(parts))


def md_escape(text: str) -> str:
    """Keep keys and URLs literal in Markdown (underscores, asterisks, brackets)."""
    for ch in ("\\", "*", "_", "[", "]", "`", "<", ">"):
        text = text.replace(ch, "\\" + ch)
    return text
