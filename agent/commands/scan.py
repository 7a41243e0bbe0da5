"""``posture scan``: scan URLs or every configured asset, store, print."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from agent.errors import UsageError
from agent.targets import AssetSpec, parse_target_url

if TYPE_CHECKING:
    from agent.session import Session


def register(sub: Any) -> None:
    p = sub.add_parser("scan", help="scan URLs (or every configured asset), store and print the result")
    p.add_argument("urls", nargs="*", metavar="URL", help="https://, http://, wss:// or tls://host:port")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--ca-bundle", metavar="PEM", help="extra trust anchors, added to the system store")
    p.add_argument("--resolver", metavar="IP[:PORT]", help="send every DNS query to this server")
    p.add_argument("--probe", action="append", metavar="NAME", help="run only this probe (repeatable)")
    p.add_argument("--force-active", action="store_true",
                   help="send active probes even where the asset or its quiet hours forbid them (recorded)")
    p.set_defaults(func=run)


def select_assets(session: Session, urls: list[str]) -> list[AssetSpec]:
    configured = session.config.asset_specs()
    if not urls:
        if not configured:
            raise UsageError("no URL given and no assets configured (see posture config check)")
        return configured
    by_url = {a.url.normalised: a for a in configured}
    specs: list[AssetSpec] = []
    for raw in urls:
        parsed = parse_target_url(raw)
        spec = by_url.get(parsed.normalised) or AssetSpec(
            name=parsed.normalised, url=parsed, kind="website", configured=False
        )
        if spec.name not in {s.name for s in specs}:
            specs.append(spec)
    return specs


def scan_options(session: Session, args: argparse.Namespace) -> Any:
    from agent import __version__
    from agent.scanning.runner import ScanOptions, make_clock
    from agent.scheduling.quiet_policy import QuietPolicy
    from probes.base import Limits
    from probes.registry import probe_names

    cfg = session.config
    if args.probe:
        unknown = [p for p in args.probe if p not in probe_names()]
        if unknown:
            raise UsageError(f"unknown probe {unknown[0]!r} (known: {', '.join(probe_names())})")
    ca_bundle = args.ca_bundle or cfg.agent.ca_bundle
    if ca_bundle:
        from probes.files import DATA_MAX, FileRefused, read_capped

        try:
            read_capped(ca_bundle, DATA_MAX)
        except FileRefused as exc:
            raise UsageError(f"--ca-bundle {exc}") from None
    resolver = args.resolver or cfg.agent.resolver
    if resolver:
        from probes.net.dns import parse_resolver

        try:
            parse_resolver(resolver)
        except ValueError:
            raise UsageError(f"--resolver must be IP[:PORT], got {resolver!r}") from None
    limits = Limits(
        request_deadline=cfg.agent.request_timeout,
        probe_deadline=cfg.agent.probe_timeout,
        per_host_concurrency=cfg.agent.per_host_concurrency,
        host_budget=cfg.agent.host_budget,
    )
    from probes.net.scope import ALLOW_ENV, AddressLimits, env_allow

    try:
        from_env = env_allow()
    except ValueError as exc:
        raise UsageError(f"{ALLOW_ENV}: {exc}") from None
    allow = tuple(dict.fromkeys([*cfg.agent.allow_addresses, *(str(n) for n in from_env)]))
    return ScanOptions(
        clock=make_clock(session.now),
        config_hash=session.config_hash,
        posture_version=__version__,
        probes=tuple(dict.fromkeys(args.probe)) if args.probe else None,
        resolver=resolver,
        ca_bundle=ca_bundle,
        limits=limits,
        settings=probe_settings(cfg),
        severity_overrides=dict(cfg.severity),
        concurrency=cfg.agent.concurrency,
        force_active=bool(getattr(args, "force_active", False)),
        quiet=QuietPolicy.from_config(cfg).reason,
        allow=allow,
        # One per command: every scan and job it runs shares these per-address limits.
        address_limits=AddressLimits(limits.per_host_concurrency, limits.host_budget, window=limits.budget_window),
    )


def scan_and_store(session: Session, specs: list[AssetSpec], opts: Any, *, progress: bool) -> list[Any]:
    """Scan ``specs`` with ``opts`` (from :func:`scan_options`), storing each scan as it finishes.

    Returns the runner's ScanOutcomes in ``specs`` order; ``posture demo`` runs its lab through here too.
    """
    import asyncio

    from agent.output import Progress
    from agent.scanning.runner import Scanner, ScanOutcome

    store = session.open_store()
    display = Progress(enabled=progress and len(specs) > 0)

    def on_done(outcome: ScanOutcome) -> None:
        outcome.stored = store.record_scan(outcome.record)

    async def go() -> list[ScanOutcome]:
        scanner = Scanner(opts)
        try:
            return await scanner.scan_many(specs, on_done=on_done, on_progress=display.update)
        finally:
            await scanner.aclose()

    try:
        return asyncio.run(go())
    finally:
        display.close()
        store.close()


def probe_settings(cfg: Any) -> dict[str, dict[str, Any]]:
    """The config's probe sections, plus a refreshed end-of-life file when one exists."""
    from agent.commands.eol import data_in_use

    settings: dict[str, dict[str, Any]] = cfg.probe_settings()
    eol = data_in_use(cfg.ports.eol_data)
    if eol:
        settings["ports"] = {**settings.get("ports", {}), "eol_data": eol}
        settings["eol"] = {"data": eol}  # the shared section the http and ports probes read
    return settings


def run(args: argparse.Namespace) -> int:
    from agent.output import dump_json, print_scans, scan_json
    from agent.session import Session

    session = Session.from_args(args)
    specs = select_assets(session, args.urls)
    opts = scan_options(session, args)
    outcomes = scan_and_store(session, specs, opts, progress=args.format == "table")
    docs = [scan_json(o) for o in outcomes]
    if args.format == "json":
        dump_json({"scans": docs})
    else:
        print_scans(docs)
    failed = [d for d in docs if d["status"] == "failed"]
    for d in failed:
        why = d["errors"][0]["error"] if d["errors"] else "no probe succeeded"
        sys.stderr.write(f"posture: scan of {d['target']} failed: {why}\n")
    alert(session, outcomes)
    return 1 if failed else 0


def alert(session: Session, outcomes: list[Any]) -> None:
    """New findings of configured assets are alerted at once: an urgent one never waits for the daemon."""
    from agent.scheduling.cycle import alert_new_findings

    if not outcomes or not session.config.notify:
        return
    now = max(o.record.finished_at for o in outcomes)
    for d in alert_new_findings(session, outcomes, now):
        if not d.ok:
            retry = f"; retried after {d.retry_at.isoformat()}" if d.retry_at else ""
            sys.stderr.write(f"posture: alert to {d.channel} failed: {d.error}{retry}\n")
