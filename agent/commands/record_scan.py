"""``posture record-scan ASSET --date --by --evidence FILE``: register a third-party scan.

The evidence file is copied into the database with its SHA-256, and the scan counts for
the half-yearly cadence like a complete scan of posture's own, and as the compliance
calendar's ``scan`` duty (``posture duty list``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.typed import evidence_text


def register(sub: Any) -> None:
    p = sub.add_parser("record-scan", help="register a scan done by another tool or a third party (counts for cadence)")
    p.add_argument("asset", metavar="ASSET", help="a configured asset's name, or its URL")
    p.add_argument("--date", required=True, metavar="DATE", help="when it was performed (ISO date or date-time)")
    p.add_argument("--by", required=True, metavar="WHO", type=evidence_text, help="who performed it (firm, tool)")
    p.add_argument("--evidence", required=True, metavar="FILE", help="the report; kept byte for byte with its hash")
    p.add_argument("--note", metavar="TEXT", type=evidence_text, help="anything an auditor should know")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.commands.history import asset_name
    from agent.output import as_entered, dump_json, iso
    from agent.scanning.options import asset_record
    from agent.session import Session
    from agent.when import parse_entered
    from state.external_scans import MAX_EVIDENCE_BYTES, record

    session = Session.from_args(args)
    tz = session.config.agent.timezone
    entered = parse_entered(args.date, tz, "--date")
    performed = entered.at
    now = session.clock_now()
    if performed > now:
        raise UsageError(f"--date {args.date} is in the future")
    from probes.files import FileRefused, read_capped

    path = Path(args.evidence)
    try:
        data = read_capped(path, MAX_EVIDENCE_BYTES)
    except FileRefused as exc:
        raise UsageError(f"--evidence {exc}") from None
    with session.open_store() as store:
        name = asset_name(session, args.asset, {a.name for a in store.assets()})
        spec = next((s for s in session.config.asset_specs() if s.name == name), None)
        if spec is not None:
            store.upsert_asset(asset_record(spec), now)
        info = record(store, name, performed_at=performed, performed_by=args.by, evidence_name=path.name,
                      evidence=data, recorded_at=now, note=args.note,
                      performed_entered=entered.text)
    if args.format == "json":
        dump_json({"id": info.id, "asset": info.asset,
                   "performed_at": as_entered(info.performed_entered, info.performed_at),
                   "performed_instant": iso(info.performed_at),
                   "performed_by": info.performed_by, "evidence": info.evidence_name,
                   "sha256": info.evidence_sha256, "size": info.evidence_size, "recorded_at": iso(info.recorded_at)})
    else:
        shown = as_entered(info.performed_entered, info.performed_at)
        print(f"recorded third-party scan #{info.id} of {info.asset} performed {shown} by "
              f"{info.performed_by}: {info.evidence_name} ({info.evidence_size} bytes, sha256 {info.evidence_sha256})")
    return 0
