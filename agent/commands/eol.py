"""``posture eol``: the end-of-life data behind software.eol.

The machine running posture may have no internet, so the data file is
refreshed from an export the user brings (endoflife.date's API format).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.scanning.eol_file import data_in_use, default_path


def register(sub: Any) -> None:
    p = sub.add_parser("eol", help="end-of-life data (software.eol)")
    esub = p.add_subparsers(dest="eol_command", metavar="SUBCOMMAND")
    esub.required = True
    refresh = esub.add_parser("refresh", help="update the end-of-life data from a JSON export (endoflife.date format)")
    refresh.add_argument("file", metavar="FILE", help="the export: endoflife.date API JSON, keyed by product")
    refresh.add_argument("-o", "--output", metavar="PATH",
                         help="where to write (default: [ports] eol_data, else eol.json in the state directory)")
    refresh.set_defaults(func=refresh_data)
    show = esub.add_parser("show", help="print the end-of-life data in use")
    show.set_defaults(func=show_data)


def refresh_data(args: argparse.Namespace) -> int:
    from agent.session import Session
    from probes.eol.data import EolDataError, load_eol_data, refresh_from_export, write_eol_data

    session = Session.from_args(args)
    from probes.files import DATA_MAX, FileRefused, read_text_capped

    try:
        export = json.loads(read_text_capped(args.file, DATA_MAX))
    except FileRefused as exc:
        raise UsageError(str(exc)) from None
    except (RecursionError, json.JSONDecodeError) as exc:
        raise UsageError(f"{args.file}: not a JSON export: {exc}") from None
    current_path = data_in_use(session.config.ports.eol_data)
    output = Path(args.output or session.config.ports.eol_data or default_path())
    try:
        current = load_eol_data(current_path)
        fresh = refresh_from_export(export, current, source=str(args.file), imported_on=session.clock_now().date())
    except EolDataError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    write_eol_data(output, fresh)
    changed = sorted(set(fresh.products) - set(current.products))
    print(f"end-of-life data written to {output}" + (f" (new products: {', '.join(changed)})" if changed else ""))
    return 0


def show_data(args: argparse.Namespace) -> int:
    from agent.output import dump_json
    from agent.session import Session
    from probes.eol.data import load_eol_data

    session = Session.from_args(args)
    dump_json(load_eol_data(data_in_use(session.config.ports.eol_data)).to_json())
    return 0
