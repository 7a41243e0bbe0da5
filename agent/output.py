"""Rendering scans and findings: JSON for scripts, tables for people."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from probes.catalog import Catalog, load_catalog
from vocab import SEVERITY_ORDER, ScanStatus, severity_position

# The version of ``posture scan --format json``'s document; raised when a field changes meaning or goes.
# 2: schema_version, summary, per scan its id, per finding state, first_seen and deadline.
SCAN_SCHEMA_VERSION = 2
_COLOURS = {"critical": "\033[1;97;41m", "high": "\033[1;31m", "medium": "\033[33m", "low": "\033[36m",
            "info": "\033[2m"}
_STATUS_COLOURS = {"complete": "\033[32m", "partial": "\033[33m", "failed": "\033[31m", "interrupted": "\033[35m"}
_RESET = "\033[0m"


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def as_entered(entered: str | None, value: datetime | None) -> str | None:
    """A date a person typed, exactly as typed (2027-03-31); older records, the instant."""
    return entered if entered else iso(value)


def use_colour(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def paint(text: str, code: str | None, colour: bool) -> str:
    return f"{code}{text}{_RESET}" if colour and code else text


def scan_json(outcome: Any, catalog: Catalog | None = None) -> dict[str, Any]:
    """One scan as the documented JSON object (``outcome`` is an options.ScanOutcome)."""
    from agent.targets import display_name, display_url, hide_values, query_values

    catalog = catalog or load_catalog()
    rec = outcome.record
    ids: Mapping[tuple[str, str], int] = getattr(outcome.stored, "finding_ids", {}) or {}
    findings = []
    observations: dict[str, Any] = {}
    errors = []
    if rec.dns:
        observations["dns"] = rec.dns
    for run in rec.probe_runs:
        observations[run.probe] = {"status": run.status.value, **run.observations}
        if run.skip_reason:
            observations[run.probe]["skip_reason"] = run.skip_reason
        if run.error:
            errors.append({"probe": run.probe, "kind": run.error_kind, "error": run.error})
        for f in run.findings:
            check = catalog[f.check_id]
            findings.append(
                {
                    "id": ids.get((f.check_id, f.key)),
                    "check_id": f.check_id,
                    "key": f.key,
                    "severity": f.severity,
                    "title": check.title_en,
                    "title_zh": check.title_zh,
                    "evidence": f.evidence,
                    "references": list(check.references),
                    "probe": run.probe,
                }
            )
    if rec.error and not any(e["error"] == rec.error for e in errors):
        errors.insert(0, {"probe": "scan", "kind": "scan", "error": rec.error})
    findings.sort(key=lambda f: (severity_position(f["severity"]), f["check_id"], f["key"]))
    target = display_url(rec.asset.url)  # query values masked: ?api_key=**** (the probes used the URL itself)
    shown = _unicode_of(target)
    doc = {
        "id": getattr(outcome.stored, "scan_id", None),
        "target": target,
        **({"target_unicode": shown} if shown else {}),  # an IDN's Unicode form, beside the A-label URL
        "asset": display_name(rec.asset.name),  # an asset given no name (ad hoc) is named by its URL
        "kind": rec.asset.kind,
        "status": rec.status.value,
        "started_at": iso(rec.started_at),
        "finished_at": iso(rec.finished_at),
        "counts_for_cadence": rec.status is ScanStatus.COMPLETE and rec.full,
        "reason": rec.error,
        "probes": probe_steps(rec.probe_runs),
        "findings": findings,
        "observations": observations,
        "errors": errors,
    }
    result: dict[str, Any] = hide_values(doc, query_values(rec.asset.url))  # where evidence quotes the URL
    return result


def scan_summary(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts over a run's scans: findings by severity and by state, scans by status."""
    by_severity = {s.value: 0 for s in SEVERITY_ORDER}
    by_state: dict[str, int] = {}
    by_status: dict[str, int] = {}
    for d in docs:
        by_status[d["status"]] = by_status.get(d["status"], 0) + 1
        for f in d["findings"]:
            by_severity[f["severity"]] = by_severity.get(f["severity"], 0) + 1
            state = f.get("state") or "unknown"
            by_state[state] = by_state.get(state, 0) + 1
    return {"scans": len(docs), "scans_by_status": by_status,
            "findings": sum(len(d["findings"]) for d in docs),
            "by_severity": by_severity, "by_state": by_state}


