"""``posture watch``: one phishing and impersonation watch (DNS only) at ``--now``, stored, printed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("watch", help="look for registered lookalikes of [watch] domains and check SPF/DMARC (DNS only)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--resolver", metavar="IP[:PORT]", help="send every DNS query to this server")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.output import dump_json, print_scans, scan_json
    from agent.scanning.watch import watch
    from agent.session import Session

    session = Session.from_args(args)
    if not session.config.watch.domains:
        raise UsageError("no domains to watch: set [watch] domains in the config")
    if args.resolver:
        from probes.net.dns import parse_resolver

        try:
            parse_resolver(args.resolver)
        except ValueError:
            raise UsageError(f"--resolver must be IP[:PORT], got {args.resolver!r}") from None
    outcomes = watch(session, resolver=args.resolver)
    docs = [scan_json(o) for o in outcomes]
    if args.format == "json":
        dump_json({"scans": docs})
    else:
        print_scans(docs)
    for d in docs:
        if d["errors"]:
            sys.stderr.write(f"posture: watch of {d['target']} {d['status']}: {d['errors'][0]['error']}\n")
    alert(session, outcomes)
    return 1 if any(d["status"] == "failed" for d in docs) else 0


def alert(session: Any, outcomes: list[Any]) -> None:
    """New lookalikes and mail findings are alerted at once, once each (the alert log dedupes)."""
    from agent.notify.dispatch import alert_new_findings

    if not outcomes or not session.config.notify:
        return
    now = max(o.record.finished_at for o in outcomes)
    for d in alert_new_findings(session, outcomes, now):
        if not d.ok:
            sys.stderr.write(f"posture: alert to {d.channel} failed: {d.error}\n")
