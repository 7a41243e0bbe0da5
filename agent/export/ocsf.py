"""OCSF Detection Finding (class_uid 2004, category_uid 2 Findings), one JSON object per line.

Facts from the OCSF schema (github.com/ocsf/ocsf-schema: events/base_event.json,
events/findings/finding.json, events/findings/detection_finding.json, objects/finding_info.json,
objects/metadata.json, objects/compliance.json): ``type_uid = class_uid * 100 + activity_id``;
activity 1 Create, 2 Update, 3 Close; ``status_id`` 1 New, 2 In Progress, 3 Suppressed,
4 Resolved, 5 Archived; ``severity_id`` 1 Informational .. 5 Critical; times are milliseconds
since the epoch. The clauses a finding answers to go in ``compliance`` (``standards`` is that
object's required attribute; ``requirements`` the clause labels; ``control`` the check id).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from agent.export.gather import EXPORT_VERSION, Item, uid
from state.records import FindingState

SCHEMA_VERSION = "1.4.0"
CLASS_UID, CATEGORY_UID = 2004, 2
ACTIVITY = {1: "Create", 2: "Update", 3: "Close"}
SEVERITY = {"info": (1, "Informational"), "low": (2, "Low"), "medium": (3, "Medium"), "high": (4, "High"),
            "critical": (5, "Critical")}
STATUS: dict[FindingState, tuple[int, str]] = {
    FindingState.OPEN: (1, "New"),
    FindingState.REOPENED: (1, "New"),
    FindingState.ACCEPTED: (3, "Suppressed"),
    FindingState.FALSE_POSITIVE: (3, "Suppressed"),
    FindingState.FIXED: (4, "Resolved"),
    FindingState.RESOLVED_BY_CONFIG: (5, "Archived"),
}
CLOSED = (FindingState.FIXED, FindingState.FALSE_POSITIVE, FindingState.RESOLVED_BY_CONFIG)


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def lines(items: Sequence[Item], posture_version: str, catalog_version: str) -> list[str]:
    return [json.dumps(event(i, posture_version, catalog_version), ensure_ascii=False, sort_keys=True)
            for i in items]


def event(item: Item, posture_version: str, catalog_version: str) -> dict[str, Any]:
    f, check = item.finding, item.check
    activity = 3 if f.state in CLOSED else 2 if f.reopened_count or f.state == FindingState.ACCEPTED else 1
    severity_id, severity = SEVERITY[f.severity]
    status_id, status = STATUS[f.state]
    changed = max(t for t in (f.last_seen, f.fixed_at) if t is not None)
    needs_fix = f.state in (FindingState.OPEN, FindingState.REOPENED)
    out: dict[str, Any] = {
        "activity_id": activity,
        "activity_name": ACTIVITY[activity],
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + activity,
        "type_name": f"Detection Finding: {ACTIVITY[activity]}",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "time": ms(changed),
        "start_time": ms(f.first_seen),
        "end_time": ms(f.last_seen),
        "message": f"{check.title_en} on {f.asset}",
        "is_alert": needs_fix,
        "metadata": {
            "version": SCHEMA_VERSION,
            "product": {"name": "posture", "vendor_name": "posture", "version": posture_version},
            "log_name": "posture-export",
            "log_version": EXPORT_VERSION,
            "uid": f"{uid(f)}-{ms(changed)}",
            "labels": [f"catalog:{catalog_version}"],
        },
        "finding_info": {
            "uid": uid(f),
            "title": check.title_en,
            "desc": f"{check.title_en} ({f.check_id}) on {f.asset}, instance {f.key}",
            "types": [f.check_id],
            "analytic": {"uid": f.check_id, "name": f.check_id, "type_id": 1, "type": "Rule"},
            "created_time": ms(f.first_seen),
            "first_seen_time": ms(f.first_seen),
            "last_seen_time": ms(f.last_seen),
            "modified_time": ms(changed),
            "product_uid": str(f.id),
        },
        "compliance": {
            "standards": sorted({c.source.split(" ")[0] for c in item.clauses}) or ["posture catalog"],
            "requirements": [c.label for c in item.clauses],
            "control": f.check_id,
            "status_id": 3 if needs_fix else 1,
            "status": "Fail" if needs_fix else "Pass",
            "status_detail": "; ".join(f"{c.label}: {c.source}: {c.en}" for c in item.clauses) or None,
        },
        "resources": [{"name": f.asset, "type": item.kind or "asset", "uid": item.url or f.asset}],
        "remediation": {"desc": check.remediation_en or "See the posture catalog entry for this check."},
        "evidences": [{"data": {"key": f.key, "evidence": f.evidence}}],
    }
    if f.state == FindingState.ACCEPTED and f.accepted_reason:
        out["comment"] = f"risk accepted by {f.accepted_by}: {f.accepted_reason}"
    if f.state == FindingState.FALSE_POSITIVE and f.false_positive_reason:
        out["comment"] = f"false positive ({f.false_positive_by}): {f.false_positive_reason}"
    out["compliance"] = {k: v for k, v in out["compliance"].items() if v is not None}
    return out
