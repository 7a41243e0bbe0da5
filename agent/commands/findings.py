"""``posture findings``: list stored findings, and record people's decisions on them.

    posture findings [--status open|fixed|accepted|false_positive|all] [--overdue] [--asset NAME]
                     [--severity LEVEL] [--check ID] [--ad-hoc]
    posture findings show ID
    posture findings accept ID --reason TEXT --until DATE [--by WHO]
    posture findings false-positive ID --reason TEXT [--by WHO]
    posture findings reopen ID --reason TEXT [--by WHO]

``--severity LEVEL`` keeps findings at or above LEVEL (``high`` lists high and critical).
Findings of ad-hoc URLs (``posture scan URL`` for a URL no asset is configured with) are
left out unless ``--ad-hoc`` is given or ``--asset`` names them.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import UsageError
from agent.typed import evidence_text
from vocab import FindingState, Severity, severity_position

SEVERITIES = tuple(s.value for s in Severity)  # worst first


def record_id(text: str) -> int:
    """:func:`agent.when.record_id`, imported when an id is given (building the parser stays light)."""
    from agent.when import record_id as parse

    return parse(text)


def register(sub: Any) -> None:
    p = sub.add_parser("findings", help="list stored findings; accept a risk or mark a false positive")
    p.add_argument("--status", default="open",
                   choices=("open", "fixed", "accepted", "false_positive", "resolved_by_config", "all"))
    p.add_argument("--asset", metavar="NAME", help="only this asset")
    p.add_argument("--overdue", action="store_true", help="only findings open past their remediation deadline")
    p.add_argument("--severity", choices=SEVERITIES, metavar="LEVEL",
                   help=f"only findings at or above this severity ({', '.join(SEVERITIES)})")
    p.add_argument("--check", action="append", metavar="ID",
                   help="only this check ID, or a family of them (tls.cert); repeatable")
    p.add_argument("--ad-hoc", action="store_true", dest="ad_hoc",
                   help="include findings of ad-hoc URLs (scanned, but not configured assets)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=list_findings)
    actions = p.add_subparsers(dest="findings_action", metavar="ACTION")
    actions.required = False  # plain `posture findings` lists, as it always has
    accept = actions.add_parser("accept", help="accept the risk of a finding until a date (it reopens then)")
    accept.add_argument("id", type=record_id, metavar="ID", help="the finding's id (posture findings shows it)")
    accept.add_argument("--reason", required=True, type=evidence_text,
                        help="why the risk is accepted (kept as audit evidence)")
    accept.add_argument("--until", required=True, metavar="DATE",
                        help="ISO date or date-time; a date covers that whole day")
    accept.add_argument("--by", metavar="WHO", type=evidence_text,
                        help="who decided (default: the user running posture)")
    accept.set_defaults(func=accept_finding)
    fp = actions.add_parser("false-positive", help="mark a finding a false positive")
    fp.add_argument("id", type=record_id, metavar="ID")
    fp.add_argument("--reason", required=True, type=evidence_text,
                    help="why it is not a real weakness (kept as audit evidence)")
    fp.add_argument("--by", metavar="WHO", type=evidence_text,
                    help="who decided (default: the user running posture)")
    fp.set_defaults(func=false_positive)
    reopen = actions.add_parser("reopen", help="undo an acceptance or a false-positive mark")
    reopen.add_argument("id", type=record_id, metavar="ID")
    reopen.add_argument("--reason", required=True, type=evidence_text,
                        help="why the decision is undone (kept as audit evidence)")
    reopen.add_argument("--by", metavar="WHO", type=evidence_text,
                        help="who decided (default: the user running posture)")
    reopen.set_defaults(func=reopen_finding)
    show = actions.add_parser("show", help="one finding: evidence, deadline and its whole history")
    show.add_argument("id", type=record_id, metavar="ID")
    show.add_argument("--format", choices=("text", "json"), default="text", dest="show_format")
    show.set_defaults(func=show_finding)


def list_findings(args: argparse.Namespace) -> int:
    import sys

    from agent.output import _COLOURS, dump_json, paint, use_colour
    from agent.session import Session
    from agent.tracking.finding_views import config_change, finding_json
    from agent.tracking.remediation import deadline_policy, deadlines
    from probes.catalog import load_catalog
    from state.views import FindingFilter

    session = Session.from_args(args)
    catalog = load_catalog()
    now = session.clock_now()
    status = "open" if args.overdue and args.status == "open" else args.status
    checks = _checks(args.check, catalog)
    with session.open_store() as store:
        stored = store.assets()
        asset = _asset(session, args.asset, {a.name for a in stored}) if args.asset else None
        rows = store.findings(FindingFilter(status), asset=asset, now=now)
        kinds = {a.name: a.kind for a in stored}
        ad_hoc = {a.name for a in stored if not a.configured} - {s.name for s in session.config.asset_specs()}
        rows = [f for f in rows if (args.ad_hoc or asset is not None or f.asset not in ad_hoc)
                and (checks is None or f.check_id in checks)
                and (args.severity is None or at_or_above(f.severity, args.severity))]
        due = deadlines(store, deadline_policy(session.config), rows, kinds)
        configs = {f.id: config_change(store, f.id) for f in rows if f.state is FindingState.RESOLVED_BY_CONFIG}
    rows = sorted(rows, key=lambda f: (f.asset, severity_position(f.severity), f.check_id, f.key))
    from agent.targets import query_values

    secrets = {a.name: query_values(a.url) for a in stored}
    docs = [finding_json(f, catalog, due.get(f.id), now, configs.get(f.id), secrets.get(f.asset, frozenset()))
            for f in rows]
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
            flag += f"  until {d['accepted']['until']} (by {d['accepted']['by']})"
        if d["resolved_by_config"]:
            c = d["resolved_by_config"]
            flag += (f"  resolved by configuration {c['at'][:10]} "
                     + (f"(asset pointed from {c['target_before']} to {c['target_after']})" if c["target_before"]
                        else f"({c['config_hash_before'] or '?'} -> {c['config_hash_after'] or '?'})"))
        if d["false_positive"] and d["state"] == "false_positive":
            flag += f"  (by {d['false_positive']['by']})"
        print(f"  #{d['id']:<5} {sev} {d['state']:<9} {d['check_id']:<28} {d['key'][:40]:<40} "
              f"first {d['first_seen'][:10]}  last {d['last_seen'][:10]}{deadline}{flag}")
    what = ", ".join([args.status, *(["overdue"] if args.overdue else []),
                      *([f"{args.severity} or above"] if args.severity else []),
                      *(sorted(checks) if checks else []), *(["with ad-hoc URLs"] if args.ad_hoc else [])])
    print(f"{len(docs)} finding(s) ({what})")
    return 0


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


def _asset(session: Any, text: str, known: set[str]) -> str:
    """The asset ``--asset`` names (a name or URL); an unknown one is bad input (exit 2)."""
    from agent.commands.history import asset_name

    return asset_name(session, text, known)


def _checks(given: list[str] | None, catalog: Any) -> set[str] | None:
    if not given:
        return None
    out: set[str] = set()
    for c in given:
        family = {i for i in catalog.checks if i.startswith(c.rstrip(".") + ".")}
        if c not in catalog and not family:
            raise UsageError(f"unknown check {c!r} (posture catalog lists the check IDs)")
        out |= {c} if c in catalog else family
    return out


def reopen_finding(args: argparse.Namespace) -> int:
    from agent.session import Session, operator

    session = Session.from_args(args)
    by = operator(args.by)
    with session.open_store() as store:
        before = store.finding(args.id)
        state = store.reopen(args.id, args.reason, by, session.clock_now())
    undone = "acceptance" if before.state.value == "accepted" else "false-positive mark"
    print(f"finding #{before.id} ({before.asset} {before.check_id} {before.key}): {undone} undone by {by}, "
          f"now {state.value}: {args.reason.strip()}")
    return 0


def show_finding(args: argparse.Namespace) -> int:
    from agent.commands.finding_show import show

    return show(args)


def at_or_above(severity: str, threshold: str) -> bool:
    """``severity`` is as bad as ``threshold`` or worse (an unknown severity never is)."""
    try:
        return Severity(severity).rank >= Severity(threshold).rank
    except ValueError:
        return False
