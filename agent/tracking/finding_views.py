"""How a finding and its decisions read in the CLI (JSON and one-line text), shared by the
``findings``, ``findings show`` and ``history`` commands (which must not import each other)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vocab import FindingState


def finding_json(f: Any, catalog: Any, due: datetime | None = None, now: datetime | None = None,
                 config: dict[str, Any] | None = None, secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``secrets``: the query values of the asset's URL, masked where the evidence quotes it."""
    from agent.output import as_entered, iso
    from agent.targets import hide_values
    from schedules.remediation import is_overdue
    from state.lifecycle import NEEDS_FIX

    check = catalog[f.check_id]
    return {
        "id": f.id,
        "asset": f.asset,
        "check_id": f.check_id,
        "key": f.key,
        "severity": f.severity,
        "state": f.state.value,
        "title": check.title_en,
        "title_zh": check.title_zh,
        "first_seen": iso(f.first_seen),
        "last_seen": iso(f.last_seen),
        "fixed_at": iso(f.fixed_at),
        "reopened_count": f.reopened_count,
        "deadline": iso(due),
        "overdue": bool(now is not None and f.state in NEEDS_FIX and is_overdue(due, now)),
        "accepted": None if f.accepted_until is None else {
            "reason": f.accepted_reason, "by": f.accepted_by,
            "until": as_entered(f.accepted_until_entered, f.accepted_until), "ends_at": iso(f.accepted_until)},
        "resolved_by_config": config if f.state == FindingState.RESOLVED_BY_CONFIG else None,
        "false_positive": None if f.false_positive_reason is None else {
            "reason": f.false_positive_reason, "by": f.false_positive_by},
        "evidence": hide_values(f.evidence, secrets) if secrets else f.evidence,
        "references": list(check.references),
    }


def config_change(store: Any, finding_id: int) -> dict[str, Any] | None:
    """The last resolved-by-configuration event of a finding: when, and the hashes before and after."""
    from agent.output import iso
    from state.views import EventKind

    events = [e for e in store.events(finding_id) if e.kind is EventKind.RESOLVED_BY_CONFIG]
    if not events:
        return None
    e = events[-1]
    return {"at": iso(e.at), "config_hash_before": e.detail.get("config_hash_before"),
            "config_hash_after": e.detail.get("config_hash_after"),
            "condition_still_observed": e.detail.get("condition_still_observed"),
            "target_before": e.detail.get("target_before"), "target_after": e.detail.get("target_after")}


def decision_line(kind: str, detail: dict[str, Any]) -> str:
    """Who decided, why and until when, for a person's decision; '' for a scan's event."""
    parts = []
    if detail.get("by"):
        parts.append(f"by {detail['by']}")
    until = detail.get("until_entered") or detail.get("until")
    if kind in ("accepted", "acceptance_expired") and until:
        parts.append(f"until {until}")
    if detail.get("undid"):
        parts.append(f"undid {str(detail['undid']).replace('_', ' ')}")
    if detail.get("reason"):
        parts.append(f"reason: {detail['reason']}")
    if detail.get("text"):
        parts.append(str(detail["text"]))
    earlier = detail.get("replaces")
    if isinstance(earlier, dict):
        e_until = earlier.get("until_entered") or earlier.get("until")
        parts.append(f"replaces the acceptance by {earlier.get('by')} until {e_until}: {earlier.get('reason')}")
    from vocab import escape

    return escape("; ".join(parts))  # typed text stored before posture refused controls: still one line


def event_json(e: Any) -> dict[str, Any]:
    from agent.output import iso

    return {"at": iso(e.at), "event": e.kind.value, "scan_id": e.scan_id,
            "from": e.from_state.value if e.from_state else None, "to": e.to_state.value,
            "by": e.detail.get("by"), "reason": e.detail.get("reason"),
            "until": e.detail.get("until_entered") or e.detail.get("until"), "detail": e.detail}
