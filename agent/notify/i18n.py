"""Words of the messages posture sends, in Traditional Chinese (the default) and English.

Check titles come from the catalog (title_zh / title_en); these are the sentences around them.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LANGUAGES = ("zh-TW", "en")

_SEVERITY = {
    "zh-TW": {"critical": "嚴重", "high": "高", "medium": "中", "low": "低", "info": "資訊"},
    "en": {"critical": "critical", "high": "high", "medium": "medium", "low": "low", "info": "info"},
}

_TEXT: dict[str, dict[str, str]] = {
    "zh-TW": {
        "alert_title": "posture 警示：{n} 項需要處理",
        "section_new": "新發現弱點（{n}）",
        "section_deadline": "逾期未修補（{n}）",
        "section_cadence": "弱點掃描週期（{n}）",
        "new_line": "[{sev}] {asset}：{title}（{check}）{key} #{id}",
        "reopened": "，再次出現",
        "deadline_line": "[{sev}] {asset}：{title}（{check}）{key} #{id}，修補期限 {due}，已逾期 {days} 天",
        "cadence_overdue_line": "{asset}：{title}，期限 {due}，已逾期 {days} 天（上次完整掃描：{last}）",
        "cadence_warning_line": "{asset}：每半年弱點掃描將於 {due} 到期，尚餘 {days} 天（上次完整掃描：{last}）",
        "never": "從未",
        "more": "…另有 {n} 項未列出（請執行 posture findings --overdue 或查看每週摘要）",
        "digest_title": "posture 每週摘要（{start} 至 {end}）",
        "digest_intro": "期間 {start} 至 {end}（{tz}），共 {n} 項資產。",
        "digest_totals": "合計：本週新增 {new}、本週修復 {fixed}、未修補 {open}、逾期 {overdue}、14 天內到期 {soon}",
        "digest_new": "本週新增",
        "digest_fixed": "本週修復",
        "digest_config": "本週因設定變更解除（非修復）",
        "digest_accepted": "風險接受中",
        "config_line": "[{sev}] {title}（{check}）{key} #{id}，設定 {before} → {after}",
        "accepted_line": "[{sev}] {title}（{check}）{key} #{id}，接受至 {until}",
        "digest_open": "未修補（依嚴重度）",
        "digest_overdue": "已逾期",
        "digest_soon": "14 天內到期",
        "digest_certs": "即將到期的憑證",
        "digest_cadence": "掃描週期",
        "digest_none": "無",
        "cert_line": "{address} {subject}：{not_after} 到期（剩 {days} 天）",
        "cert_expired": "{address} {subject}：已於 {not_after} 過期",
        "due_line": "[{sev}] {title}（{check}）{key} #{id}，期限 {due}",
        "finding_line": "[{sev}] {title}（{check}）{key} #{id}",
        "cadence_ok": "正常：上次完整掃描 {last}，下次期限 {due}（尚餘 {days} 天）",
        "cadence_never": "從未完整掃描：自加入起算，期限 {due}（尚餘 {days} 天）",
        "no_room": "；靜默時段使期限前無法完成完整掃描（{why}）",
        "cadence_warning": "即將到期：期限 {due}（尚餘 {days} 天），上次完整掃描 {last}",
        "cadence_overdue": "已逾期 {days} 天：期限 {due}，上次完整掃描 {last}",
        "test_title": "posture 測試通知",
        "test_body": "這是 posture 的測試訊息（{at}）：此通道可以收到警示與每週摘要。",
    },
    "en": {
        "alert_title": "posture alert: {n} item(s) need attention",
        "section_new": "New findings ({n})",
        "section_deadline": "Remediation deadlines missed ({n})",
        "section_cadence": "Scan cadence ({n})",
        "new_line": "[{sev}] {asset}: {title} ({check}) {key} #{id}",
        "reopened": ", back again",
        "deadline_line": "[{sev}] {asset}: {title} ({check}) {key} #{id}, due {due}, {days} day(s) overdue",
        "cadence_overdue_line": "{asset}: {title}, due {due}, {days} day(s) overdue (last complete scan: {last})",
        "cadence_warning_line": "{asset}: the half-yearly scan is due {due}, {days} day(s) left "
                                "(last complete scan: {last})",
        "never": "never",
        "more": "…and {n} more (run posture findings --overdue or see the weekly digest)",
        "digest_title": "posture weekly digest ({start} to {end})",
        "digest_intro": "From {start} to {end} ({tz}), {n} asset(s).",
        "digest_totals": "Totals: {new} new this week, {fixed} fixed this week, {open} open, {overdue} overdue, "
                         "{soon} due in the next 14 days",
        "digest_new": "New this week",
        "digest_fixed": "Fixed this week",
        "digest_config": "Resolved by configuration this week (not fixed)",
        "digest_accepted": "Risk accepted",
        "config_line": "[{sev}] {title} ({check}) {key} #{id}, configuration {before} -> {after}",
        "accepted_line": "[{sev}] {title} ({check}) {key} #{id}, accepted until {until}",
        "digest_open": "Open by severity",
        "digest_overdue": "Overdue",
        "digest_soon": "Due in the next 14 days",
        "digest_certs": "Certificates expiring",
        "digest_cadence": "Scan cadence",
        "digest_none": "none",
        "cert_line": "{address} {subject}: expires {not_after} ({days} day(s) left)",
        "cert_expired": "{address} {subject}: expired {not_after}",
        "due_line": "[{sev}] {title} ({check}) {key} #{id}, due {due}",
        "finding_line": "[{sev}] {title} ({check}) {key} #{id}",
        "cadence_ok": "OK: last complete scan {last}, next due {due} ({days} day(s) left)",
        "cadence_never": "Never scanned completely: counted from when it was added, due {due} ({days} day(s) left)",
        "no_room": "; quiet windows leave no room for a complete scan before then ({why})",
        "cadence_warning": "Due soon: {due} ({days} day(s) left), last complete scan {last}",
        "cadence_overdue": "Overdue by {days} day(s): due {due}, last complete scan {last}",
        "test_title": "posture test notification",
        "test_body": "This is a test message from posture ({at}): this channel receives alerts and the weekly digest.",
    },
}


def lang_of(language: str) -> str:
    return "zh-TW" if language.lower().startswith("zh") else "en"


def t(language: str, message: str, /, **values: object) -> str:
    return _TEXT[lang_of(language)][message].format(**values)


def severity(language: str, sev: str) -> str:
    return _SEVERITY[lang_of(language)].get(sev, sev)


def day(value: datetime | None, tz: str, language: str) -> str:
    """A date in the agent's time zone (what people in the firm read)."""
    if value is None:
        return t(language, "never")
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d")


def moment(value: datetime, tz: str) -> str:
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
