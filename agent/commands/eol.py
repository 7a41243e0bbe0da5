"""``posture eol``: the end-of-life data behind software.eol.

The machine running posture may have no internet, so the data file is
refreshed from an export the user brings (endoflife.date's API format).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.errors import UsageError
from vocab import escape


def register(sub: Any) -> None:
    p = sub.add_parser("eol", help="end-of-life data (software.eol)")
    esub = p.add_subparsers(dest="eol_command", metavar="SUBCOMMAND")
    esub.required = True
    refresh = esub.add_parser("refresh", help="update the end-of-life data from a JSON export (endoflife.date format)")
    refresh.add_argument("file", metavar="FILE", help="the export: endoflife.date API JSON, keyed by product")
    refresh.add_argument("-o", "--output", metavar="PATH",
                         help="where to write (default: [ports] eol_data, else eol.json in the state directory)")
    refresh.set_defaults(func=refresh_data)
    show = esub.add_parser("show", help="print the end-of-life data in use (a table; JSON with --format json)")
    show.add_argument("product", nargs="?", metavar="PRODUCT", help="only this product (key, name or alias)")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(func=show_data)


def refresh_data(args: argparse.Namespace) -> int:
    from agent.scanning.eol_file import data_in_use, default_path
    from agent.session import Session
    from probes.eol.data import load_eol_data, refresh_from_export, write_eol_data
    from vocab import DataFileError

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
    except DataFileError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    from agent.outfile import output_errors

    with output_errors():  # a refused path is exit 2, a failed write (a full disk) exit 1
        write_eol_data(output, fresh)
    changed = sorted(set(fresh.products) - set(current.products))
    print(f"end-of-life data written to {output}" + (f" (new products: {', '.join(changed)})" if changed else ""))
    return 0


def show_data(args: argparse.Namespace) -> int:
    from agent.output import dump_json
    from agent.scanning.eol_file import data_in_use
    from agent.session import Session
    from probes.eol.data import load_eol_data

    session = Session.from_args(args)
    path = data_in_use(session.config.ports.eol_data)
    data = load_eol_data(path)
    products = sorted(data.products.values(), key=lambda p: p.key)
    if args.product:
        found = data.product_for(args.product)
        if found is None:
            raise UsageError(f"no product {args.product!r} in the end-of-life data (posture eol show lists them)")
        products = [found]
    if args.format == "json":
        doc = data.to_json()
        if args.product:
            doc["products"] = {p.key: p.to_json() for p in products}
        dump_json(doc)
        return 0
    today = session.clock_now().astimezone(ZoneInfo(session.config.agent.timezone)).date()
    print(f"end-of-life data: {path or 'built in'} (updated {data.updated.isoformat()})")
    print(f"source: {escape(data.source)}")
    rows = [("PRODUCT", "CYCLE", "RELEASED", "END OF LIFE", "LATEST", "STATUS")]
    for p in products:
        for c in p.cycles:
            rows.append((p.name, c.cycle, c.release_date.isoformat() if c.release_date else "-",
                         _eol_text(c.eol), c.latest or "-", _status(c.eol, today)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(escape(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    print(f"{len(products)} product(s), {len(rows) - 1} release cycle(s); status as of {today.isoformat()}")
    return 0


def _eol_text(eol: dt.date | bool) -> str:
    if isinstance(eol, bool):
        return "yes (no date)" if eol else "not announced"
    return eol.isoformat()


def _status(eol: dt.date | bool, today: dt.date) -> str:
    if isinstance(eol, bool):
        return "ended" if eol else "supported"
    days = (eol - today).days
    if days < 0:
        return f"ended {-days} day{'s' if days != -1 else ''} ago"
    if days == 0:
        return "ends today"
    return f"supported, {days} day{'s' if days != 1 else ''} left"
