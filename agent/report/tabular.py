"""The report as JSON (structured, for scripts) and CSV (one row per finding per asset, for spreadsheets).

JSON times are ISO 8601 UTC (``Z``) like every other posture JSON; CSV times are
ISO 8601 in the agent's time zone, with the offset, since people read them.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent.output import iso
from agent.report.labels import no_scans_note, text, value
from agent.report.model import (
    AssetReport,
    CadenceRecord,
    CertificateEntry,
    FindingEntry,
    Lang,
    ReportData,
    ScanEntry,
    SeriesPoint,
)
from agent.targets import display_name, display_url, hide_values, query_values


def _series(points: tuple[SeriesPoint, ...]) -> list[dict[str, Any]]:
    return [{"at": iso(p.at), **dict(p.counts)} for p in points]


def _scan(s: ScanEntry) -> dict[str, Any]:
    return {
        "id": s.id, "started_at": iso(s.started_at), "finished_at": iso(s.finished_at), "status": s.status.value,
        "trigger": s.trigger.value, "full": s.full, "counts_for_cadence": s.counts_for_cadence, "grade": s.grade,
        "findings": s.findings, "error": s.error,
        "errors": [{"probe": e.probe, "kind": e.kind, "error": e.error} for e in s.errors],
        "probes": [{"probe": p, "outcome": o, "reason": r} for p, o, r in s.steps],
    }


def _finding(f: FindingEntry, lang: Lang, secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        "id": f.id, "check_id": f.check_id, "title": f.title(lang), "severity": f.severity, "key": f.key,
        "probe": f.probe,
        "clauses": [{"label": c.label, "source": c.source, "requirement": c.zh if lang is Lang.ZH_TW else c.en}
                    for c in f.clauses],
        "first_seen": iso(f.first_seen), "deadline": iso(f.deadline), "overdue": f.overdue,
        "state": f.state.value, "fixed_at": iso(f.fixed_at), "fixed_late": f.fixed_late,
        "reopened_count": f.reopened_count, "decision_reason": f.decision_reason, "decision_by": f.decision_by,
        "accepted_until": f.accepted_until_entered or iso(f.accepted_until),
        "accepted_ends_at": iso(f.accepted_until),
        "config_change": None if f.config_change is None else {
            "config_hash_before": f.config_change[0], "config_hash_after": f.config_change[1]},
        "remediation": f.remediation(lang),
        "evidence": None if f.evidence is None else {
            "scan_id": f.evidence.scan_id, "seen_at": iso(f.evidence.seen_at),
            "observed": hide_values(dict(f.evidence.fields), secrets)},  # the asset URL's query values masked
        "decision_history": [
            {"at": iso(h.at), "decision": h.kind, "by": h.by, "reason": h.reason,
             "until": h.until_entered or iso(h.until), "until_instant": iso(h.until),
             "config_change": None if h.config_change is None else {
                 "config_hash_before": h.config_change[0], "config_hash_after": h.config_change[1]}}
            for h in f.history
        ],
    }


def _cadence(r: CadenceRecord) -> dict[str, Any]:
    return {
        "cadence_days": r.cadence_days, "warn_days": r.warn_days, "state": r.state.value, "due": iso(r.due),
        "days_left": r.days_left, "complete_scans": [iso(t) for t in r.complete_scans],
        "previous_complete": iso(r.previous_complete), "last_complete": iso(r.last_complete),
        "gaps": [{"start": iso(g.start), "end": iso(g.end), "days": g.days, "ongoing": g.ongoing} for g in r.gaps],
    }


def _certificate(c: CertificateEntry) -> dict[str, Any]:
    return {"address": c.address, "subject": c.subject, "not_after": iso(c.not_after), "days_left": c.days_left,
            "scan_id": c.scan_id, "seen_at": iso(c.seen_at)}


def _asset(a: AssetReport, lang: Lang) -> dict[str, Any]:
    return {
        "name": display_name(a.name), "url": display_url(a.url), "kind": a.kind, "added_at": iso(a.added_at),
        "latest_grade": a.latest_grade,
        "open_by_severity": a.open_by_severity(), "overdue": a.overdue, "cadence": _cadence(a.cadence),
        "scans": [_scan(s) for s in a.scans],
        "external_scans": [
            {"id": x.id, "performed_at": x.performed_entered or iso(x.performed_at),
             "performed_instant": iso(x.performed_at), "performed_by": x.performed_by,
             "recorded_at": iso(x.recorded_at), "evidence_name": x.evidence_name,
             "evidence_sha256": x.evidence_sha256, "evidence_size": x.evidence_size, "note": x.note}
            for x in a.external_scans
        ],
        "findings": [_finding(f, lang, query_values(a.url)) for f in a.findings],
        "certificates": [_certificate(c) for c in a.certificates], "open_over_time": _series(a.series),
        "declared_controls": [{"control": c.key, "declared": c.text, "observed": c.observed, "scan_id": c.scan_id}
                              for c in a.declared],
    }


def report_json(data: ReportData, lang: Lang) -> dict[str, Any]:
    p, pol = data.period, data.policy
    return {
        "report": {
            "since": iso(p.since), "until": iso(p.until), "declaration_period": p.declaration,
            "as_of": iso(data.as_of), "generated_at": iso(data.generated_at), "timezone": p.timezone,
            "language": lang.value, "posture_version": data.posture_version,
            "catalog_version": data.catalog_version,
            "policy": {
                "deadline_days": dict(pol.deadline_days),
                "per_kind": {k: dict(v) for k, v in pol.per_kind.items()},
                "reopened_keeps_deadline": pol.reopened_keeps_deadline,
                "cadence_days": pol.cadence_days,
                "cadence_warn_days": pol.cadence_warn_days,
                "expiry_warning_days": pol.expiry_warning_days,
            },
        },
        "summary": {
            "assets": len(data.assets), "scans": sum(len(a.scans) for a in data.assets),
            "complete_scans": sum(len(a.cadence.complete_scans) for a in data.assets),
            "findings": sum(len(a.findings) for a in data.assets), "open_by_severity": data.open_by_severity(),
            "overdue": sum(a.overdue for a in data.assets),
            "note": no_scans_note(data, lang),  # a sentence when the period holds no scan, else null
        },
        "assets": [_asset(a, lang) for a in data.assets],
        "open_over_time": _series(data.series),
        "watch": [w.to_json() for w in data.watch],
        "clauses": [{"label": c.label, "source": c.source, "zh": c.zh, "en": c.en} for c in data.clauses()],
        **_duties(data),
    }


def _duties(data: ReportData) -> dict[str, Any]:
    """The compliance calendar, when the config has a [firm] (issue 19)."""
    from agent.tracking.duties import status_json

    return {"duties": [status_json(d) for d in data.duties]} if data.duties else {}


CSV_COLUMNS = (
    "asset", "url", "kind", "id", "check", "check_id", "severity", "clause", "source", "key", "first_seen",
    "deadline", "overdue", "state", "fixed_at", "fixed_late", "decision", "scans", "complete_scans", "grade",
    "last_complete", "cadence", "gaps", "remediation", "decision_history",
)
# Header words for the columns the report's labels do not already name.
_CSV_EXTRA = {
    Lang.ZH_TW: {"check_id": "檢測代碼", "source": "條款名稱", "decision": "決定說明", "gaps": "超週期期間",
                 "decision_history": "決定紀錄"},
    Lang.EN: {"check_id": "Check ID", "source": "Clause name", "decision": "Decision", "gaps": "Gaps",
              "fixed_late": "Fixed late", "decision_history": "Decision history"},
}


def _header(lang: Lang, column: str) -> str:
    return _CSV_EXTRA[lang].get(column) or text(lang, column)


def report_csv(data: ReportData, lang: Lang) -> str:
    from agent.report.details import decision_words

    zone = ZoneInfo(data.period.timezone)

    def when(at: datetime | None) -> str:
        return at.astimezone(zone).isoformat(timespec="seconds") if at else ""

    def yes(flag: bool) -> str:
        return text(lang, "yes" if flag else "no")

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180, as spreadsheets expect
    writer.writerow([_header(lang, c) for c in CSV_COLUMNS])
    for a in data.assets:
        r = a.cadence
        gaps = "; ".join(f"{when(g.start)}/{when(g.end)} ({g.days})" for g in r.gaps)
        asset_cells = [len(a.scans), len(r.complete_scans), a.latest_grade or "", when(r.last_complete),
                       value(lang, r.state.value), gaps]
        head = [display_name(a.name), display_url(a.url), value(lang, a.kind)]
        if not a.findings:  # the asset's cadence record still belongs in the evidence
            writer.writerow([*head, *([""] * 14), *asset_cells, "", ""])
        for f in a.findings:
            until = f.accepted_until_entered or when(f.accepted_until)
            change = (f"config {f.config_change[0] or '?'} -> {f.config_change[1] or '?'}"
                      if f.config_change else None)
            decision = " ".join(x for x in (f.decision_reason, f.decision_by, until, change) if x)
            writer.writerow([
                *head, f.id, f.title(lang), f.check_id, value(lang, f.severity),
                " ".join(c.label for c in f.clauses), "；".join(c.source for c in f.clauses), f.key,
                when(f.first_seen), when(f.deadline), yes(f.overdue), value(lang, f.state.value), when(f.fixed_at),
                yes(f.fixed_late), decision, *asset_cells, f.remediation(lang), "\n".join(decision_words(f.history)),
            ])
    return out.getvalue()
