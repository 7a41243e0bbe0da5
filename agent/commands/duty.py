"""``posture duty record KIND --date --by [--evidence FILE]`` and ``posture duty list``:
the compliance calendar (penetration tests, drills, health checks, declarations...)."""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import UsageError
from agent.typed import evidence_text
from schedules.duties import DutyKind


def register(sub: Any) -> None:
    p = sub.add_parser("duty", help="the compliance calendar: record a periodic duty done, list what is due")
    dsub = p.add_subparsers(dest="duty_command", metavar="COMMAND", required=True)
    r = dsub.add_parser("record", help="record a duty done (with its evidence file, kept with its SHA-256)")
    r.add_argument("kind", metavar="KIND", choices=[k.value for k in DutyKind],
                   help=", ".join(k.value for k in DutyKind))
    r.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="the day it was done (agent time zone)")
    r.add_argument("--by", required=True, metavar="TEXT", type=evidence_text, help="who performed it (firm, person)")
    r.add_argument("--evidence", metavar="FILE", help="its report or minutes; kept byte for byte with its hash")
    r.add_argument("--note", metavar="TEXT", type=evidence_text, help="anything an auditor should know")
    r.add_argument("--format", choices=("text", "json"), default="text")
    r.set_defaults(func=run_record)
    ls = dsub.add_parser("list", help="each duty: period, last done, next due, state")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    ls.set_defaults(func=run_list)


def run_record(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent.output import dump_json, iso
    from agent.session import Session
    from agent.tracking.duties import local_day
    from agent.when import parse_entered
    from state.duty_records import MAX_EVIDENCE_BYTES, record

    session = Session.from_args(args)
    tz = session.config.agent.timezone
    entered = parse_entered(args.date, tz, "--date")
    if entered.day is None:
        raise UsageError(f"--date {args.date!r} must be a calendar date (YYYY-MM-DD)")
    now = session.clock_now()
    if entered.day > local_day(now, tz):
        raise UsageError(f"--date {args.date} is in the future")
    if not args.by.strip():
        raise UsageError("--by must name who performed it")
    data: bytes | None = None
    name = path_text = None
    if args.evidence is not None:
        from probes.files import FileRefused, read_capped

        path = Path(args.evidence)
        try:
            data = read_capped(path, MAX_EVIDENCE_BYTES)
        except FileRefused as exc:
            raise UsageError(f"--evidence {exc}") from None
        if not data:
            raise UsageError(f"--evidence {args.evidence}: the file is empty")
        name, path_text = path.name, str(path.absolute())
    with session.open_store() as store:
        info = record(store, args.kind, performed_on=entered.day, performed_entered=entered.text,
                      performed_by=args.by, recorded_at=now, evidence_name=name, evidence_path=path_text,
                      evidence=data, note=args.note)
    if args.format == "json":
        dump_json({"id": info.id, "kind": info.kind, "date": info.performed_entered, "by": info.performed_by,
                   "evidence": info.evidence_name, "evidence_path": info.evidence_path,
                   "sha256": info.evidence_sha256, "size": info.evidence_size, "recorded_at": iso(info.recorded_at)})
    else:
        ev = (f": {info.evidence_name} ({info.evidence_size} bytes, sha256 {info.evidence_sha256})"
              if info.evidence_name else " (no evidence file)")
        print(f"recorded {info.kind} #{info.id} done {info.performed_entered} by {info.performed_by}{ev}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from agent.output import dump_json
    from agent.session import Session
    from agent.tracking.duties import calendar, held_back_line, local_day, status_json

    session = Session.from_args(args)
    cfg = session.config
    today = local_day(session.clock_now(), cfg.agent.timezone)
    with session.open_store() as store:
        duties = calendar(cfg, store, today)
    if args.format == "json":
        dump_json({"firm": cfg.firm_settings().name, "tier": cfg.firm_settings().tier, "today": today.isoformat(),
                   "duties": [status_json(d) for d in duties]})
        return 0
    print(f"{'KIND':<13} {'EVERY':>6} {'LAST DONE':<10} {'NEXT DUE':<10} STATE")
    for d in duties:
        every = "-" if d.months is None else f"{d.months}mo"
        last = d.last_done.isoformat() if d.last_done else "never"
        due = d.next_due.isoformat() if d.next_due else "-"
        print(f"{d.kind.value:<13} {every:>6} {last:<10} {due:<10} {d.state.value}")
    for line in filter(None, map(held_back_line, duties)):
        print(line)
    return 0
