"""``posture run --once``: do everything due now (scans, acceptance expiry, alerts, digest), then exit.

The long-running daemon (``posture run`` without ``--once``) loops this unit of work.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run what is due: scheduled scans, deadlines, cadence, alerts, the digest")
    p.add_argument("--once", action="store_true", help="one cycle at --now (or the real clock), then exit")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.output import dump_json
    from agent.scheduling.cycle import run_once
    from agent.session import Session

    if not args.once:
        from agent.scheduling.daemon import run_daemon

        return run_daemon(args)
    session = Session.from_args(args)
    report = run_once(session)
    if args.format == "json":
        dump_json(report.to_json())
    else:
        print_report(report, session.config.agent.timezone)
    for scan in report.failed_scans:
        sys.stderr.write(f"posture: scheduled scan of {scan['asset']} failed: {scan['reason'] or 'no probe ran'}\n")
    for d in report.deliveries:
        if not d.ok:
            retry = f"; retry after {d.retry_at.isoformat()}" if d.retry_at else ""
            sys.stderr.write(f"posture: {d.event.value} to {d.channel} failed: {d.error}{retry}\n")
    return 1 if report.failed_scans else 0


def print_report(report: Any, tz: str) -> None:
    from agent.notify.i18n import moment
    from agent.output import steps_line

    print(f"cycle at {moment(report.at, tz)} ({tz})")
    if report.expired:
        print(f"  acceptances expired (back to open): {', '.join(f'#{i}' for i in report.expired)}")
    for s in report.scans:
        changes = ", ".join(f"{len(s[k])} {k}" for k in ("opened", "reopened", "fixed") if s[k])
        print(f"  scanned {s['asset']}: {s['status']}" + (f" ({changes})" if changes else "")
              + (f": {s['reason']}" if s.get("reason") and s["status"] != "complete" else ""))
        skipped = [p for p in s.get("probes", ()) if p["outcome"] != "ran"]
        if skipped:
            print(f"    probes: {steps_line(s['probes'])}")
    for w in report.waiting:
        detail = f": {w.detail}" if w.detail else ""
        print(f"  {w.asset}: waiting until {moment(w.until, tz)} ({w.reason}{detail})")
    if not report.scans and not report.waiting:
        print("  no scan due")
    # What was sent, counted as the channel received it: the alerts in its message, not conditions logged
    # (one alert logged for two channels is two log rows, but each channel gets it once).
    for d in report.deliveries:
        what = f"{d.items} alert(s)" if d.event.value == "alert" else "the digest"
        if d.ok:
            print(f"  sent {what} to {d.channel}")
        else:
            retry = f", retry after {moment(d.retry_at, tz)}" if d.retry_at else ""
            print(f"  NOT sent: {what} to {d.channel} (failed{retry})")
    if report.digest_firing is not None:
        print(f"  digest due for the firing at {moment(report.digest_firing, tz)}")
