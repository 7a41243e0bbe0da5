"""``posture findings``: list stored findings."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("findings", help="list stored findings")
    p.add_argument("--status", choices=("open", "fixed", "accepted", "false_positive", "all"), default="open")
    p.add_argument("--asset", metavar="NAME", help="only this asset")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=list_findings)


def finding_json(f: Any, catalog: Any) -> dict[str, Any]:
    from agent.output import iso

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
        "evidence": f.evidence,
        "references": list(check.references),
    }


def list_findings(args: argparse.Namespace) -> int:
    import sys

    from agent.output import SEVERITY_ORDER, dump_json, paint, use_colour
    from agent.session import Session
    from probes.catalog import load_catalog
    from state.views import FindingFilter

    session = Session.from_args(args)
    catalog = load_catalog()
    with session.open_store() as store:
        rows = store.findings(FindingFilter(args.status), asset=args.asset)
    rows = sorted(rows, key=lambda f: (f.asset, SEVERITY_ORDER.get(f.severity, 9), f.check_id, f.key))
    docs = [finding_json(f, catalog) for f in rows]
    if args.format == "json":
        dump_json({"findings": docs})
        return 0
    colour = use_colour(sys.stdout)
    from agent.output import _COLOURS

    current = None
    for d in docs:
        if d["asset"] != current:
            current = d["asset"]
            print(current)
        sev = paint(d["severity"].ljust(8), _COLOURS.get(d["severity"]), colour)
        print(f"  #{d['id']:<5} {sev} {d['state']:<9} {d['check_id']:<28} {d['key'][:40]:<40} "
              f"first {d['first_seen'][:10]}  last {d['last_seen'][:10]}")
    print(f"{len(docs)} finding(s) ({args.status})")
    return 0
