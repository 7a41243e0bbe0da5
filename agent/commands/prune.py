"""``posture prune --older-than AGE [--force]``: delete old scan history.

Scan history is audit evidence (kept at least three years, CC-19000 / retention rules):
an age under three years is refused unless --force says so. Findings and their
events stay whatever the age: only scans, their probe runs, third-party scan
reports and settled notification records go.
"""

from __future__ import annotations

import argparse
from typing import Any

from agent.errors import UsageError

RETENTION_YEARS = 3


def register(sub: Any) -> None:
    p = sub.add_parser("prune", help="delete scan history older than an age (three years at least, unless --force)")
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 3y, 5y, 1200d (y, w, d, h, m, s)")
    p.add_argument("--force", action="store_true", help="allow an age under three years (audit evidence!)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent.output import dump_json, iso
    from agent.session import Session
    from agent.when import before, years_before
    from state import deliveries, external_scans

    session = Session.from_args(args)
    now = session.clock_now()
    cutoff = before(now, args.older_than, "--older-than")
    floor = years_before(now, RETENTION_YEARS)
    if cutoff > floor and not args.force:
        raise UsageError(f"--older-than {args.older_than} would delete scans younger than {RETENTION_YEARS} years "
                         f"(kept as audit evidence); add --force to do it anyway")
    with session.open_store() as store:
        counts = {
            "scans": store.prune_scans(cutoff),
            "third_party_scans": external_scans.prune(store, cutoff),
            "deliveries": deliveries.prune(store, cutoff),
        }
    if args.format == "json":
        dump_json({"before": iso(cutoff), "forced": cutoff > floor, "deleted": counts})
    else:
        print(f"pruned history before {iso(cutoff)}: {counts['scans']} scan(s), "
              f"{counts['third_party_scans']} third-party scan(s), {counts['deliveries']} notification record(s)")
    return 0
