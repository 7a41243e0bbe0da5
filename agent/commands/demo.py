"""``posture demo``: start the built-in lab, scan it with every probe, report, send the digest, stop.

The lab (:mod:`agent.demo`) runs on 127.0.0.0/8 without root or internet. The
scan goes through the same service as ``posture scan`` (``scan_options`` and
``scan_and_store`` of :mod:`agent.scanning.service`) with a config the demo
writes for the lab; the report and the digest go through the ``posture report``
and ``posture digest --send`` commands themselves, so the demo shows exactly
what those commands do. Everything the demo starts is stopped before it exits,
except with ``--keep``, which leaves the lab up until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.demo.check import SiteCheck
    from agent.demo.lab import Lab
    from agent.session import Session


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="scan a built-in lab of local sites, each showing one kind of finding (no root, no internet)",
        description="Start a lab of local sites on 127.0.0.0/8 (one clean, the others each with one thing "
                    "wrong), scan it with every probe, print the findings, write the evidence report, send "
                    "the digest to a local sink, and stop everything. Takes under a minute.",
    )
    p.add_argument("--keep", action="store_true",
                   help="leave the lab running after the demo, to explore it, until Ctrl-C")
    # Not dest="db": a subcommand default would overwrite the global --db.
    p.add_argument("--db", dest="demo_db", metavar="URL",
                   help="store the scans here (default: a new SQLite file in the demo's directory)")
    p.add_argument("--report", metavar="FILE",
                   help="write the evidence report here (.html, .csv, .json or .pdf; default: the demo's directory)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tempfile

    from agent.demo.lab import Lab, LabError
    from agent.errors import AgentError
    from agent.session import mask_url

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="posture-demo-"))
    db_url = args.demo_db or args.db or f"sqlite:///{workdir / 'posture-demo.db'}"
    report = Path(args.report) if args.report else workdir / "posture-demo-report.html"
    out = sys.stdout
    lab = Lab(workdir)
    problems: list[str] = []
    with _stop_on_sigterm():
        try:
            try:
                lab.start()
            except (LabError, OSError) as exc:
                raise AgentError(f"the demo lab could not start: {exc}") from None
            _intro(lab, workdir)
            checks = _scan(lab, args, workdir, db_url)
            failed = [c for c in checks if not c.passed]
            if failed:
                problems.append(f"{len(failed)} lab site(s) did not show what they were built to show")
            config = workdir / "posture-demo.toml"
            if not _report(config, db_url, report, args.now):
                problems.append("the evidence report was not written")
            if not _digest(lab, config, db_url, args.now):
                problems.append("the digest did not reach the sink")
            db_arg, note = db_hint(db_url)
            out.write(f"Database: {mask_url(db_url)}\n  try: {command()} --db {db_arg} findings\n{note}")
            if args.keep:
                keep_running(lab, config, db_url)
        finally:
            lab.stop()
            _forget_keys(workdir)
    out.write(f"Lab stopped. The demo took {time.monotonic() - started:.1f} s; its files are in {workdir}\n")
    if problems:
        out.flush()
        sys.stderr.write(f"posture: demo: {'; '.join(problems)}\n")
        return 1
    return 0


# ---------------------------------------------------------------- steps


def _intro(lab: Lab, workdir: Path) -> None:
    out = sys.stdout
    out.write(f"posture demo: the built-in lab is up on {lab.prefix}.0/24 (loopback only; no root, no internet)\n")
    for s in lab.sites:
        out.write(f"  {s.site.asset:<13} {s.url:<44} {s.address:<15} {s.site.defect.value}\n")
    assert lab.sink is not None
    out.write(f"  DNS {lab.resolver} answers the lab's names only; certificates from the lab's own CA "
              f"({lab.ca_bundle.name}); notification sink {lab.sink.apprise_url}\n")


def skips(lab: Lab) -> tuple[list[str], dict[str, str], list[str]]:
    """What this machine cannot do: (probes to run, asset -> why its check cannot hold, notes to print)."""
    import shutil

    from agent.demo.sites import Defect
    from probes.registry import probe_names
    from probes.social.browser import find_chromium, unavailable_reason

    probes = probe_names()
    skipped: dict[str, str] = {}
    notes: list[str] = []
    by_defect = {s.site.defect: s.site.asset for s in lab.sites}
    if shutil.which("nmap") is None:
        probes.remove("ports")
        skipped[by_defect[Defect.OPEN_PORT]] = "nmap is not installed"
        notes.append("nmap is not installed: the ports probe is skipped (Debian: apt-get install nmap)")
    browser = unavailable_reason(find_chromium(None))
    if browser is not None:
        notes.append(f"{browser}: the social probe reads the HTML only (static mode), no browser clicks")
    legacy = lab.legacy_tls_note()
    if legacy is not None:
        skipped[by_defect[Defect.LEGACY_TLS]] = legacy
        notes.append(f"{legacy}: the legacy-tls site cannot show its finding here")
    return probes, skipped, notes


def _scan(lab: Lab, args: argparse.Namespace, workdir: Path, db_url: str) -> list[SiteCheck]:
    from agent.demo.check import check_lab
    from agent.output import Progress, print_scans, scan_json
    from agent.scanning.service import ScanRequest, scan_and_store, scan_options, select_assets
    from agent.session import Session
    from probes.registry import probe_names

    out = sys.stdout
    assert lab.sink is not None
    config = workdir / "posture-demo.toml"
    config.write_text(lab.config_toml(lab.sink.apprise_url), "utf-8")
    probes, skipped, notes = skips(lab)
    for note in notes:
        out.write(f"  note: {note}\n")
    session: Session = Session.from_args(argparse.Namespace(config=str(config), db=db_url, now=args.now))
    specs = select_assets(session, [])
    # probe=None when every probe runs: only then is the scan recorded as a full one (cadence counts it).
    every = probes == probe_names()
    opts = scan_options(session, ScanRequest(probes=None if every else tuple(probes)))
    out.write(f"\nScanning {len(specs)} assets with {', '.join(probes)} (config {config})…\n\n")
    out.flush()
    t0 = time.monotonic()
    display = Progress(enabled=len(specs) > 0)
    try:
        outcomes = scan_and_store(session, specs, opts, on_progress=display.update)
    finally:
        display.close()
    docs = [scan_json(o) for o in outcomes]
    print_scans(docs)
    out.write(f"(scanned in {time.monotonic() - t0:.1f} s)\n\nDid each site show what it was built to show?\n")
    checks = check_lab([s.site for s in lab.sites], docs, skipped)
    for c in checks:
        out.write(f"  {c.line()}\n")
    out.write("\n")
    return checks


def _posture(argv: list[str], now: str | None, *, quiet: bool = False) -> tuple[int, str]:
    """Run a posture command in this process, as a user would type it; returns its exit code and stdout."""
    import contextlib
    import io

    from agent.cli import main

    full = [*(["--now", now] if now else []), *argv]
    sys.stdout.flush()  # what the command says on stderr comes after what the demo said so far
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer) if quiet else contextlib.nullcontext():
        code = main(full)
    return code, buffer.getvalue()


def _command_available(name: str) -> bool:
    import importlib.util

    from agent.command_names import COMMANDS

    return name in COMMANDS and importlib.util.find_spec(f"agent.commands.{name}") is not None


def _report(config: Path, db_url: str, report: Path, now: str | None) -> bool:
    """Write the report through ``posture report``; False when that failed."""
    out = sys.stdout
    if not _command_available("report"):
        # Hook: `posture report` (issue 11) is not in this build; the demo writes no report without it.
        out.write("Evidence report: not written (this build has no `posture report`)\n")
        return True
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from agent.config import load_config
    from agent.session import parse_now

    tz = load_config(str(config))[0].agent.timezone
    day = (parse_now(now, tz) or datetime.now(ZoneInfo(tz))).astimezone(ZoneInfo(tz)).date().isoformat()
    fmt = {".csv": "csv", ".json": "json", ".pdf": "pdf"}.get(report.suffix.lower(), "html")
    code, _ = _posture(["--config", str(config), "--db", db_url, "report", "--from", day, "--to", day,
                        "--format", fmt, "--lang", "en", "-o", str(report)], now)
    if code == 0:
        out.write(f"Evidence report: {report.resolve()}\n")
        return True
    out.write(f"Evidence report: not written (posture report exited {code}; see above)\n")
    return False


def _digest(lab: Lab, config: Path, db_url: str, now: str | None) -> bool:
    """Send the digest through ``posture digest --send``; False when the sink got nothing."""
    out = sys.stdout
    assert lab.sink is not None
    if not _command_available("digest"):
        # Hook: `posture digest --send` (issue 9) is not in this build; nothing is sent without it.
        out.write(f"Digest: not sent (this build has no `posture digest`); the sink {lab.sink.apprise_url} "
                  "stays empty\n")
        return True
    code, _ = _posture(["--config", str(config), "--db", db_url, "digest", "--send"], now, quiet=True)
    received = list(lab.sink.received)
    if not received:
        why = f"posture digest --send exited {code}" if code else "nothing arrived"
        out.write(f"Digest: sent to {lab.sink.apprise_url}, but the sink received nothing ({why})\n")
        return False
    out.write(f"Digest: sent to {lab.sink.apprise_url} and received by the demo's sink "
              f"({len(received)} message(s)):\n")
    for r in received:
        out.write(f"  {r.path}  ({r.size} bytes: {r.summary()})\n")
    return code == 0


def keep_running(lab: Lab, config: Path, db_url: str) -> None:
    """--keep: say how to explore the lab, then wait for Ctrl-C (or SIGTERM, see run)."""
    import threading

    out = sys.stdout
    clean = lab.sites[0]
    posture = command()
    db_arg, note = db_hint(db_url)
    out.write(
        "\nThe lab stays up (--keep). Explore it, for example:\n"
        f"  curl --cacert {lab.ca_bundle} --resolve {clean.site.host}:{clean.port}:{clean.address} {clean.url}\n"
        f"  {posture} --config {config} --db {db_arg} scan          # scan the lab again\n"
        f"  {posture} --config {config} --db {db_arg} findings\n{note}"
        "Press Ctrl-C to stop it.\n"
    )
    out.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        out.write("\n")


def db_hint(db_url: str) -> tuple[str, str]:
    """What the hints type after ``--db``, and a line to print under them. A URL that masking would
    change (a user, a password or a query in it) is never printed: the hints say ``URL`` and the line
    says which URL that is, as masked. posture reads no environment variable for the database URL."""
    import shlex

    from agent.session import mask_url

    if mask_url(db_url) == db_url:
        return shlex.quote(db_url), ""
    return "URL", f"  (URL: the database URL given to --db, {mask_url(db_url)} with its user and password)\n"


def command() -> str:
    """How to type this posture in the hints: ``posture`` when that is it on PATH, else its path."""
    import os
    import shlex
    import shutil

    mine = Path(sys.executable).with_name("posture")  # the virtualenv's entry point beside its python
    if not mine.is_file():
        return f"{shlex.quote(sys.executable)} -m agent"
    found = shutil.which("posture")
    if found is not None and os.path.samefile(found, mine):
        return "posture"
    try:
        relative = str(mine.relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(mine))
    return shlex.quote(relative if "/" in relative else f"./{relative}")


def _forget_keys(workdir: Path) -> None:
    """The lab's private keys are useless once it stops; don't leave them lying around."""
    import shutil

    shutil.rmtree(workdir / "certs", ignore_errors=True)


class _stop_on_sigterm:
    """Turn SIGTERM into KeyboardInterrupt while the lab runs, so it is stopped the same way."""

    def __enter__(self) -> None:
        import signal

        self._previous: Any = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._raise)

    def __exit__(self, *exc: object) -> None:
        import signal

        signal.signal(signal.SIGTERM, self._previous)

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt
