"""Scan orchestration: resolve and pin each asset, run its probes, build the record.

One scan run shares one pin table, HTTP client and connector; per-address
concurrency and budgets live in one :class:`AddressLimits` the command or
daemon makes and passes in ``ScanOptions``, so they hold across every scan and
job of the process. Each resolved address passes the address policy first. Each probe runs
under its own deadline; a probe that fails becomes an error value on the scan
and never stops the others. Each finished scan is handed to ``on_done`` at
once (the CLI and daemon store it), so a crash loses only scans in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from agent.checks import AgentCheck
from agent.scanning import neighbours
from agent.scanning.options import ScanOptions, ScanOutcome, asset_record
from agent.targets import AssetSpec
from agent.tracking.resolution import asset_config_hash, observed, probe_config_hash
from probes.base import (
    AssetKind,
    DeadlineExceeded,
    ErrorKind,
    Finding,
    NameNotFound,
    Probe,
    ProbeContext,
    ProbeFailure,
    ProbeResult,
    RunStatus,
    Severity,
    Target,
    error_result,
)
from probes.catalog import Catalog, load_catalog
from probes.net.connector import Connector
from probes.net.dns import Resolution, resolve
from probes.net.http import HttpClient
from probes.net.scope import AddressLimits, IPNetwork, Pins, origin_of, parse_networks
from probes.registry import load_probe, probe_names
from state.records import (
    FindingRecord,
    ProbeRunRecord,
    ScanRecord,
    ScanStatus,
)
from vocab import one_line


def _quiet(task: asyncio.Future[None]) -> None:
    """A release finished after its scan stopped waiting for it: its failure is nobody's to read."""
    if not task.cancelled():
        task.exception()


def _target(spec: AssetSpec, res: Resolution, opts: ScanOptions, quiet: str | None = None) -> Target:
    settings = opts.settings
    if spec.scan_ports is not None:
        settings = {**settings, "ports": {**settings.get("ports", {}), "ports": list(spec.scan_ports)}}
    return Target(
        name=spec.name,
        url=spec.url.normalised,
        scheme=spec.url.scheme,
        host=spec.url.host,
        port=spec.url.port,
        path=spec.url.path,
        kind=AssetKind(spec.kind),
        addresses=res.usable,
        skipped_addresses=dict(res.skipped),
        cname_chain=res.cname_chain,
        allowed_ports=spec.allowed_ports,
        active=(spec.active_probes and quiet is None) or opts.force_active,
        declared=dict(spec.declared),
        settings=settings,
        origins=frozenset(o for o in (origin_of(u) for u in spec.origins) if o is not None),
    )


DNS_CHECK = AgentCheck.DNS_UNEXPECTED_ADDRESS.value


def dns_result(spec: AssetSpec, res: Resolution) -> ProbeResult | None:
    """The scan's "dns" run when the asset lists expected addresses: ok, or the finding."""
    if spec.addresses is None:
        return None
    findings: tuple[Finding, ...] = ()
    if res.unexpected:
        findings = (Finding(DNS_CHECK, key=spec.url.host, evidence={
            "reason": f"{spec.url.host} resolved outside its expected addresses; not probed",
            "addresses": list(res.unexpected),
            "expected": list(spec.addresses),
            "answers": list(res.addresses),
            "resolver": res.resolver,
        }),)
    return ProbeResult(probe="dns", status=RunStatus.OK, observations=res.to_json(), findings=findings)


def finding_records(result: ProbeResult, catalog: Catalog, overrides: dict[str, str]) -> tuple[FindingRecord, ...]:
    out = []
    for f in result.findings:
        check = catalog[f.check_id]
        severity = f.severity or Severity(overrides.get(f.check_id, check.severity))
        evidence = dict(f.evidence)
        if f.severity is not None and f.severity_reason:
            evidence.setdefault("severity_reason", f.severity_reason)
        out.append(FindingRecord(check_id=f.check_id, key=f.key, severity=severity, evidence=evidence))
    return tuple(out)


def _run_record(result: ProbeResult, started: datetime, finished: datetime, opts: ScanOptions,
                catalog: Catalog, target: Target) -> ProbeRunRecord:
    try:
        findings = finding_records(result, catalog, opts.severity_overrides)
    except KeyError as exc:  # a probe named a check the catalog lacks: a bug, recorded as such
        result = error_result(result.probe, exc, observations=result.observations)
        findings = ()
    return ProbeRunRecord(
        probe=result.probe,
        status=result.status,
        started_at=started,
        finished_at=finished,
        observations=dict(result.observations),
        findings=findings,
        error_kind=result.error.kind.value if result.error else None,
        error=result.error.message if result.error else None,
        skip_reason=result.skip_reason,
        observed=observed(result.probe, result.observations, target),
        config_hash=probe_config_hash(target, result.probe, opts.severity_overrides),
    )


