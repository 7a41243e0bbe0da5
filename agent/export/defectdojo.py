"""DefectDojo's Generic Findings Import (JSON): one DefectDojo finding per posture finding.

The format (DefectDojo docs, "Generic Findings Import"; parser dojo/tools/generic/json_parser.py):
a top-level object with ``findings``; each finding requires ``title``, ``severity`` and
``description`` and may carry only the parser's allowed keys (:data:`ALLOWED`). Severity is one
of ``Critical, High, Medium, Low, Info``. ``unique_id_from_tool`` lets a reimport recognise the
same finding (deduplication algorithm "unique_id_from_tool"), so it is derived from asset, check
and key, never from a database row id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from agent.export.gather import EXPORT_VERSION, Item, uid
from state.records import FindingState

# Source: DefectDojo, dojo/tools/generic/json_parser.py (GenericJSONParser._get_test_json).
REQUIRED = frozenset({"title", "severity", "description"})
ALLOWED = REQUIRED | frozenset({
    "date", "cwe", "cve", "epss_score", "epss_percentile", "cvssv3", "cvssv3_score", "cvssv4", "cvssv4_score",
    "mitigation", "impact", "steps_to_reproduce", "severity_justification", "references", "active", "verified",
    "false_p", "out_of_scope", "risk_accepted", "under_review", "is_mitigated", "thread_id", "mitigated",
    "numerical_severity", "param", "payload", "line", "file_path", "component_name", "component_version",
    "static_finding", "dynamic_finding", "scanner_confidence", "unique_id_from_tool", "vuln_id_from_tool",
    "sast_source_object", "sast_sink_object", "sast_source_line", "sast_source_file_path", "nb_occurences",
    "publish_date", "service", "planned_remediation_date", "planned_remediation_version", "effort_for_fixing",
    "tags", "kev_date", "known_exploited", "ransomware_used", "fix_available", "fix_version",
    # popped by the parser before the check, handled separately:
    "endpoints", "files", "vulnerability_ids", "cwes",
})
SEVERITY = {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low", "info": "Info"}
NUMERICAL = {"critical": "S0", "high": "S1", "medium": "S2", "low": "S3", "info": "S4"}


def document(items: Sequence[Item], posture_version: str, catalog_version: str, at: datetime,
             tz: str = "UTC") -> dict[str, Any]:
    """The whole import file: DefectDojo reads ``name``, ``type``, ``version`` and ``findings``.

    Dates (``date``, ``planned_remediation_date``) are days in ``tz``, the agent's time zone."""
    return {
        "name": "posture",
        "type": "posture external posture scan",
        "version": posture_version,
        "description": f"posture export {EXPORT_VERSION} (catalog {catalog_version}) at {at.isoformat()}",
        "dynamic_tool": True,
        "static_tool": False,
        "posture_export": {"format": "defectdojo-generic", "version": EXPORT_VERSION,
                           "posture_version": posture_version, "catalog_version": catalog_version,
                           "exported_at": at.isoformat()},
        "findings": [finding(i, ZoneInfo(tz)) for i in items],
    }


def finding(item: Item, zone: tzinfo = UTC) -> dict[str, Any]:
    f, check = item.finding, item.check
    state = f.state
    fixed = state == FindingState.FIXED
    out: dict[str, Any] = {
        "title": f"{check.title_en} ({f.asset})",
        "severity": SEVERITY[f.severity],
        "numerical_severity": NUMERICAL[f.severity],
        "description": _description(item),
        "mitigation": check.remediation_en or "See the posture catalog entry for this check.",
        "references": "\n".join(f"{c.label}: {c.source} ({c.en})" for c in item.clauses) or None,
        "unique_id_from_tool": uid(f),
        "vuln_id_from_tool": f.check_id,
        "date": f.first_seen.astimezone(zone).date().isoformat(),
        "active": state in (FindingState.OPEN, FindingState.REOPENED),
        # A person looked at it: accepted the risk or marked it a false positive.
        "verified": state in (FindingState.ACCEPTED, FindingState.FALSE_POSITIVE),
        "false_p": state == FindingState.FALSE_POSITIVE,
        "risk_accepted": state == FindingState.ACCEPTED,
        # The asset's configuration no longer asks for the check (allow-list, declared control).
        "out_of_scope": state == FindingState.RESOLVED_BY_CONFIG,
        "is_mitigated": fixed,
        "static_finding": False,
        "dynamic_finding": True,
        "param": f.key[:1000],
        "service": item.kind or None,
        "tags": ["posture", f.check_id.split(".")[0], *(c.label for c in item.clauses)],
        "endpoints": [item.url] if item.url else [],
    }
    if fixed and f.fixed_at is not None:
        out["mitigated"] = f.fixed_at.isoformat()
    if item.deadline is not None and out["active"]:
        out["planned_remediation_date"] = item.deadline.astimezone(zone).date().isoformat()
    return {k: v for k, v in out.items() if v is not None}


def _description(item: Item) -> str:
    f = item.finding
    lines = [
        f"**Check:** `{f.check_id}`",
        f"**Asset:** {f.asset}" + (f" ({item.url})" if item.url else ""),
        f"**Instance:** `{f.key}`",
        f"**State in posture:** {f.state.value} (finding #{f.id})",
        f"**First seen:** {f.first_seen.isoformat()}",
        f"**Last seen:** {f.last_seen.isoformat()}",
    ]
    if f.fixed_at is not None:
        lines.append(f"**Fixed at:** {f.fixed_at.isoformat()}")
    if f.reopened_count:
        lines.append(f"**Reopened:** {f.reopened_count} time(s)")
    if f.accepted_reason:
        lines.append(f"**Risk accepted by {f.accepted_by}:** {f.accepted_reason} (until "
                     f"{f.accepted_until_entered or (f.accepted_until.isoformat() if f.accepted_until else '-')})")
    if f.false_positive_reason:
        lines.append(f"**False positive ({f.false_positive_by}):** {f.false_positive_reason}")
    if item.deadline is not None:
        lines.append(f"**Remediation deadline:** {item.deadline.isoformat()}")
    evidence = json.dumps(f.evidence, ensure_ascii=False, indent=2, sort_keys=True, default=str)
    lines += ["", "**Evidence (as last seen):**", "", "```json", evidence, "```"]
    return "\n".join(lines)
