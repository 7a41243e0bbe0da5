"""``posture report``: the evidence report for the half-yearly declaration (HTML, PDF, CSV or JSON)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.report.model import ReportFormat

_PERIOD_HELP = (
    "period start, a date in the agent's time zone (default: the declaration half-year in progress at --now, "
    "1 Jan–30 Jun or 1 Jul–31 Dec, as of --now; for the declaration of the half-year just ended give its dates, "
    "e.g. --from 2025-07-01 --to 2025-12-31)"
)
# What -o's extension asks for. One the report cannot write (not a ReportFormat) is refused.
_EXTENSIONS = {".html": "html", ".htm": "html", ".csv": "csv", ".json": "json", ".pdf": "pdf"}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write the evidence report for a period (scans, findings, deadlines, cadence, charts)",
        description="Write the evidence an auditor asks for at the half-yearly declaration: per asset, every "
                    "scan in the period, each finding with its clause, deadline and fix, and the cadence record. "
                    "States are as of the end of the period (or --now when that is earlier).",
    )
    p.add_argument("--from", dest="since", metavar="DATE", help=_PERIOD_HELP)
    p.add_argument("--to", dest="until", metavar="DATE", help="period end, that day included (default: see --from)")
    p.add_argument("--asset", metavar="NAME", help="only this asset")
    p.add_argument("--format", choices=("html", "pdf", "csv", "json"),
                   help="html, pdf (the HTML printed by Chromium, CJK fonts embedded; needs -o), csv or json "
                        "(default: from the -o file's extension, else html)")
    p.add_argument("--lang", choices=("zh-TW", "en"), default="zh-TW", help="labels and titles (default zh-TW)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write here instead of stdout; .html, .pdf, .csv or .json picks the format "
                        "(a CSV file starts with a UTF-8 BOM for spreadsheets)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agent import __version__
    from agent.report.gather import gather
    from agent.report.model import Lang, ReportFormat
    from agent.report.period import resolve_period
    from agent.session import Session
    from probes.catalog import load_catalog

    fmt = output_format(args.format, args.output)
    if fmt is ReportFormat.PDF and not args.output:
        from agent.errors import UsageError

        raise UsageError("report: a PDF is written to a file: give -o FILE.pdf")
    session = Session.from_args(args)
    now = session.clock_now()
    period = resolve_period(args.since, args.until, now, session.config.agent.timezone)
    lang = Lang(args.lang)
    from agent.errors import StorageUnavailable
    from state.errors import StoreError

    with session.open_store() as store:
        try:
            data = gather(store, session.config, load_catalog(), period=period, now=now, asset=args.asset,
                          posture_version=__version__)
        except StoreError as exc:
            raise StorageUnavailable(str(exc)) from None
    if fmt is ReportFormat.JSON:
        import json

        from agent.report.tabular import report_json

        # One line: without indent the C encoder does the work (a 500-asset report is tens of MB).
        text = json.dumps(report_json(data, lang), ensure_ascii=False) + "\n"
    elif fmt is ReportFormat.CSV:
        from agent.report.tabular import report_csv

        text = report_csv(data, lang)
    else:
        from agent.report.html import render_html

        text = render_html(data, lang)
    if fmt is ReportFormat.PDF:
        from agent.report.pdf import render_pdf

        _write_bytes(args.output, render_pdf(text, session.config.social.chromium))
        return 0
    if args.output:
        _write(args.output, text, bom=fmt is ReportFormat.CSV)
    else:
        import sys

        sys.stdout.write(text)
    return 0


def output_format(given: str | None, output: str | None) -> ReportFormat:
    """--format, or the format -o's extension names; a format this build cannot write is refused."""
    from pathlib import PurePath

    from agent.errors import UsageError
    from agent.report.model import ReportFormat

    writable = [f.value for f in ReportFormat]
    suffix = PurePath(output).suffix.lower() if output else ""
    named = _EXTENSIONS.get(suffix)
    if named is not None and named not in writable:
        raise UsageError(f"report: cannot write {named.upper()} ({output}); "
                         f"the formats are {', '.join(writable)}")
    if given is not None:
        if named is not None and named != given:
            raise UsageError(f"report: --format {given} does not match {output} ({named}); "
                             "give one or the other, or a matching extension")
        return ReportFormat(given)
    if named is not None:
        return ReportFormat(named)
    if output:
        raise UsageError(f"report: cannot tell the format of {output} from its extension; "
                         f"give --format ({', '.join(writable)}) or a .{'/.'.join(writable)} file name")
    return ReportFormat.HTML


def _write(path: str, text: str, *, bom: bool) -> None:
    """Write whole or not at all: a half-written report must never pass for evidence."""
    _write_bytes(path, text.encode("utf-8-sig" if bom else "utf-8"))


def _write_bytes(path: str, content: bytes) -> None:
    """A file is replaced atomically (new: mode 0666 less the umask, as a report is meant to be handed on);
    a symbolic link's target is replaced and the link kept; a device or pipe is written through."""
    from agent.outfile import write_output

    write_output(path, content)
