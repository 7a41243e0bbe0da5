"""Alerts of the compliance calendar: a duty due soon or overdue, the declaration pack ready,
the reminder before the declaration window closes.

Condition keys (the delivery log sends each once per channel):
``duty:KIND:STATE:DUE`` (a new record moves DUE, so the next slip is news again; a duty
never recorded is ``duty:KIND:never``, the scan duty held back by an asset never scanned
``duty:scan:never:ASSET``; a declaration never filed is overdue once a window closed unfiled,
``duty:declaration:overdue:DUE``), ``pack:2026H1:ready``, ``pack:2026H1:remind``,
``pack:2026H1:failed`` (while the pack cannot be built).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from agent.notify.alert_types import Alert, AlertKind
from schedules.duties import DutyKind, DutyState, DutyStatus, HalfYear

DUTY_CHECK = "duty.overdue"
DUE_SOON_CHECK = "duty.due_soon"
PACK_CHECK = "declaration.pack"
FIRM = "(firm)"  # the asset column of a firm-wide alert

_NAMES = {
    "zh-TW": {DutyKind.SCAN: "弱點掃描", DutyKind.PENTEST: "滲透測試", DutyKind.DRILL: "營運持續演練",
              DutyKind.HEALTH_CHECK: "資安健診", DutyKind.DDOS_DRILL: "DDoS 應變演練",
              DutyKind.DECLARATION: "資安申報"},
    "en": {DutyKind.SCAN: "vulnerability scan", DutyKind.PENTEST: "penetration test",
           DutyKind.DRILL: "business-continuity drill", DutyKind.HEALTH_CHECK: "security health check",
           DutyKind.DDOS_DRILL: "DDoS response drill", DutyKind.DECLARATION: "security declaration"},
}

_TEXT = {
    "zh-TW": {
        "heading": "法遵行事曆（{n}）",
        "calendar": "法遵行事曆",
        "state_line": "{name}（{kind}）：{state}；上次 {last}；下次期限 {due}",
        "states": "ok=正常,due_soon=即將到期,overdue=已逾期,never=尚無紀錄,not_required=非必要",
        "overdue": "{name}（{kind}）已逾期 {days} 天：期限 {due}，上次 {last}",
        "never": "{name}（{kind}）尚無執行紀錄（posture duty record {kind}）",
        "due_soon": "{name}（{kind}）將於 {due} 到期，尚餘 {days} 天，上次 {last}",
        "never_asset": "{name}（{kind}）尚未涵蓋所有資產：{asset} 從未完成掃描（posture scan 或 posture record-scan）",
        "held": "（最久未掃描的資產：{asset}）",
        "ready": "{period} 資安申報佐證包已產生：{where}；申報期限 {last_day}",
        "failed": "{period} 資安申報佐證包無法產生（{error}）；將於下次評估時重試，申報期限 {last_day}",
        "remind": "{period} 資安申報尚未登錄完成，申報期限 {last_day}（佐證包：{where}；完成後請執行 "
                  "posture duty record declaration）",
    },
    "en": {
        "heading": "Compliance calendar ({n})",
        "calendar": "Compliance calendar",
        "state_line": "{name} ({kind}): {state}; last done {last}; next due {due}",
        "states": "ok=ok,due_soon=due soon,overdue=overdue,never=never recorded,not_required=not required",
        "overdue": "{name} ({kind}) is {days} day(s) overdue: due {due}, last done {last}",
        "never": "{name} ({kind}) has never been recorded (posture duty record {kind})",
        "due_soon": "{name} ({kind}) is due {due}, {days} day(s) left, last done {last}",
        "never_asset": "{name} ({kind}) does not cover every asset: {asset} has never had a complete or "
                       "third-party scan (posture scan, or posture record-scan)",
        "held": " (held back by asset {asset})",
        "ready": "The {period} declaration pack is ready: {where}; the declaration window closes {last_day}",
        "failed": "The {period} declaration pack could not be built ({error}); retried every cycle; "
                  "the window closes {last_day}",
        "remind": "The {period} declaration is not recorded as filed; the window closes {last_day} "
                  "(pack: {where}; once filed run posture duty record declaration)",
    },
}


def heading(lang: str, n: int) -> str:
    return _TEXT.get(lang, _TEXT["en"])["heading"].format(n=n)


def calendar_heading(lang: str, n: int) -> str:
    return _TEXT.get(lang, _TEXT["en"])["calendar"]


def calendar_lines(duties: Iterable[DutyStatus], lang: str) -> list[str]:
    """One line per duty for the digest: its state, last done, next due."""
    text = _TEXT.get(lang, _TEXT["en"])
    states = dict(pair.split("=") for pair in text["states"].split(","))
    never = "從未" if lang == "zh-TW" else "never"
    return [text["state_line"].format(name=_NAMES.get(lang, _NAMES["en"])[s.kind], kind=s.kind.value,
                                      state=states[s.state.value],
                                      last=s.last_done.isoformat() if s.last_done else never,
                                      due=s.next_due.isoformat() if s.next_due else "-")
            + ("" if s.coverage is None or s.coverage.held_by is None
               else text["held"].format(asset=s.coverage.held_by))
            for s in duties]


def line(a: Alert, lang: str) -> str:
    text = _TEXT.get(lang, _TEXT["en"])
    d = a.detail
    if a.kind in (AlertKind.PACK_READY, AlertKind.DECLARATION_REMINDER, AlertKind.PACK_FAILED):
        key = {AlertKind.PACK_READY: "ready", AlertKind.PACK_FAILED: "failed"}.get(a.kind, "remind")
        return text[key].format(period=d.get("period"), where=d.get("where"), last_day=d.get("last_day"),
                                error=d.get("error"))
    kind = DutyKind(str(d.get("duty")))
    name = _NAMES.get(lang, _NAMES["en"])[kind]
    held = d.get("held_back_by")
    if d.get("never"):
        key = "never" if held is None else "never_asset"
        return text[key].format(name=name, kind=kind.value, asset=held)
    last = d.get("last_done") or ("從未" if lang == "zh-TW" else "never")
    days = int(d.get("days_left") or 0)
    tail = "" if held is None else text["held"].format(asset=held)
    if a.kind is AlertKind.DUTY_OVERDUE:
        return text["overdue"].format(name=name, kind=kind.value, days=-days, due=d.get("due"), last=last) + tail
    return text["due_soon"].format(name=name, kind=kind.value, days=days, due=d.get("due"), last=last) + tail


def duty_alert(s: DutyStatus) -> Alert | None:
    """The alert a duty's state calls for, or None (ok, not required; the declaration's own
    due-soon, and its never-filed state while the window is open, are the pack's notice and
    reminder; once the window has closed unfiled it is overdue)."""
    held = None if s.coverage is None else s.coverage.held_by
    detail: dict[str, object] = {"duty": s.kind.value, "months": s.months,
                                 "last_done": None if s.last_done is None else s.last_done.isoformat(),
                                 "due": None if s.next_due is None else s.next_due.isoformat(),
                                 "days_left": s.days_left}
    if held is not None:
        detail["held_back_by"] = held
    if s.state is DutyState.NEVER:
        if s.kind is DutyKind.DECLARATION:
            return None  # the window is open: the pack's notice and reminder speak for it
        condition = f"duty:{s.kind.value}:never" + ("" if held is None else f":{held}")
        return Alert(AlertKind.DUTY_OVERDUE, condition, FIRM, "high", DUTY_CHECK, {**detail, "never": True})
    if s.state is DutyState.OVERDUE:
        return Alert(AlertKind.DUTY_OVERDUE, f"duty:{s.kind.value}:overdue:{s.next_due}", FIRM, "high",
                     DUTY_CHECK, detail)
    if s.state is DutyState.DUE_SOON and s.kind is not DutyKind.DECLARATION:
        return Alert(AlertKind.DUTY_DUE_SOON, f"duty:{s.kind.value}:due_soon:{s.next_due}", FIRM, "medium",
                     DUE_SOON_CHECK, detail)
    return None


def pack_ready(half: HalfYear, where: str) -> Alert:
    return Alert(AlertKind.PACK_READY, f"pack:{half.label}:ready", FIRM, "info", PACK_CHECK,
                 {"period": half.label, "where": where, "last_day": half.window_last.isoformat()})


def pack_failed(half: HalfYear, where: str, error: str) -> Alert:
    return Alert(AlertKind.PACK_FAILED, f"pack:{half.label}:failed", FIRM, "high", PACK_CHECK,
                 {"period": half.label, "where": where, "last_day": half.window_last.isoformat(), "error": error})


def pack_reminder(half: HalfYear, where: str, today: date) -> Alert:
    return Alert(AlertKind.DECLARATION_REMINDER, f"pack:{half.label}:remind", FIRM, "medium", PACK_CHECK,
                 {"period": half.label, "where": where, "last_day": half.window_last.isoformat(),
                  "days_left": (half.window_last - today).days})