def scan_document(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole ``posture scan --format json`` document."""
    return {"schema_version": SCAN_SCHEMA_VERSION, "summary": scan_summary(docs), "scans": docs}


def tls_line(observations: Mapping[str, Any]) -> str | None:
    """``grade A; offers TLSv1.2, TLSv1.3`` from the tls probe's observations; None when it did not run."""
    tls = observations.get("tls")
    if not isinstance(tls, Mapping) or tls.get("status") != "ok":
        return None
    grade = tls.get("grade")
    parts = [f"grade {grade['grade']}" if isinstance(grade, Mapping) and grade.get("grade")
             else "grade not computed"]
    suites = tls.get("suites")
    if isinstance(suites, Mapping):
        offered: dict[str, None] = {}
        for scan in suites.values():
            protocols = scan.get("protocols") if isinstance(scan, Mapping) else None
            if isinstance(protocols, Mapping):
                offered.update((str(p), None) for p, on in protocols.items() if on)
        from probes.tls.suite_data import Protocol

        order = [p.value for p in Protocol]  # oldest first
        names = sorted(offered, key=lambda p: order.index(p) if p in order else 99)
        parts.append("offers " + (", ".join(names) if names else "no protocol version"))
    else:
        parts.append("protocol versions not tested")
    return "; ".join(parts)


def _unicode_of(url: str) -> str | None:
    """The URL with its host in Unicode when the host is an IDN (A-labels stay the record's form)."""
    from urllib.parse import urlsplit, urlunsplit

    from probes.net.scope import unicode_host

    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = unicode_host(host)
    if shown is None:
        return None
    netloc = shown if parts.port is None else f"{shown}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def probe_steps(runs: Iterable[Any]) -> list[dict[str, Any]]:
    """Per step and probe that applies: ran (ok), skipped and why, or failed and the error."""
    out = []
    for run in runs:
        status = getattr(run.status, "value", run.status)
        outcome = {"ok": "ran", "skipped": "skipped", "error": "failed"}.get(status, status)
        if status == "ok" and run.skip_reason:
            outcome = "partly skipped"  # ran, but left a part out (an active part in quiet hours)
        out.append({"probe": run.probe, "outcome": outcome, "status": status,
                    "reason": run.error if status == "error" else run.skip_reason,
                    "error_kind": run.error_kind if status == "error" else None})
    return out


def steps_line(steps: Sequence[Mapping[str, Any]]) -> str:
    """``reach ran, tls ran, ports skipped (quiet hours: …)``: one line for tables and history."""
    parts = []
    for s in steps:
        part = f"{s['probe']} {s['outcome']}"
        if s["outcome"] in ("skipped", "partly skipped") and s.get("reason"):
            part += f" ({s['reason']})"
        parts.append(part)
    return ", ".join(parts)


def dump_json(doc: Any, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    # Written in pieces of about 64 KiB: json.dump writes every token on its own (hundreds of
    # thousands of writes for a scan of many assets), json.dumps holds the whole text at once
    # (tens of MiB at the end of a 1,000-asset scan). The text is the same.
    pieces: list[str] = []
    size = 0
    for piece in json.JSONEncoder(ensure_ascii=False, indent=2, default=str).iterencode(doc):
        pieces.append(piece)
        size += len(piece)
        if size >= 1 << 16:
            stream.write("".join(pieces))
            pieces.clear()
            size = 0
    stream.write("".join(pieces) + "\n")


def _summary_keys() -> dict[str, tuple[str, ...]]:
    """Step -> the evidence keys that summarise its findings, as each probe declares them."""
    from probes.edge import model as edge
    from probes.http import model as http
    from probes.leak import model as leak
    from probes.ports import model as ports
    from probes.social import model as social
    from probes.tls import model as tls
    from state.records import REACH_STEP

    return {
        "tls": tls.SUMMARY_KEYS, "http": http.SUMMARY_KEYS, "edge": edge.SUMMARY_KEYS, "leak": leak.SUMMARY_KEYS,
        "ports": ports.SUMMARY_KEYS, "social": social.SUMMARY_KEYS,
        # The agent's own steps (agent/scanning): asset.unreachable and dns.unexpected_address.
        REACH_STEP: ("reason",), "dns": ("reason", "addresses"),
    }


def _summary(evidence: Mapping[str, Any], probe: str | None) -> str:
    """A short human line from a finding's evidence: the first of the keys its probe declares."""
    for key in _summary_keys().get(probe or "", ()):
        if key in evidence and evidence[key] not in (None, "", [], {}):
            value = evidence[key]
            if isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value[:4]) + (" …" if len(value) > 4 else "")
            elif isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in list(value.items())[:3])
            return f"{key}: {value}"
    return ""


