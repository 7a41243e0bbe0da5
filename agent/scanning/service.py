"""The scan service: what ``posture scan``, ``posture demo``, ``run --once`` and the daemon share.

A caller says what it wants in a :class:`ScanRequest` (the command builds it from its
arguments; the scheduler asks for the defaults with ``Trigger.SCHEDULED``);
:func:`scan_options` turns it and the session's config into the runner's
:class:`~agent.scanning.options.ScanOptions`, refusing bad input in one line;
:func:`select_assets` picks the assets a scan covers; :func:`scan_and_store` scans them
and stores each scan as it finishes; :func:`register_assets` stores the configured assets
(a new one counts for cadence from the moment it is registered).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from agent.errors import UsageError
from agent.targets import AssetSpec, display_url, parse_target_url
from state.records import Trigger
from vocab import AssetKind, escape

if TYPE_CHECKING:
    from agent.scanning.options import ScanOptions, ScanOutcome
    from agent.session import Session
    from state.store import Store
    from state.views import AssetInfo

T = TypeVar("T")

@dataclass(frozen=True)
class ScanRequest:
    """What a caller asks of a scan beyond the config (each None: the config's, or every probe)."""

    probes: tuple[str, ...] | None = None  # None: every probe that applies (only then a full scan)
    ca_bundle: str | None = None  # extra trust anchors (PEM), over [agent] ca_bundle
    resolver: str | None = None  # IP[:PORT], over [agent] resolver
    force_active: bool = False  # send active probes even in quiet hours (recorded)
    trigger: Trigger = Trigger.MANUAL


def bare_host(raw: str) -> str:
    """A bare host name (``www.example.test``, ``host:8443``, ``host/path``) means ``https://host/``."""
    text = raw.strip()
    if text and "://" not in text:
        return f"https://{text}"
    return raw


def select_assets(session: Session, urls: list[str]) -> list[AssetSpec]:
    """The configured assets named by ``urls`` (or all of them); an unconfigured URL is scanned ad hoc."""
    configured = session.config.asset_specs()
    if not urls:
        if not configured:
            raise UsageError("no URL given and no assets configured (see posture config check)")
        return configured
    by_url = {a.url.normalised: a for a in configured}
    specs: list[AssetSpec] = []
    for raw in urls:
        parsed = parse_target_url(bare_host(raw))
        spec = by_url.get(parsed.normalised) or AssetSpec(
            name=display_url(parsed.normalised), url=parsed, kind=AssetKind.WEBSITE, configured=False
        )
        if spec.name not in {s.name for s in specs}:
            specs.append(spec)
    return specs


def scan_options(session: Session, request: ScanRequest) -> ScanOptions:
    """The runner's options for ``request`` under the session's config; UsageError on bad input."""
    from agent import __version__
    from agent.scanning.options import ScanOptions, make_clock
    from agent.scanning.quiet_policy import QuietPolicy
    from probes.base import Limits
    from probes.registry import probe_names

    cfg = session.config
    if request.probes:
        unknown = [p for p in request.probes if p not in probe_names()]
        if unknown:
            raise UsageError(f"unknown probe {unknown[0]!r} (known: {', '.join(probe_names())})")
    ca_bundle = request.ca_bundle or cfg.agent.ca_bundle
    if ca_bundle:  # parsed as the tls probe reads it: a bundle that adds no CA would make every asset untrusted
        from probes.tls.trust import ca_bundle_problem

        why = ca_bundle_problem(ca_bundle)
        if why:
            raise UsageError(f"{'--ca-bundle' if request.ca_bundle else 'agent.ca_bundle (config)'}: {why}")
    _check_eol_data(cfg.ports.eol_data)
    resolver = request.resolver or cfg.agent.resolver
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
        probes=tuple(dict.fromkeys(request.probes)) if request.probes else None,
        resolver=resolver,
        ca_bundle=ca_bundle,
        limits=limits,
        settings=probe_settings(cfg),
        severity_overrides=dict(cfg.severity),
        concurrency=cfg.agent.concurrency,
        force_active=request.force_active,
        trigger=request.trigger,
        quiet=QuietPolicy.from_config(cfg).reason,
        allow=allow,
        neighbours=tuple(cfg.asset_specs()),
        # One per command: every scan and job it runs shares these per-address limits.
        address_limits=AddressLimits(limits.per_host_concurrency, limits.host_budget, window=limits.budget_window),
    )


def _check_eol_data(configured: str | None) -> None:
    """UsageError when the end-of-life data file a scan would use does not parse: every http and ports
    probe would fail on it, and every scan would end partial."""
    from agent.scanning.eol_file import data_in_use, data_problem

    path = data_in_use(configured)
    why = data_problem(path) if path else None
    if why:
        where = "ports.eol_data (config)" if configured else "end-of-life data (posture eol refresh wrote it)"
        raise UsageError(f"{where}: {why}")


