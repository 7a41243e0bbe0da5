"""``posture config check``: validate a config and show the assets it defines."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="configuration commands")
    csub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    csub.required = True
    check = csub.add_parser("check", help="validate the config and print the assets it defines")
    check.add_argument("--format", choices=("table", "json"), default="table")
    check.set_defaults(func=check_config)


def check_config(args: argparse.Namespace) -> int:
    import sys

    from agent.config import load_config
    from agent.config_checks import config_source, problems
    from agent.notify.channels import channels
    from agent.output import dump_json
    from agent.session import mask_url
    from agent.targets import display_name, display_url
    from vocab import escape

    cfg, digest = load_config(args.config)
    source = config_source(args.config)
    read = str(source) if source else None
    found = problems(cfg)
    if found:
        shown = read or "the defaults"
        if args.format == "json":
            dump_json({"valid": False, "config_file": read, "config_hash": digest, "problems": found})
        for p in found:
            sys.stderr.write(f"posture: {escape(shown)}: {escape(p)}\n")
        return 2
    specs = cfg.asset_specs()
    db_url: str | None = args.db or cfg.agent.database
    database = mask_url(db_url) if db_url else "default"
    chans = [(c.index, c.label, sorted(c.events)) for c in channels(cfg)]  # masked: scheme://host and name
    if args.format == "json":
        dump_json(
            {
                "valid": True,
                "config_file": read,
                "config_hash": digest,
                "database": database,
                "channels": [{"index": i, "channel": label, "events": ev} for i, label, ev in chans],
                "assets": [
                    {
                        "name": display_name(s.name),
                        "url": display_url(s.url.normalised),
                        "kind": s.kind,
                        "allowed_ports": sorted(s.allowed_ports) if s.allowed_ports is not None else None,
                        "active_probes": s.active_probes,
                        "declared": s.declared,
                    }
                    for s in specs
                ],
            }
        )
        return 0
    print(f"read {read}" if read else "read no config file (none given, none in the default places): defaults")
    print(f"config OK ({digest}): {len(specs)} asset(s)")
    for s in specs:
        extras = []
        if s.allowed_ports is not None:
            extras.append("ports " + ",".join(str(p) for p in sorted(s.allowed_ports)))
        if not s.active_probes:
            extras.append("passive only")
        if s.declared:
            extras.append("declared " + ", ".join(sorted(s.declared)))
        suffix = f"  ({'; '.join(extras)})" if extras else ""
        print(f"  {display_name(s.name):<24} {s.kind:<8} {display_url(s.url.normalised)}{suffix}")
    print(f"database: {database}")
    print(f"{len(chans)} notification channel(s)")
    for i, label, ev in chans:
        print(f"  notify[{i}] {label}  ({', '.join(ev)})")
    return 0
