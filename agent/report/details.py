"""A finding's detail for the report: its decision history, its evidence, and declared controls.

Pure functions over stored events and observations; no storage here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agent.report.model import DecisionEntry, DeclaredControl, Evidence
from state.views import EventInfo, EventKind

# Declared-control keys (asset config ``declared``) and the edge observation each is compared with.
_OBSERVED_BY = {"waf": "waf", "ddos": "cdn", "cdn": "cdn"}
MAX_FIELDS = 40  # evidence lines per finding: a probe's record, not a dump
MAX_VALUE = 600  # characters of one evidence value (an excerpt is already short)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def decision_history(events: Sequence[EventInfo], as_of: datetime) -> tuple[DecisionEntry, ...]:
    """Every decision on the finding up to ``as_of``, oldest first.

    People's decisions (accepted, false positive, notes, a reopening with no scan behind it),
    acceptances that ran out, and configuration changes that resolved it. Scans opening,
    fixing or reopening a finding are its lifecycle, shown by the state and the scan list.
    """
    out = []
    for e in events:
        if e.at > as_of:
            break
        d = e.detail
        by = _text(d.get("by"))
        if e.kind in (EventKind.ACCEPTED, EventKind.FALSE_POSITIVE):
            accepted = e.kind is EventKind.ACCEPTED
            out.append(DecisionEntry(e.at, e.kind.value, by, _text(d.get("reason")),
                                     _when(d.get("until")) if accepted else None,
                                     _text(d.get("until_entered")) if accepted else None))
        elif e.kind is EventKind.NOTE:
            out.append(DecisionEntry(e.at, e.kind.value, by, _text(d.get("text"))))
        elif e.kind is EventKind.ACCEPTANCE_EXPIRED or (e.kind is EventKind.REOPENED and e.scan_id is None):
            out.append(DecisionEntry(e.at, e.kind.value, by, _text(d.get("reason"))))
        elif e.kind is EventKind.RESOLVED_BY_CONFIG:
            out.append(DecisionEntry(e.at, e.kind.value, by, _text(d.get("reason")),
                                     config_change=(_text(d.get("config_hash_before")),
                                                    _text(d.get("config_hash_after")))))
    return tuple(out)


def _flatten(value: Any, prefix: str, out: list[tuple[str, str]]) -> None:
    if len(out) >= MAX_FIELDS:
        return
    if isinstance(value, Mapping):
        for k in value:
            _flatten(value[k], f"{prefix}.{k}" if prefix else str(k), out)
        return
    if isinstance(value, list) and value and all(isinstance(x, Mapping) for x in value):
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
        return
    if value is None or value == [] or value == {}:
        return
    if isinstance(value, list):
        shown = ", ".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in value)
    elif isinstance(value, str):
        shown = value
    else:
        shown = json.dumps(value, ensure_ascii=False)
    if len(shown) > MAX_VALUE:
        shown = shown[:MAX_VALUE] + f"… ({len(shown)} characters)"
    out.append((prefix or "value", shown))


def evidence_lines(evidence: Evidence | None) -> list[tuple[str, str]]:
    """(field, value) lines of a finding's evidence: nested fields by dotted path, long values cut."""
    out: list[tuple[str, str]] = []
    if evidence is not None:
        _flatten(dict(evidence.fields), "", out)
    return out


def evidence_of(scan_id: int, seen_at: datetime, fields: Mapping[str, Any]) -> Evidence:
    return Evidence(scan_id, seen_at, dict(fields))


def _observed(part: object) -> str | None:
    if not isinstance(part, Mapping):
        return None
    vendors = [v for v in part.get("vendors") or () if isinstance(v, str)]
    hints = [h for h in part.get("hints") or () if isinstance(h, str)]
    note = part.get("note")
    bits = []
    if vendors:
        bits.append("vendors: " + ", ".join(vendors))
    if hints:
        bits.append("hints: " + ", ".join(hints))
    if isinstance(note, str) and note:
        bits.append(note)
    return "; ".join(bits) or "none seen"


def declared_controls(declared: Mapping[str, str], edge: Mapping[str, Any] | None,
                      scan_id: int | None) -> tuple[DeclaredControl, ...]:
    """Each declared control with what the asset's last edge run in the period observed for it."""
    out = []
    for key, text in sorted(declared.items()):
        if not text or not text.strip():
            continue
        part = edge.get(_OBSERVED_BY.get(key, key)) if edge is not None else None
        observed = _observed(part) if edge is not None else None
        out.append(DeclaredControl(key, text.strip(), observed, scan_id if edge is not None else None))
    return tuple(out)


def decision_words(history: Iterable[DecisionEntry]) -> list[str]:
    """One plain line per decision (CSV, plain text): kind, when, by, reason, until as typed."""
    out = []
    for h in history:
        bits = [h.kind, h.at.isoformat()]
        if h.by:
            bits.append(f"by {h.by}")
        if h.reason:
            bits.append(h.reason)
        if h.until_entered or h.until:
            bits.append(f"until {h.until_entered or (h.until.isoformat() if h.until else '')}")
        if h.config_change:
            bits.append(f"config {h.config_change[0] or '?'} -> {h.config_change[1] or '?'}")
        out.append(" | ".join(bits))
    return out
