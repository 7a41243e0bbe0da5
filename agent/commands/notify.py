"""``posture notify test``: send a test message to every ``[[notify]]`` channel."""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("notify", help="notification commands")
    nsub = p.add_subparsers(dest="notify_command", metavar="SUBCOMMAND")
    nsub.required = True
    test = nsub.add_parser("test", help="send a test message to every channel; exit 1 if any failed")
    test.add_argument("--format", choices=("text", "json"), default="text")
    test.set_defaults(func=test_channels)


def test_channels(args: argparse.Namespace) -> int:
    from agent.notify import i18n
    from agent.notify.channels import Message, channels, send
    from agent.notify.dispatch import all_secrets
    from agent.output import dump_json
    from agent.session import Session

    session = Session.from_args(args)
    chans = channels(session.config)
    if not chans:
        raise UsageError("no [[notify]] channels configured")
    secrets = all_secrets(chans)
    at = i18n.moment(session.clock_now(), session.config.agent.timezone)
    results = []
    schedule = session.config.schedule.digest
    for c in chans:
        body = i18n.t(c.language, "test_body", at=at, events=receives(c, c.language, schedule))
        results.append(send(c, Message(i18n.t(c.language, "test_title"), body, body), secrets))
    if args.format == "json":
        dump_json({"channels": [{"index": r.channel.index, "channel": r.channel.label, "ok": r.ok,
                                 "error": r.error, "events": sorted(r.channel.events),
                                 "min_severity": r.channel.min_severity,
                                 "receives": receives(r.channel, "en", schedule)} for r in results]})
    else:
        for r in results:
            status = "ok" if r.ok else f"FAILED: {r.error}"
            print(f"notify[{r.channel.index}] {r.channel.label}: {status}; receives "
                  f"{receives(r.channel, 'en', schedule)}")
    failed = [r for r in results if not r.ok]
    if failed:
        import sys

        sys.stderr.write(f"posture: {len(failed)} of {len(results)} channel(s) failed\n")
    return 1 if failed else 0


def receives(channel: Any, language: str, digest_schedule: str) -> str:
    """What this channel is actually sent, in words: its events, the alert severity floor, the digest's timing."""
    from agent.notify import i18n

    parts = []
    if channel.wants("alert"):
        which = (i18n.t(language, "event_alert_all") if channel.min_severity == "info"
                 else i18n.t(language, "event_alert_min", sev=i18n.severity(language, channel.min_severity)))
        parts.append(i18n.t(language, "event_alert", which=which))
    if channel.wants("digest"):
        when = (i18n.t(language, "digest_off") if digest_schedule == "off"
                else i18n.t(language, "digest_when", schedule=digest_schedule))
        space = "" if i18n.lang_of(language) == "zh-TW" else " "
        parts.append(f"{i18n.t(language, 'event_digest')}{space}{when}")
    sep = "；" if i18n.lang_of(language) == "zh-TW" else "; "
    return sep.join(parts) or i18n.t(language, "test_none")
