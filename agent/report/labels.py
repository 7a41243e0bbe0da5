"""Every word a report shows, in Traditional Chinese (auditors read Chinese) and English."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agent.report.model import Lang

if TYPE_CHECKING:
    from agent.report.model import ReportData

_ZH: Mapping[str, str] = {
    "title": "對外資安弱點掃描佐證報告",
    "subtitle": "內部控制制度標準規範 CC-19000（十五）：資訊系統至少每半年弱點掃描一次並保存紀錄",
    "period": "報告期間",
    "declaration": "（半年度資安申報期間）",
    "as_of": "狀態基準時點",
    "generated": "產製時間",
    "timezone": "時區",
    "versions": "版本",
    "policy": "修補期限政策",
    "cadence_policy": "掃描週期",
    "cadence_rule": "每 {days} 天內至少一次完整掃描，到期前 {warn} 天預警",
    "days": "天",
    "no_deadline": "無期限",
    "reopened_keeps": "重新出現之弱點沿用原修補期限",
    "reopened_restarts": "重新出現之弱點自重新出現日起重新計算期限",
    "summary": "摘要",
    "asset": "資產",
    "kind": "類型",
    "url": "網址",
    "scans": "掃描次數",
    "complete_scans": "完整掃描",
    "grade": "TLS 評等",
    "open": "未修復",
    "overdue": "逾期",
    "cadence": "掃描週期狀態",
    "open_chart": "各嚴重度未修復弱點數量趨勢",
    "cert_chart": "憑證到期剩餘天數",
    "no_certificates": "本期間無憑證資料",
    "scan_list": "本期間掃描紀錄",
    "external_list": "本期間第三方掃描紀錄（計入掃描週期）",
    "performed": "執行時間",
    "performed_by": "執行者",
    "evidence": "佐證檔案",
    "note": "備註",
    "no_scans": "本期間無掃描紀錄",
    "scan_id": "掃描編號",
    "started": "開始時間",
    "status": "狀態",
    "trigger": "觸發",
    "scope": "範圍",
    "full_scope": "全部探測",
    "narrowed": "部分探測",
    "findings": "弱點數",
    "errors": "錯誤",
    "counts": "計入週期",
    "probes": "探測執行情形",
    "yes": "是",
    "no": "否",
    "finding_list": "弱點及修補紀錄",
    "no_findings": "本期間無弱點",
    "id": "編號",
    "check": "檢測項目",
    "severity": "嚴重度",
    "clause": "法規條款",
    "key": "識別",
    "first_seen": "首次發現",
    "deadline": "修補期限",
    "state": "修補狀態",
    "fixed_at": "修復日期",
    "fixed_late": "逾期修復",
    "until": "至",
    "config": "設定",
    "by": "核定人",
    "cadence_record": "掃描週期紀錄",
    "previous_complete": "期間前最後一次完整掃描",
    "last_complete": "最後一次完整掃描",
    "due": "下次完整掃描期限",
    "days_left": "剩餘天數",
    "gaps": "超過週期未完整掃描之期間",
    "no_gaps": "無",
    "ongoing": "（持續中）",
    "never": "從未",
    "never_scanned": "已設定但從未掃描",
    "added": "納管日期",
    "clauses": "引用法規條款",
    "label": "代號",
    "source": "條款",
    "requirement": "要求",
    "certificate": "憑證",
    "address": "位址",
    "not_after": "到期日",
    "expired": "已過期",
    "count": "數量",
    "total": "合計",
    "asset_count": "資產數",
    "period_no_scans": "本期間（{since} 至 {until}）無任何掃描紀錄：posture 未執行掃描，亦未登錄第三方掃描。",
    "no_assets": "本報告無任何資產：設定檔未列出資產，資料庫中亦無掃描紀錄。",
    "page_note": "本報告由 posture 依資料庫中之掃描紀錄產製，可列印為 PDF 作為申報佐證。",
}

_EN: Mapping[str, str] = {
    "title": "External vulnerability scan evidence report",
    "subtitle": "CC-19000 (15): scan every information system for vulnerabilities at least every half year "
                "and keep the records",
    "period": "Period",
    "declaration": " (a half-yearly declaration period)",
    "as_of": "States as of",
    "generated": "Generated",
    "timezone": "Time zone",
    "versions": "Versions",
    "policy": "Remediation deadlines",
    "cadence_policy": "Scan cadence",
    "cadence_rule": "a complete scan at least every {days} days; warned {warn} days before",
    "days": "days",
    "no_deadline": "no deadline",
    "reopened_keeps": "a reopened finding keeps its original deadline",
    "reopened_restarts": "a reopened finding's deadline restarts when it comes back",
    "summary": "Summary",
    "asset": "Asset",
    "kind": "Kind",
    "url": "URL",
    "scans": "Scans",
    "complete_scans": "Complete scans",
    "grade": "TLS grade",
    "open": "Open",
    "overdue": "Overdue",
    "cadence": "Cadence",
    "open_chart": "Open findings by severity over time",
    "cert_chart": "Days until certificate expiry",
    "no_certificates": "No certificate seen in this period",
    "scan_list": "Scans in the period",
    "external_list": "Third-party scans in the period (they count for the cadence)",
    "performed": "Performed",
    "performed_by": "By",
    "evidence": "Evidence file",
    "note": "Note",
    "no_scans": "No scan in this period",
    "scan_id": "Scan",
    "started": "Started",
    "status": "Status",
    "trigger": "Trigger",
    "scope": "Scope",
    "full_scope": "all probes",
    "narrowed": "narrowed",
    "findings": "Findings",
    "errors": "Errors",
    "counts": "Counts for cadence",
    "probes": "Probes",
    "yes": "yes",
    "no": "no",
    "finding_list": "Findings and remediation",
    "no_findings": "No finding in this period",
    "id": "ID",
    "check": "Check",
    "severity": "Severity",
    "clause": "Clause",
    "key": "Key",
    "first_seen": "First seen",
    "deadline": "Deadline",
    "state": "State",
    "fixed_at": "Fixed",
    "fixed_late": "fixed late",
    "until": "until",
    "config": "configuration",
    "by": "by",
    "cadence_record": "Cadence record",
    "previous_complete": "Last complete scan before the period",
    "last_complete": "Last complete scan",
    "due": "Next complete scan due",
    "days_left": "Days left",
    "gaps": "Stretches longer than the cadence without a complete scan",
    "no_gaps": "none",
    "ongoing": " (ongoing)",
    "never": "never",
    "never_scanned": "configured, never scanned",
    "added": "Added",
    "clauses": "Clauses referred to",
    "label": "Label",
    "source": "Clause",
    "requirement": "Requirement",
    "certificate": "Certificate",
    "address": "Address",
    "not_after": "Expires",
    "expired": "expired",
    "count": "Count",
    "total": "Total",
    "asset_count": "Assets",
    "period_no_scans": "No scan in this period ({since} to {until}): posture ran none and no third-party scan "
                       "was recorded.",
    "no_assets": "No asset in this report: the config lists none and the database holds no scan.",
    "page_note": "Generated by posture from the scan records in its database; print to PDF as declaration evidence.",
}

_VALUES_ZH: Mapping[str, str] = {
    # severities
    "critical": "嚴重", "high": "高", "medium": "中", "low": "低", "info": "資訊",
    # scan statuses
    "complete": "完整", "partial": "部分完成", "failed": "失敗", "interrupted": "中斷", "running": "進行中",
    # finding states
    "open": "未修復", "fixed": "已修復", "reopened": "重新出現", "accepted": "風險接受", "false_positive": "誤報",
    "resolved_by_config": "因設定變更而解除",
    # triggers
    "manual": "手動", "scheduled": "排程",
    # cadence states
    "ran": "已執行", "skipped": "略過", "partly skipped": "部分略過",
    "ok": "正常", "warning": "即將到期", "overdue": "逾期", "never_scanned": "從未完整掃描",
    # asset kinds
    "website": "網站", "trading": "交易系統", "api": "API",
}

_VALUES_EN: Mapping[str, str] = {"false_positive": "false positive", "never_scanned": "never scanned",
                                  "resolved_by_config": "resolved by configuration"}


def text(lang: Lang, key: str) -> str:
    return (_ZH if lang is Lang.ZH_TW else _EN)[key]


def value(lang: Lang, raw: str) -> str:
    """A stored enum value (severity, status, state, trigger, kind) in the report's language."""
    return (_VALUES_ZH if lang is Lang.ZH_TW else _VALUES_EN).get(raw, raw)


def no_scans_note(data: ReportData, lang: Lang) -> str | None:
    """The sentence a report carries when its period holds no scan at all (None when it holds some)."""
    if data.scan_count():
        return None
    zone = ZoneInfo(data.period.timezone)
    since = data.period.since.astimezone(zone).date()
    until = (data.as_of - timedelta(microseconds=1)).astimezone(zone).date()  # the last day covered so far
    note = text(lang, "period_no_scans").format(since=since.isoformat(), until=max(since, until).isoformat())
    return note if data.assets else f"{note} {text(lang, 'no_assets')}"
