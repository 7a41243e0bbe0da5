"""``posture findings``: list stored findings, and record people's decisions on them.

    posture findings [--status open|fixed|accepted|false_positive|all] [--overdue] [--asset NAME]
    posture findings accept ID --reason TEXT --until DATE [--by WHO]
    posture findings false-positive ID --reason TEXT [--by WHO]
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from agent.when import record_id


def register(sub: Any) -> None:
    p = sub.add_parser("findings", help="list stored findings; accept a risk or mark a false positive")
    p.add_argument("--status", default="open",
                   choices=("open", "fixed", "accepted", "false_positive", "resolved_by_config", "all"))
    p.add_argument("--asset", metavar="NAME", help="only this asset")
    p.add_argument("--overdue", action="store_true", help="only findings open past their remediation deadline")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=list_findings)
    actions = p.add_subparsers(dest="findings_action", metavar="ACTION")
    actions.required = False  # plain `posture findings` lists, as it always has
    accept = actions.add_parser("accept", help="accept the risk of a finding until a date (it reopens then)")
    accept.add_argument("id", type=record_id, metavar="ID", help="the finding's id (posture findings shows it)")
    accept.add_argument("--reason", required=True, help="why the risk is accepted (kept as audit evidence)")
    accept.add_argument("--until", required=True, metavar="DATE",
                        help="ISO date or date-time; a date covers that whole day")
    accept.add_argument("--by", metavar="WHO", help="who decided (default: the user running posture)")
    accept.set_defaults(func=accept_finding)
    fp = actions.add_parser("false-positive", help="mark a finding a false positive")
    fp.add_argument("id", type=record_id, metavar="ID")
    fp.add_argument("--reason", required=True, help="why it is not a real weakness (kept as audit evidence)")
    fp.add_argument("--by", metavar="WHO", help="who decided (default: the user running posture)")
    fp.set_defaults(func=false_positive)


def finding_json(f: Any, catalog: Any, due: datetime | None = None, now: datetime | None = None,
                 config: dict[str, Any] | None = None) -> dict[str, Any]:
    from agent.output import as_entered, iso
    from schedules.remediation import is_overdue
    from state.lifecycle import NEEDS_FIX
    from state.records import FindingState

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
        "evidence": f.evidence,
        "references": list(check.references),
    }


def list_findings(args: argparse.Namespace) -> int:
    import sys

    from agent.output import _COLOURS, SEVERITY_ORDER, dump_json, paint, use_colour
    from agent.session import Session
    from agent.tracking.remediation import deadline_policy, deadlines
    from probes.catalog import load_catalog
    from state.views import FindingFilter

    session = Session.from_args(args)
    catalog = load_catalog()
    now = session.clock_now()
    status = "open" if args.overdue and args.status == "open" else args.status
    with session.open_store() as store:
        rows = store.findings(FindingFilter(status), asset=args.asset)
        kinds = {a.name: a.kind for a in store.assets()}
        due = deadlines(store, deadline_policy(session.config), rows, kinds)
        configs = {f.id: config_change(store, f.id) for f in rows if f.state.value == "resolved_by_config"}
    rows = sorted(rows, key=lambda f: (f.asset, SEVERITY_ORDER.get(f.severity, 9), f.check_id, f.key))
    docs = [finding_json(f, catalog, due.get(f.id), now, configs.get(f.id)) for f in rows]
    if args.overdue:
        docs = [d for d in docs if d["overdue"]]
    if args.format == "json":
        dump_json({"findings": docs})
        return 0
    colour = use_colour(sys.stdout)
    current = None
    for d in docs:
        if d["asset"] != current:
            current = d["asset"]
            print(current)
        sev = paint(d["severity"].ljust(8), _COLOURS.get(d["severity"]), colour)
        deadline = f"  due {d['deadline'][:10]}" if d["deadline"] else ""
        flag = paint("  OVERDUE", _COLOURS["high"], colour) if d["overdue"] else ""
        if d["accepted"] and d["state"] == "accepted":
            flag += f"  until {d['accepted']['until']}"
        if d["resolved_by_config"]:
            c = d["resolved_by_config"]
            flag += (f"  resolved by configuration {c['at'][:10]} "
                     f"({c['config_hash_before'] or '?'} -> {c['config_hash_after'] or '?'})")
        print(f"  #{d['id']:<5} {sev} {d['state']:<9} {d['check_id']:<28} {d['key'][:40]:<40} "
              f"first {d['first_seen'][:10]}  last {d['last_seen'][:10]}{deadline}{flag}")
    what = f"{args.status}, overdue" if args.overdue else args.status
    print(f"{len(docs)} finding(s) ({what})")
    return 0


def config_change(store: Any, finding_id: int) -> dict[str, Any] | None:
    """The last resolved-by-configuration event of a finding: when, and the hashes before and after."""
    from agent.output import iso

    events = [e for e in store.events(finding_id) if e.kind.value == "resolved_by_config"]
    if not events:
        return None
    e = events[-1]
    return {"at": iso(e.at), "config_hash_before": e.detail.get("config_hash_before"),
            "config_hash_after": e.detail.get("config_hash_after"),
            "condition_still_observed": e.detail.get("condition_still_observed")}


def accept_finding(args: argparse.Namespace) -> int:
    from agent.output import as_entered
    from agent.session import Session, operator
    from agent.when import parse_entered

    session = Session.from_args(args)
    until = parse_entered(args.until, session.config.agent.timezone, "--until", end_of_day=True)
    by = operator(args.by)
    with session.open_store() as store:
        store.accept(args.id, args.reason, by, until.at, session.clock_now(), until.text)
        f = store.finding(args.id)
    print(f"finding #{f.id} ({f.asset} {f.check_id} {f.key}) accepted until "
          f"{as_entered(f.accepted_until_entered, f.accepted_until)} by {by}: "
          f"{f.accepted_reason}")
    return 0


def false_positive(args: argparse.Namespace) -> int:
    from agent.session import Session, operator

    session = Session.from_args(args)
    by = operator(args.by)
    with session.open_store() as store:
        store.mark_false_positive(args.id, args.reason, by, session.clock_now())
        f = store.finding(args.id)
    print(f"finding #{f.id} ({f.asset} {f.check_id} {f.key}) marked a false positive by {by}: "
          f"{f.false_positive_reason}")
    return 0