def scan_status(results: Sequence[ProbeResult]) -> ScanStatus:
    """``complete``: every step and probe that applies ran and succeeded. ``failed``: the service
    was not reached, or nothing that ran succeeded. Anything else skipped or failed: ``partial``."""
    from agent.scanning.reach import STEP

    if any(r.probe == STEP and r.status is RunStatus.ERROR for r in results):
        return ScanStatus.FAILED
    if all(r.status is RunStatus.OK and not r.skip_reason for r in results):
        return ScanStatus.COMPLETE
    probes = [r for r in results if r.probe != STEP]
    if probes and not any(r.status is RunStatus.OK for r in probes) and any(
            r.status is RunStatus.ERROR for r in probes):
        return ScanStatus.FAILED
    return ScanStatus.PARTIAL


class Scanner:
    """Runs scans for one invocation (CLI command or daemon cycle)."""

    def __init__(self, opts: ScanOptions) -> None:
        self.opts = opts
        self.catalog = load_catalog()
        limits = opts.limits
        shared = opts.address_limits or AddressLimits(
            limits.per_host_concurrency, limits.host_budget, window=limits.budget_window
        )
        self.allow = parse_networks(opts.allow)
        self.pins = Pins(per_host_concurrency=limits.per_host_concurrency, host_budget=limits.host_budget,
                         limits=shared, allow=self.allow)
        self.http = HttpClient(self.pins, limits)
        self._answers: dict[str, asyncio.Task[tuple[str, ...]]] = {}  # host -> a neighbour's DNS answers

    async def aclose(self) -> None:
        await self.http.aclose()

    def selected(self) -> list[str]:
        return list(self.opts.probes) if self.opts.probes else probe_names()

    async def scan_many(
        self,
        specs: Sequence[AssetSpec],
        on_done: Callable[[ScanOutcome], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        keep: bool = True,  # False: only on_done sees each outcome (a worker process hands them on)
    ) -> list[ScanOutcome]:
        gate = asyncio.Semaphore(self.opts.concurrency)
        outcomes: list[ScanOutcome] = []
        done = 0

        async def one(spec: AssetSpec) -> None:
            nonlocal done
            async with gate:
                outcome = await self.scan(spec)
            done += 1
            if keep:
                outcomes.append(outcome)
            if on_done:
                on_done(outcome)
            if on_progress:
                on_progress(done, len(specs))

        # Every scan ends before this does, even when stopped: a plain gather would end at the
        # first scan that raised CancelledError, and the stop that follows would cancel the others
        # again while they record themselves as interrupted (their records lost).
        for result in await asyncio.gather(*(one(s) for s in specs), return_exceptions=True):
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        order = {s.name: i for i, s in enumerate(specs)}
        outcomes.sort(key=lambda o: order.get(o.asset.name, 0))
        return outcomes

    async def scan(self, spec: AssetSpec) -> ScanOutcome:
        from agent.scanning import reach

        clock, opts = self.opts.clock, self.opts
        started = clock()
        allow = (*self.allow, *parse_networks(spec.allow_addresses))
        expected = parse_networks(spec.addresses) if spec.addresses is not None else None
        try:
            res = await self._resolve(spec.name, spec.url.host, allow, expected)
        except NameNotFound as exc:  # the configured name itself does not resolve: nothing can reach it
            step = reach.unreachable(spec.name, one_line(exc), ErrorKind.DNS, {"host": spec.url.host},
                                     spec.configured)
            return self._failed(spec, started, one_line(exc), step=step)
        except ProbeFailure as exc:
            return self._failed(spec, started, one_line(exc))
        checked = dns_result(spec, res)
        if not res.usable:
            # Refused addresses get no probe at all (nmap included); the refusals are on the record.
            why = "; ".join(f"{a}: {r}" for a, r in {**res.skipped, **res.refused}.items())
            reason = f"{spec.url.host} has no address this machine can probe ({why})"
            if res.refused and not res.skipped:
                reason = (f"every address of {spec.url.host} was refused by the address policy ({why}); "
                          "nothing was probed")
            return self._failed(spec, started, reason, res, checked)
        # This asset's own pins: another asset naming the same host (resolved apart, perhaps to other
        # addresses, under its own allow-list) must not re-point this one's connections.
        pins = self.pins.for_asset()
        pins.add(spec.url.host, res.usable, allow)
        quiet = opts.quiet(spec, started) if opts.quiet else None
        target = _target(spec, res, opts, quiet)
        held = await neighbours.guard(spec, res.usable, started, opts, self._neighbour_answers)
        if held.endpoint:
            target = dataclasses.replace(target, active=False)
        origin_dns = await self._pin_origins(target, allow, pins)
        http = self.http.scoped(target.scope, pins)
        connector = Connector(pins, connect_timeout=opts.limits.connect_timeout)
        try:
            return await self._scan_pinned(spec, started, res, checked, target, quiet, origin_dns, http, connector,
                                           held)
        finally:
            # The asset's pools and TLS sessions are not kept for the rest of the run. Shielded: a
            # second cancellation (a stop while an interrupted scan closes its connections) must
            # not cost the record of the scan (the release goes on, and the outcome is returned).
            release = asyncio.ensure_future(http.release())
            try:
                await asyncio.shield(release)
            except asyncio.CancelledError:
                release.add_done_callback(_quiet)

    async def _scan_pinned(self, spec: AssetSpec, started: datetime, res: Resolution, checked: ProbeResult | None,
                           target: Target, quiet: str | None, origin_dns: dict[str, Any],
                           http: HttpClient, connector: Connector, held: neighbours.Guard) -> ScanOutcome:
        from agent.scanning import reach

        clock, opts = self.opts.clock, self.opts
        t0 = clock()
        reached = await reach.collect(target, connector, opts.limits.connect_timeout)
        step = reach.judged(target, reached, spec.configured)
        for (address, port, server_name), cap in reached.captured.items():
            if cap.session is not None:  # the HTTP probes resume the reach's session, not sign anew
                http.offer_session(target.host, address, port, server_name, cap.session)
        ctx = ProbeContext(
            http=http,
            connector=connector,
            clock=clock,
            limits=opts.limits,
            ca_bundle=opts.ca_bundle,
            resolver=opts.resolver,
            captured=reached.captured,  # the reach's handshake is the tls probe's capture
        )
        runs: dict[str, tuple[ProbeResult, datetime, datetime]] = {reach.STEP: (step, t0, clock())}
        probes: list[Probe] = []
        passive_why = (f"left alone for a neighbour: {held.endpoint}" if held.endpoint
                       else f"quiet hours: {quiet}" if quiet else "active probes are not allowed for this asset")
        # Whether a probe applies is judged as if active probes were allowed: one that applies
        # but may not run now is recorded as skipped (and the scan is then partial).
        full_target = dataclasses.replace(target, active=spec.active_probes or opts.force_active)
        for name in probe_names():
            try:
                probe = load_probe(name)
            except Exception as exc:  # a probe that cannot even load is an error on this scan, not a crash
                now = clock()
                runs[name] = (error_result(name, exc), now, now)
                continue
            if not probe.applies(full_target) or (probe.active and not full_target.active):
                continue  # not part of this asset's scan (e.g. no TLS on http://, active probes off in config)
            now = clock()
            if name not in self.selected():
                runs[name] = (ProbeResult.skipped(name, "not requested (--probe narrowed the scan)"), now, now)
            elif step.status is RunStatus.ERROR:
                runs[name] = (ProbeResult.skipped(name, "not run: the service could not be reached"), now, now)
            elif probe.active and not target.active:
                runs[name] = (ProbeResult.skipped(name, passive_why), now, now)
            elif getattr(probe, "holds_host", False) and held.address:
                runs[name] = (ProbeResult.skipped(name, f"left alone for a neighbour: {held.address}"), now, now)
            else:
                probes.append(probe)

        # A passive probe with an active part (edge's two extra requests) that had to leave it
        # out in a quiet window ran only in part: the scan is then not complete.
        held_back = f"active part skipped: {passive_why}" if full_target.active and not target.active else None

        async def run(probe: Probe) -> None:
            t0 = clock()
            result = await self._run_probe(probe, target, ctx)
            if held_back and getattr(probe, "active_part", False) and result.status is RunStatus.OK:
                result = dataclasses.replace(result, skip_reason=held_back)
            runs[probe.name] = (result, t0, clock())

        try:
            # A probe that holds every connection slot of the address (the port scan) runs after the
            # others: run beside them it would starve their requests into timeouts, and a timeout
            # is not what the server said.
            await asyncio.gather(*(run(p) for p in probes if not getattr(p, "holds_host", False)))
            await asyncio.gather(*(run(p) for p in probes if getattr(p, "holds_host", False)))
            interrupted = False
        except asyncio.CancelledError:
            interrupted = True
        ordered = [runs[n] for n in (reach.STEP, *probe_names()) if n in runs]
        if checked is not None:
            ordered.insert(0, (checked, started, started))
        results = [r for r, _, _ in ordered]
        status = ScanStatus.INTERRUPTED if interrupted else scan_status(results)
        error = "interrupted before every probe finished" if interrupted else None
        if step.error is not None:
            error = step.error.message
        record = ScanRecord(
            asset=asset_record(spec),
            status=status,
            started_at=started,
            finished_at=clock(),
            posture_version=opts.posture_version,
            catalog_version=self.catalog.version,
            config_hash=opts.config_hash,
            probe_runs=tuple(_run_record(r, a, b, opts, self.catalog, target) for r, a, b in ordered),
            trigger=opts.trigger,
            full=opts.probes is None or set(self.selected()) >= {n for n in runs if n != reach.STEP},
            forced_active=opts.force_active and target.active and not (spec.active_probes and quiet is None),
            dns={**res.to_json(), "origins": origin_dns} if origin_dns else res.to_json(),
            error=error,
            asset_config_hash=asset_config_hash(spec, target.settings, opts.severity_overrides),
        )
        return ScanOutcome(spec, record, results, res)

    async def _run_probe(self, probe: Probe, target: Target, ctx: ProbeContext) -> ProbeResult:
        deadline = self.opts.limits.probe_deadline
        try:
            async with asyncio.timeout(deadline + 2):
                return await probe.run(target, ctx)
        except TimeoutError:
            return error_result(probe.name, DeadlineExceeded(f"probe {probe.name} exceeded {deadline:g}s"))
        except Exception as exc:  # the contract says probes return errors; a bug must not sink the scan
            return error_result(probe.name, exc)

    async def _pin_origins(self, target: Target, allow: tuple[IPNetwork, ...], pins: Pins) -> dict[str, Any]:
        """Resolve and pin the hosts of origins the asset lists, under the same address policy.

        Returns what each resolution gave (refusals included), for the scan's dns record.
        """
        seen: dict[str, Any] = {}
        for host in sorted({h for _, h, _ in target.origins} - {target.host}):
            try:
                res = await self._resolve(target.name, host, allow)
            except ProbeFailure as exc:
                seen[host] = {"error": one_line(exc)}  # requests to it fail as out of scope, saying why
                pins.refuse(host, one_line(exc))
                continue
            seen[host] = res.to_json()
            if res.usable:
                pins.add(host, res.usable, allow)
            else:
                why = "; ".join(f"{a}: {r}" for a, r in {**res.skipped, **res.refused}.items())
                pins.refuse(host, f"no address this machine may probe ({why or 'no answer'})")
        return seen

    async def _neighbour_answers(self, other: AssetSpec) -> tuple[str, ...]:
        """Every address the DNS gave for a neighbour's host (once per run); () when it gave none."""
        host = other.url.host
        task = self._answers.get(host)
        if task is None:
            task = self._answers[host] = asyncio.ensure_future(self._answers_of(other))
        return await asyncio.shield(task)

    async def _answers_of(self, other: AssetSpec) -> tuple[str, ...]:
        try:
            res = await self._resolve(other.name, other.url.host, ())
        except ProbeFailure:
            return ()
        return tuple(res.addresses)

    async def _resolve(self, name: str, host: str, allow: tuple[IPNetwork, ...],
                       expected: tuple[IPNetwork, ...] | None = None) -> Resolution:
        known = self.opts.resolved.get((name, host))
        if isinstance(known, ProbeFailure):
            raise known
        if known is not None:
            return known
        return await resolve(host, self.opts.resolver, timeout=self.opts.dns_timeout, allow=allow,
                             expected=expected)

    def _failed(self, spec: AssetSpec, started: datetime, error: str, res: Resolution | None = None,
                checked: ProbeResult | None = None, step: ProbeResult | None = None) -> ScanOutcome:
        return failed_outcome(self.opts, self.catalog, spec, started, error, res, checked, step)


def failed_outcome(opts: ScanOptions, catalog: Catalog, spec: AssetSpec, started: datetime, error: str,
                   res: Resolution | None = None, checked: ProbeResult | None = None,
                   step: ProbeResult | None = None) -> ScanOutcome:
    """A failed scan of ``spec``: every probe that applies on the record as not run, and why."""
    now = opts.clock()
    results = [r for r in (step, checked) if r is not None]
    bare = _target(spec, res or Resolution(spec.url.host, ""), opts)
    bare = dataclasses.replace(bare, active=spec.active_probes or opts.force_active)
    for name in probe_names():
        try:
            probe = load_probe(name)
        except Exception:  # a probe that cannot load is reported by the scans that run it
            continue
        if probe.applies(bare) and not (probe.active and not bare.active):
            results.append(ProbeResult.skipped(name, f"not run: {error}"))
    runs = tuple(_run_record(r, started, now, opts, catalog, bare) for r in results)
    record = ScanRecord(
        asset=asset_record(spec),
        status=ScanStatus.FAILED,
        started_at=started,
        finished_at=opts.clock(),
        posture_version=opts.posture_version,
        catalog_version=catalog.version,
        config_hash=opts.config_hash,
        trigger=opts.trigger,
        full=opts.probes is None,
        probe_runs=runs,
        dns=res.to_json() if res else {},
        error=error,
    )
    return ScanOutcome(spec, record, results, res)
