"""``posture digest``: the weekly digest for the week ending at --now; printed, and sent with --send.

``--since``/``--until`` set another window of events (what a scheduled digest's "N more" line
names: it covers from where the last digest sent ended to its firing); open counts, deadlines,
cadence and certificates stand as of --now either way.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any

from agent.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("digest", help="build (and with --send, send) the digest of the week ending now")
    p.add_argument("--send", action="store_true", help="send it to every channel that takes the digest")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--lang", choices=("zh-TW", "en"), help="language of the text (default: zh-TW)")
    p.add_argument("--asset", metavar="NAME", help="only this asset, every section in full")
    p.add_argument("--section", metavar="KEY",
                   help="only this section of each asset, in full, no summary (text): new, fixed, config, "
                        "decisions, scans, overdue, soon, certs, accepted, open, cadence; what a "
                        "\"N more not listed\" line points to")
    p.add_argument("--since", metavar="WHEN", help="the window's start (default: 7 days before its end)")
    p.add_argument("--until", metavar="WHEN", help="the window's end (default: now)")
    p.add_argument("--all", dest="everything", action="store_true",
                   help="list every asset, also those with nothing to report (text)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.notify import digest
    from agent.output import dump_json
    from agent.session import Session
    from probes.catalog import load_catalog

    session = Session.from_args(args)
    cfg = session.config
    if not cfg.assets and not cfg.watch.domains:
        raise UsageError("no assets configured: the digest covers configured assets and watched domains "
                         "(see posture config check)")
    from agent.notify.digest_text import SECTIONS
    from agent.scanning.watch import watch_names

    if args.section is not None and args.section not in SECTIONS:
        raise UsageError(f"--section {args.section!r}: the sections are {', '.join(SECTIONS)}")
    if args.asset is not None and args.asset not in {*(spec.name for spec in cfg.asset_specs()), *watch_names(cfg)}:
        raise UsageError(f"no configured asset named {args.asset!r} (the digest covers configured assets)")
    now = session.clock_now()
    window = _window(args, now, cfg.agent.timezone)
    catalog = load_catalog()
    with session.open_store() as store:
        built = digest.build(cfg, store, now, catalog, window=window)
        failed = send(session, store, built, now) if args.send else []
    if args.format == "json":
        doc = built.to_json()
        if args.asset is not None:
            doc["assets"] = [a for a in doc["assets"] if a["asset"] == args.asset]
        dump_json(doc)
    else:
        from agent.notify.digest_text import render_text

        print(render_text(built, args.lang or "zh-TW", everything=args.everything, asset=args.asset,
                          section=args.section), end="")
    for d in failed:
        sys.stderr.write(f"posture: digest to {d.channel} failed: {d.error}\n")
    return 1 if failed else 0


def _window(args: argparse.Namespace, now: datetime, tz: str) -> tuple[datetime, datetime] | None:
    """[--since, --until): None for the week ending now (neither given)."""
    from agent.when import parse_when
    from schedules.weekly import week_window

    if args.since is None and args.until is None:
        return None
    end = now if args.until is None else parse_when(args.until, tz, "--until")
    start = week_window(end)[0] if args.since is None else parse_when(args.since, tz, "--since")
    if start >= end:
        raise UsageError("--since must come before the window's end (--until, else --now)")
    return start, end


def send(session: Any, store: Any, built: Any, now: Any) -> list[Any]:
    """A one-off send a person asked for: logged, not retried (a failure is reported now)."""
    import uuid

    from agent.notify import digest_text
    from agent.notify.channels import channels
    from agent.notify.dispatch import flush
    from state.deliveries import Wanted, record
    from state.delivery_views import DeliveryEvent

    wanting = [c for c in channels(session.config) if c.wants("digest")]
    if not wanting:
        raise UsageError("--send: no [[notify]] channel takes the digest (events = [\"digest\"])")
    condition = f"digest-manual:{now.isoformat()}:{uuid.uuid4().hex[:8]}"
    record(store, [Wanted(c.id, c.label, DeliveryEvent.DIGEST, condition, {"manual": True,
                                                                           "week_end": built.end.isoformat()})
                   for c in wanting], now)

    def render(channel: Any, rows: Any) -> Any:
        return digest_text.message(built, channel.language, channel.max_items)

    sent = flush(store, wanting, DeliveryEvent.DIGEST, now, render, retry=False, prefix=condition)
    for d in sent:
        if d.ok:
            sys.stderr.write(f"posture: digest sent to {d.channel}\n")
    return [d for d in sent if not d.ok]