def print_scans(docs: Sequence[Mapping[str, Any]], stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    colour = use_colour(stream)
    for doc in docs:
        status = doc["status"]
        target = f"{doc['target']} ({doc['target_unicode']})" if doc.get("target_unicode") else doc["target"]
        head = f"{target}  [{paint(status, _STATUS_COLOURS.get(status), colour)}]"
        if doc.get("asset") and doc["asset"] != doc["target"]:
            head = f"{doc['asset']}  {head}"
        stream.write(head + "\n")
        if doc.get("reason") and status in ("failed", "partial", "interrupted"):
            stream.write(f"  reason: {doc['reason']}\n")
        if doc.get("probes"):
            stream.write(f"  probes: {steps_line(doc['probes'])}\n")
        tls = tls_line(doc.get("observations") or {})
        if tls:
            stream.write(f"  tls: {tls}\n")
        rows = [
            (f["severity"], f["check_id"], f["key"], f["title"], _summary(f["evidence"], f.get("probe")), f.get("id"))
            for f in doc["findings"]
        ]
        if rows:
            _table(rows, stream, colour)
        else:
            stream.write("  no findings\n")
        for err in doc["errors"]:
            stream.write(f"  ! {err['probe']}: {err['error']}\n")
        dns = doc.get("observations", {}).get("dns") or {}
        for address, why in (dns.get("refused") or {}).items():
            stream.write(f"  ! refused {address}: {why}\n")
        stream.write("\n")
    total = sum(len(d["findings"]) for d in docs)
    by_sev: dict[str, int] = {}
    for d in docs:
        for f in d["findings"]:
            by_sev[f["severity"]] = by_sev.get(f["severity"], 0) + 1
    parts = [f"{n} {s}" for s, n in sorted(by_sev.items(), key=lambda kv: severity_position(kv[0]))]
    stream.write(f"{len(docs)} scan(s), {total} finding(s)" + (f": {', '.join(parts)}" if parts else "") + "\n")


def _table(rows: Iterable[tuple[str, str, str, str, str, int | None]], stream: TextIO, colour: bool) -> None:
    rows = list(rows)
    w_sev = max(len(r[0]) for r in rows)
    w_check = max(len(r[1]) for r in rows)
    w_key = min(max(len(r[2]) for r in rows), 40)
    for sev, check, key, title, summary, fid in rows:
        ident = f"#{fid}" if fid is not None else ""
        line = (
            f"  {paint(sev.ljust(w_sev), _COLOURS.get(sev), colour)}  {check.ljust(w_check)}  "
            f"{key[:40].ljust(w_key)}  {title}"
        )
        if summary:
            line += f" ({summary})"
        if ident:
            line += f"  {ident}"
        stream.write(line + "\n")


class Progress:
    """A one-line progress display on stderr, only for people (a TTY, not JSON)."""

    def __init__(self, enabled: bool, stream: TextIO | None = None) -> None:
        stream = stream or sys.stderr
        self.enabled = enabled and stream.isatty()
        self.stream = stream

    def update(self, done: int, total: int) -> None:
        if self.enabled:
            self.stream.write(f"\rscanned {done}/{total} asset(s)…")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
