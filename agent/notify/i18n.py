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
        "more": "…另有 {n} 項未列出：{which}",
        "more_findings": "弱點 {ids}（posture findings show ID 逐項查看）",
        "more_cadence": "資產 {assets} 的掃描週期（posture digest --section cadence --asset 資產名稱）",
        "deadline_today_line": "[{sev}] {asset}：{title}（{check}）{key} #{id}，修補期限 {due}，今日已逾期",
        "cadence_overdue_today_line": "{asset}：{title}，期限 {due}，今日已逾期（上次完整掃描：{last}）",
        "digest_title": "posture 每週摘要（{start} 至 {end}）",
        "digest_title_catch_up": "posture 每週摘要（{start} 至 {end}；補寄：涵蓋上次寄出的摘要之後的 {n} 期）",
        "digest_intro": "期間 {start} 至 {end}（{tz}），共 {n} 項資產：{listed} 項有事項列於下方，"
                        "其餘 {quiet} 項本週無變動、無待辦。",
        "summary_open": "未修補 {open} 項（{counts}）；已逾期 {overdue}；14 天內到期 {soon}；風險接受中 {accepted}；"
                        "即將到期的憑證 {certs}",
        "summary_week": "本週變動：新增 {new}、修復 {fixed}、因設定變更解除 {config}",
        "summary_decisions": "本週決定：{decisions}",
        "summary_scans": "本週掃描異常：{scans}",
        "summary_failed": "失敗或無法連線 {n} 次（{names}）",
        "summary_partial": "不完整 {n} 次（{names}）",
        "summary_cadence": "掃描週期風險：{risk}",
        "cadence_state_overdue": "已逾期",
        "cadence_state_warning": "即將到期",
        "cadence_state_never": "從未完整掃描",
        "cadence_state_no_room": "靜默時段使期限前無法完整掃描 {n}（{names}）",
        "names_more": "…另有 {n} 項，完整清單：{command}",
        "more_items": "…另有 {n} 項未列出，完整清單：{command}",
        "digest_quiet": "本週無變動、無待辦",
        "digest_decisions": "本週決定",
        "digest_scans": "本週掃描異常",
        "decision_accepted": "風險接受",
        "decision_false_positive": "判定誤報",
        "decision_reopened": "重新開啟",
        "decision_resolved_by_config": "因設定變更解除",
        "decision_acceptance_expired": "風險接受到期",
        "decision_by": "決定者 {by}",
        "decision_reason": "理由：{reason}",
        "decision_until": "接受至 {until}",
        "scan_failed": "失敗或無法連線",
        "scan_interrupted": "中斷",
        "scan_partial": "不完整",
        "scan_line": "[{status}] {at} 掃描 #{id}",
        "cadence_due_today": "今日到期：期限 {due}，上次完整掃描 {last}",
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
        "test_body": "這是 posture 的測試訊息（{at}）。此通道會收到：{events}。",
        "test_none": "無（此通道未設定任何事件）",
        "event_alert": "警示（{which}）",
        "event_alert_all": "所有新弱點、逾期與掃描週期",
        "event_alert_min": "{sev}以上的新弱點，以及所有逾期與掃描週期",
        "event_digest": "每週摘要",
        "digest_when": "（排程 {schedule}）",
        "digest_off": "（[schedule] digest = \"off\"：僅在執行 posture digest --send 時）",
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
        "more": "…and {n} more not listed: {which}",
        "more_findings": "findings {ids} (posture findings show ID for each)",
        "more_cadence": "the scan cadence of {assets} (posture digest --section cadence --asset NAME)",
        "deadline_today_line": "[{sev}] {asset}: {title} ({check}) {key} #{id}, due {due}, overdue since today",
        "cadence_overdue_today_line": "{asset}: {title}, due {due}, overdue since today (last complete scan: {last})",
        "digest_title": "posture weekly digest ({start} to {end})",
        "digest_title_catch_up": "posture weekly digest ({start} to {end}; catching up: {n} periods since "
                                 "the last digest sent)",
        "digest_intro": "From {start} to {end} ({tz}), {n} asset(s): {listed} with something to report below, "
                        "the other {quiet} with no change and nothing due.",
        "summary_open": "Open: {open} ({counts}); overdue {overdue}; due in the next 14 days {soon}; "
                        "risk accepted {accepted}; certificates expiring {certs}",
        "summary_week": "This week: {new} new, {fixed} fixed, {config} resolved by configuration",
        "summary_decisions": "Decisions this week: {decisions}",
        "summary_scans": "Scans with problems this week: {scans}",
        "summary_failed": "{n} failed or unreachable ({names})",
        "summary_partial": "{n} incomplete ({names})",
        "summary_cadence": "Scan cadence at risk: {risk}",
        "cadence_state_overdue": "overdue",
        "cadence_state_warning": "due soon",
        "cadence_state_never": "never scanned completely",
        "cadence_state_no_room": "quiet windows leave no room before the deadline {n} ({names})",
        "names_more": " …and {n} more, all of them: {command}",
        "more_items": "…and {n} more not listed, all of them: {command}",
        "digest_quiet": "No change and nothing due this week",
        "digest_decisions": "Decisions this week",
        "digest_scans": "Scans with problems this week",
        "decision_accepted": "risk accepted",
        "decision_false_positive": "marked false positive",
        "decision_reopened": "reopened",
        "decision_resolved_by_config": "resolved by configuration",
        "decision_acceptance_expired": "acceptance expired",
        "decision_by": "by {by}",
        "decision_reason": "reason: {reason}",
        "decision_until": "until {until}",
        "scan_failed": "failed or unreachable",
        "scan_interrupted": "interrupted",
        "scan_partial": "incomplete",
        "scan_line": "[{status}] {at} scan #{id}",
        "cadence_due_today": "Due today: {due}, last complete scan {last}",
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
        "test_body": "This is a test message from posture ({at}). This channel receives: {events}.",
        "test_none": "nothing (no events are set for this channel)",
        "event_alert": "alerts ({which})",
        "event_alert_all": "every new finding, missed deadlines and scan cadence",
        "event_alert_min": "new findings of {sev} severity or above, every missed deadline and scan cadence",
        "event_digest": "the weekly digest",
        "digest_when": "(schedule {schedule})",
        "digest_off": "(only on posture digest --send: [schedule] digest is \"off\")",
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
