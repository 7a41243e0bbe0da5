"""``posture export --format defectdojo|ocsf [--since DATE] [--asset NAME] -o FILE``."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="findings for other tools: DefectDojo Generic Findings Import, OCSF")
    p.add_argument("--format", choices=("defectdojo", "ocsf"), required=True,
                   help="defectdojo: Generic Findings Import JSON; ocsf: Detection Finding JSON lines")
    p.add_argument("--since", metavar="DATE", help="only findings seen, fixed or decided from this ISO date")
    p.add_argument("--asset", metavar="NAME", help="one asset (its name or URL)")
    p.add_argument("-o", "--output", metavar="FILE", required=True, help="where to write ('-' for stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from agent import __version__
    from agent.commands.history import asset_name
    from agent.export import defectdojo, ocsf
    from agent.export.gather import gather
    from agent.session import Session
    from agent.when import parse_when
    from probes.catalog import load_catalog

    session = Session.from_args(args)
    tz = session.config.agent.timezone
    since = parse_when(args.since, tz, "--since") if args.since else None
    catalog = load_catalog()
    now = session.clock_now()
    with session.open_store() as store:
        name = asset_name(session, args.asset, {a.name for a in store.assets()}) if args.asset else None
        items = gather(store, session.config, catalog, since, name, now)
    if args.format == "defectdojo":
        import json

        text = json.dumps(defectdojo.document(items, __version__, catalog.version, now, tz),
                          ensure_ascii=False, indent=2) + "\n"
    else:
        text = "".join(line + "\n" for line in ocsf.lines(items, __version__, catalog.version))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_file(args.output, text)
        sys.stderr.write(f"posture: wrote {len(items)} finding(s) as {args.format} to {args.output}\n")
    return 0


def write_file(path: str, text: str) -> None:
    """Whole or not at all, as ``posture report -o`` writes (agent.outfile): a failed export never
    leaves half a file, a device or pipe is written through, a symbolic link stays one."""
    from agent.outfile import write_output

    write_output(path, text.encode("utf-8"))
