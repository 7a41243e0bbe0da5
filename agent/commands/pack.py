"""``posture pack --period 2026H1 -o DIR``: (re)build the declaration pack of a half year from history."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("pack", help="build the half-yearly declaration pack (report, duty evidence, SHA256SUMS)",
                       description="Write the declaration pack of a past half year into DIR: the evidence report "
                                   "(HTML, CSV, JSON, PDF when available), the duty records with their evidence "
                                   "files, a manifest, and SHA256SUMS (verify with: sha256sum -c SHA256SUMS). "
                                   "Built from history only: a rebuild is identical in content.")
    p.add_argument("--period", required=True, metavar="YYYYH1|YYYYH2", help="the half year, e.g. 2026H1")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the pack directory (new, empty or a pack)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from agent import __version__
    from agent.errors import StorageUnavailable, UsageError
    from agent.output import dump_json
    from agent.report.pack import build
    from agent.session import Session
    from schedules.duties import parse_half
    from state.errors import StoreError

    try:
        half = parse_half(args.period)
    except ValueError as exc:
        raise UsageError(f"--period {exc}") from None
    session = Session.from_args(args)
    with session.open_store() as store:
        try:
            pack = build(session.config, store, half, Path(args.output), session.clock_now(), __version__)
        except StoreError as exc:
            raise StorageUnavailable(str(exc)) from None
    if args.format == "json":
        dump_json({"period": half.label, "directory": str(pack.directory),
                   "window_last_day": half.window_last.isoformat(), "manifest_sha256": pack.manifest_sha256,
                   "files": [{"path": p, "sha256": h, "size": n} for p, h, n in pack.files]})
    else:
        print(f"pack {half.label}: {len(pack.files)} files in {pack.directory} (verify: cd {pack.directory} && "
              f"sha256sum -c SHA256SUMS); declaration window ends {half.window_last}")
    return 0
