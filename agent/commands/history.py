"""``posture history ASSET``: an asset's timeline (scans, third-party scans, finding events) for auditors."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from agent.errors import UsageError
from vocab import ScanStatus


def register(sub: Any) -> None:
    p = sub.add_parser("history", help="the timeline of one asset: scans and every finding transition")
    p.add_argument("asset", metavar="ASSET", help="an asset name, or its URL")
    p.add_argument("--since", metavar="DATE", help="from this ISO date or date-time")
    p.add_argument("--until", metavar="DATE", help="before this ISO date or date-time")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def asset_name(session: Any, text: str, known: set[str]) -> str:
    """A name as given, or the configured asset (or stored ad-hoc asset) a URL stands for."""
    from agent.targets import parse_target_url

    if text in known or text in {s.name for s in session.config.asset_specs()}:
        return text
    if "://" in text:
        normalised = parse_target_url(text).normalised
        for spec in session.config.asset_specs():
            if spec.url.normalised == normalised:
                return str(spec.name)
        if normalised in known:
            return normalised
    raise UsageError(f"no asset named {text!r} (posture config check lists the configured ones)")


def entries(store: Any, name: str, since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    from agent.output import as_entered, iso, probe_steps
    from state.evidence import run_summaries
    from state.external_scans import scans as external

    out: list[tuple[datetime, int, dict[str, Any]]] = []
    steps: dict[int, list[dict[str, Any]]] = {}
    for r in run_summaries(store, asset=name, since=since, until=until):
        steps.setdefault(r.scan_id, []).extend(probe_steps([r]))
    for h in store.history(name, since, until):
        if h.scan is not None:
            s = h.scan
            out.append((h.at, 0, {"at": iso(h.at), "type": "scan", "scan_id": s.id, "status": s.status.value,
                                  "trigger": s.trigger.value, "full": s.full, "finished_at": iso(s.finished_at),
                                  "counts_for_cadence": s.status is ScanStatus.COMPLETE and s.full,
                                  "posture_version": s.posture_version, "config_hash": s.config_hash,
                                  "asset_config_hash": s.asset_config_hash, "error": s.error,
                                  "probes": steps.get(s.id, [])}))
        elif h.event is not None:
            e = h.event
            out.append((h.at, 1, {"at": iso(h.at), "type": "event", "event": e.kind.value, "finding_id": e.finding_id,
                                  "check_id": e.check_id, "key": e.key, "scan_id": e.scan_id,
                                  "from": e.from_state.value if e.from_state else None, "to": e.to_state.value,
                                  "detail": e.detail}))
    for x in external(store, name):
        if (since is None or x.performed_at >= since) and (until is None or x.performed_at < until):
            out.append((x.performed_at, 0, {
                "at": iso(x.performed_at), "type": "third_party_scan", "id": x.id, "by": x.performed_by,
                "performed": as_entered(x.performed_entered, x.performed_at),
                "evidence": x.evidence_name, "sha256": x.evidence_sha256, "size": x.evidence_size,
                "recorded_at": iso(x.recorded_at), "note": x.note}))
    out.sort(key=lambda t: (t[0], t[1]))
    return [doc for _, _, doc in out]


def run(args: argparse.Namespace) -> int:
    from agent.notify.i18n import moment
    from agent.output import dump_json, steps_line
    from agent.session import Session
    from agent.when import parse_when
    from vocab import escape

    session = Session.from_args(args)
    tz = session.config.agent.timezone
    since = parse_when(args.since, tz, "--since") if args.since else None
    until = parse_when(args.until, tz, "--until") if args.until else None
    with session.open_store() as store:
        name = asset_name(session, args.asset, {a.name for a in store.assets()})
        docs = entries(store, name, since, until)
    if args.format == "json":
        dump_json({"asset": name, "history": docs})
        return 0
    print(f"{name}: {len(docs)} entr{'y' if len(docs) == 1 else 'ies'} (times in {tz})")
    for d in docs:
        when = moment(datetime.fromisoformat(d["at"].replace("Z", "+00:00")), tz)
        if d["type"] == "scan":
            scope = "all probes asked for" if d["full"] else "narrowed with --probe"
            counts = "counts for cadence" if d["counts_for_cadence"] else "does not count for cadence"
            extra = f": {d['error']}" if d["error"] else ""
            print(f"{when}  scan #{d['scan_id']} {d['status']} ({d['trigger']}, {scope}; {counts}){extra}")
            if d["probes"]:
                print(f"{' ' * len(when)}    probes: {steps_line(d['probes'])}")
        elif d["type"] == "third_party_scan":
            print(escape(f"{when}  third-party scan by {d['by']}: {d['evidence']} sha256 {d['sha256']} "
                         f"(performed {d['performed']})"))
        else:
            print(f"{when}    {d['event']:<18} #{d['finding_id']:<5} {d['check_id']} {d['key']}  "
                  f"{d['from'] or '-'} -> {d['to']}{event_note(d['event'], d['detail'])}")
    return 0


def event_note(kind: str, detail: dict[str, Any]) -> str:
    """What an event adds in one line: a decision's reason and date as typed, a config change."""
    from agent.tracking.finding_views import decision_line

    decision = decision_line(kind, detail)
    parts = [decision] if decision else []
    if "target_before" in detail:
        parts.append(f"asset pointed from {detail.get('target_before')} to {detail.get('target_after')}; "
                     "not looked at again")
    elif "config_hash_before" in detail:
        before, after = detail.get("config_hash_before") or "unknown", detail.get("config_hash_after") or "unknown"
        seen = detail.get("condition_still_observed")
        what = ("still observed" if seen else "no longer observed" if seen is False
                else "not observable by the probe")
        parts.append(f"configuration {before} -> {after}, condition {what}")
    return f"  ({'; '.join(parts)})" if parts else ""
