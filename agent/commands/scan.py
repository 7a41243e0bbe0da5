"""``posture scan``: scan URLs or every configured asset, store, print (the work is :mod:`agent.scanning.service`)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from vocab import Severity

SEVERITIES = tuple(s.value for s in Severity)  # worst first
FAIL_ON_EXIT = 3  # --fail-on: an open finding at or above the threshold

if TYPE_CHECKING:
    from agent.scanning.options import ScanOutcome
    from agent.session import Session


def register(sub: Any) -> None:
    p = sub.add_parser("scan", help="scan URLs (or every configured asset), store and print the result")
    p.add_argument("urls", nargs="*", metavar="URL", help="https://, http://, wss:// or tls://host:port")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--ca-bundle", metavar="PEM", help="extra trust anchors, added to the system store")
    p.add_argument("--resolver", metavar="IP[:PORT]", help="send every DNS query to this server")
    p.add_argument("--probe", action="append", metavar="NAME", help="run only this probe (repeatable)")
    p.add_argument("--force-active", action="store_true",
                   help="send active probes even where the asset or its quiet hours forbid them (recorded)")
    p.add_argument("--fail-on", choices=SEVERITIES, metavar="SEVERITY", dest="fail_on",
                   help="exit 3 when a finding still open (not accepted, not a false positive) is at or above "
                        f"SEVERITY ({', '.join(SEVERITIES)}); for pipelines")
    p.set_defaults(func=run)
    p.epilog = ("A bare host name means https://host/. Exit codes: 0 done (findings do not change it), 1 a scan "
                "failed, 2 bad input, 3 --fail-on: an open finding at or above the given severity.")


def run(args: argparse.Namespace) -> int:
    from agent.output import Progress, dump_json, print_scans, scan_document, scan_json
    from agent.scanning.service import ScanRequest, scan_and_store, scan_options, select_assets
    from agent.session import Session
    from agent.tracking.scan_states import annotate, failing, standings, unverified

    session = Session.from_args(args)
    specs = select_assets(session, args.urls)
    request = ScanRequest(probes=tuple(args.probe) if args.probe else None, ca_bundle=args.ca_bundle,
                          resolver=args.resolver, force_active=args.force_active)
    opts = scan_options(session, request)
    display = Progress(enabled=args.format == "table" and len(specs) > 0)
    try:
        outcomes = scan_and_store(session, specs, opts, on_progress=display.update)
    finally:
        display.close()
    docs = [scan_json(o) for o in outcomes]
    annotate(docs, standings(session, [d["asset"] for d in docs],
                             {f["id"] for d in docs for f in d["findings"] if f.get("id") is not None}))
    if args.format == "json":
        dump_json(scan_document(docs))
    else:
        print_scans(docs)
    failed = [d for d in docs if d["status"] == "failed"]
    for d in failed:
        why = d["errors"][0]["error"] if d["errors"] else "no probe succeeded"
        sys.stderr.write(f"posture: scan of {d['target']} failed: {why}\n")
    alert(session, outcomes)
    if args.fail_on:
        over = failing(docs, args.fail_on)
        # Open findings the scan could not look at again (their probe failed or was skipped) stand.
        shown = {f["id"] for f in over}
        stale = [u for u in unverified(session, outcomes, args.fail_on, args.probe) if u[0] not in shown]
        if over:
            ids = ", ".join(f"#{f['id']}" for f in over[:10]) + (" …" if len(over) > 10 else "")
            sys.stderr.write(f"posture: {len(over)} open finding(s) at or above {args.fail_on} ({ids}): "
                             f"exit {FAIL_ON_EXIT} (--fail-on)\n")
        if stale:
            ids = ", ".join(f"#{i} ({probe})" for i, _, probe in stale[:10]) + (" …" if len(stale) > 10 else "")
            sys.stderr.write(f"posture: {len(stale)} stored open finding(s) at or above {args.fail_on} not "
                             f"checked again, their probe did not run in full ({ids}): exit {FAIL_ON_EXIT} "
                             "(--fail-on)\n")
        if over or stale:
            return FAIL_ON_EXIT
    return 1 if failed else 0


def alert(session: Session, outcomes: list[ScanOutcome]) -> None:
    """New findings of configured assets are alerted at once: an urgent one never waits for the daemon."""
    if not outcomes or not session.config.notify:
        return
    from agent.notify.dispatch import alert_new_findings

    now = max(o.record.finished_at for o in outcomes)
    for d in alert_new_findings(session, outcomes, now):
        if not d.ok:
            retry = f"; retried after {d.retry_at.isoformat()}" if d.retry_at else ""
            sys.stderr.write(f"posture: alert to {d.channel} failed: {d.error}{retry}\n")