def probe_settings(cfg: Any) -> dict[str, dict[str, Any]]:
    """The config's probe sections, plus a refreshed end-of-life file when one exists."""
    from agent.scanning.eol_file import data_in_use

    settings: dict[str, dict[str, Any]] = cfg.probe_settings()
    eol = data_in_use(cfg.ports.eol_data)
    if eol:
        settings["ports"] = {**settings.get("ports", {}), "eol_data": eol}
        settings["eol"] = {"data": eol}  # the shared section the http and ports probes read
    return settings


def scan_and_store(session: Session, specs: list[AssetSpec], opts: ScanOptions, *,
                   on_progress: Callable[[int, int], None] | None = None) -> list[ScanOutcome]:
    """Scan ``specs`` with ``opts`` (from :func:`scan_options`), storing each scan as it finishes.

    Returns the runner's ScanOutcomes in ``specs`` order; ``on_progress(done, total)`` after each.
    """
    import asyncio
    import gc

    from agent.scanning.parallel import process_count

    processes = process_count(session.config.agent.processes, len(specs))
    if processes > 1:  # many assets: every core, assets that share an address in one process
        from agent.scanning.parallel import resolve_all, scan_in_processes, start_server, stop_server

        start_server()  # the workers' fork server imports the scan's modules meanwhile
        try:
            # The store opens (imports, CPU) while the names resolve (waits on the resolver).
            store, resolved = _open_while(session, lambda: asyncio.run(resolve_all(specs, opts)))
            carry_renames(store, session.config.asset_specs())

            def stored(outcome: ScanOutcome) -> None:
                outcome.stored = store.record_scan(outcome.record)

            try:
                return scan_in_processes(specs, opts, processes, resolved, on_done=stored, on_progress=on_progress)
            finally:
                store.close()
        finally:
            stop_server()
    from agent.scanning.runner import Scanner

    store = session.open_store()
    carry_renames(store, session.config.asset_specs())

    def on_done(outcome: ScanOutcome) -> None:
        outcome.stored = store.record_scan(outcome.record)

    from agent.scanning.stopping import StopRequests, stop_requests

    async def go(stops: StopRequests) -> list[ScanOutcome]:
        current = asyncio.current_task()
        if current is not None:
            stops.listen(current)  # SIGTERM, SIGHUP: stop as Ctrl-C does, scans in flight recorded
        scanner = Scanner(opts)
        gc.freeze()  # what the imports made lives to the end: full collections need not walk it
        try:
            return await scanner.scan_many(specs, on_done=on_done, on_progress=on_progress)
        finally:
            await scanner.aclose()

    try:
        with stop_requests() as stops:
            return asyncio.run(go(stops))
    finally:
        store.close()


def _open_while(session: Session, work: Callable[[], T]) -> tuple[Store, T]:
    """``session.open_store()`` in a thread while ``work()`` runs here; both results, or the first
    failure (the store's first: a store that cannot open ends the command before any scan)."""
    import threading

    opened: list[Store] = []
    failed: list[BaseException] = []

    def open_store() -> None:
        try:
            opened.append(session.open_store())
        except BaseException as exc:  # handed to the caller's thread below
            failed.append(exc)

    thread = threading.Thread(target=open_store, name="posture-open-store", daemon=True)
    thread.start()
    try:
        result = work()
    except BaseException:
        thread.join()
        for store in opened:
            store.close()
        raise
    thread.join()
    if failed:
        raise failed[0]
    return opened[0], result


def register_assets(store: Store, specs: Iterable[AssetSpec], now: datetime) -> dict[str, AssetInfo]:
    """Store every configured asset (new ones count for cadence from now); name -> stored info."""
    from agent.scanning.options import asset_record

    specs = list(specs)
    carry_renames(store, specs)
    return {spec.name: store.upsert_asset(asset_record(spec), now) for spec in specs}


def carry_renames(store: Store, specs: Iterable[AssetSpec]) -> list[tuple[str, str]]:
    """A configured asset renamed in the config (same URL, the old name gone from it) keeps its
    stored identity: scans, findings, first-seen dates and deadlines. Without this the next scan
    would open the same weaknesses anew with fresh deadlines, and the old ones, overdue, would
    be orphaned under a name no scan or alert reaches. (old, new) of each rename made."""
    import sys

    configured = [s for s in specs if s.configured]
    names = {s.name for s in configured}
    stored = store.assets()
    known = {a.name for a in stored}
    done = []
    for spec in configured:
        if spec.name in known:
            continue
        url = spec.url.normalised
        orphans = [a for a in stored if a.configured and a.name not in names and a.url == url]
        if len(orphans) != 1:  # none, or ambiguous: a new asset
            continue
        old = orphans[0].name
        store.rename_asset(old, spec.name)
        known.discard(old)
        known.add(spec.name)
        stored = [a for a in stored if a.name != old]
        done.append((old, spec.name))
        sys.stderr.write(f"posture: asset {escape(old)!r} is now {escape(spec.name)!r} (same URL): its scans "
                         "and findings carry over\n")
    return done

