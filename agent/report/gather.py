"""From the store to a :class:`ReportData`: a fixed number of bulk queries, whatever the asset count.

The report's moment (``as_of``) is the end of the period, or ``now`` when that is
earlier: states, deadlines and certificate days are as they stood then.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.errors import UsageError
from agent.observed import tls_certificates
from agent.report.details import decision_history, declared_controls, evidence_of
from agent.report.model import (
    AssetReport,
    CertificateEntry,
    ClauseRef,
    FindingEntry,
    Period,
    Policy,
    ProbeError,
    ReportData,
    ScanEntry,
)
from agent.report.timeline import NEEDS_FIX, cadence_record, open_intervals, replay, step_series
from agent.report.watch import gather_watch
from schedules.duties import DutyStatus
from schedules.remediation import DeadlinePolicy, breaks_at, deadline
from state.delivery_views import ExternalScanInfo
from state.records import FindingState, RunStatus, ScanStatus
from state.views import AssetInfo, EventInfo, FindingFilter, FindingInfo
from vocab import severity_position

if TYPE_CHECKING:
    from agent.config import Config
    from agent.targets import AssetSpec
    from probes.catalog import Catalog
    from state.evidence import RunSummary, ScanSummary
    from state.report_reads import Occurrence
    from state.store import Store


def _policy(config: Config, dp: DeadlinePolicy) -> Policy:
    return Policy(dict(dp.days), {k: dict(v) for k, v in dp.per_kind.items()}, dp.reopened_keeps_deadline,
                  config.schedule.cadence_days, config.schedule.cadence_warn_days, config.tls.expiry_warning_days)


def _clauses(catalog: Catalog, check_id: str) -> tuple[str, str, tuple[ClauseRef, ...]]:
    """(title_en, title_zh, clauses) of a check; a check since dropped from the catalog keeps its id."""
    if check_id not in catalog:
        return check_id, check_id, ()
    check = catalog[check_id]
    refs = tuple(
        ClauseRef(c.label, c.source, c.zh, c.en)
        for c in (catalog.clauses.get(label) for label in check.references)
        if c is not None
    )
    return check.title_en, check.title_zh, refs


def _select_assets(store: Store, config: Config, name: str | None, period: Period) -> list[AssetInfo | AssetSpec]:
    """Stored assets that existed in the period, plus configured ones never stored (never scanned)."""
    stored = [a for a in store.assets() if name is None or a.name == name]
    chosen: list[AssetInfo | AssetSpec] = [a for a in stored if a.added_at < period.until]
    known = {a.name for a in stored}
    chosen.extend(spec for spec in config.asset_specs() if spec.name not in known and name in (None, spec.name))
    if name is not None and not chosen:
        raise UsageError(f"no asset named {name!r} in the database or the config")
    return sorted(chosen, key=lambda a: a.name)


def _scan_entry(info: ScanSummary, runs: Sequence[RunSummary], findings: int) -> ScanEntry:
    grade = next((r.grade for r in runs if r.probe == "tls" and r.grade), None)
    errors = tuple(ProbeError(r.probe, r.error_kind, r.error or "error") for r in runs if r.status is RunStatus.ERROR)
    return ScanEntry(
        id=info.id, started_at=info.started_at, finished_at=info.finished_at, status=info.status,
        trigger=info.trigger, full=info.full, counts_for_cadence=_counts(info), grade=grade, findings=findings,
        errors=errors, error=info.error, steps=tuple(_step(r) for r in runs),
    )


def _step(r: RunSummary) -> tuple[str, str, str | None]:
    if r.status is RunStatus.OK:
        return (r.probe, "partly skipped", r.skip_reason) if r.skip_reason else (r.probe, "ran", None)
    if r.status is RunStatus.SKIPPED:
        return r.probe, "skipped", r.skip_reason
    return r.probe, "failed", r.error


def _counts(info: ScanSummary) -> bool:
    return info.status is ScanStatus.COMPLETE and info.full


def _certificates(observations: dict[str, Any], scan: ScanSummary, as_of: datetime) -> tuple[CertificateEntry, ...]:
    return tuple(
        CertificateEntry(address=c.address, subject=c.subject or None, not_after=c.not_after,
                         days_left=int((c.not_after - as_of) / timedelta(days=1)), scan_id=scan.id,
                         seen_at=scan.started_at)
        for c in tls_certificates(observations))


def _finding(
    info: FindingInfo, events: Sequence[EventInfo], kind: str, period: Period, as_of: datetime,
    dp: DeadlinePolicy, catalog: Catalog, seen: Occurrence | None = None,
) -> FindingEntry | None:
    now_state = replay(events, as_of, window_start=period.since) if events else None
    if now_state is None:
        if events or info.first_seen >= as_of:
            return None  # opened after the report's moment
        # No events at all (should not happen): the row as stored is the best evidence there is.
        severity, state, fixed_at, reopened_at, reopened = (info.severity, info.at(as_of).state, info.fixed_at, None,
                                                            info.reopened_count)
        reason, by, until = info.accepted_reason or info.false_positive_reason, info.accepted_by, info.accepted_until
        entered, config = info.accepted_until_entered, None
    else:
        at_start = replay(events, period.since - timedelta(microseconds=1))
        live_at_start = at_start is not None and at_start.state in (*NEEDS_FIX, FindingState.ACCEPTED)
        if not (live_at_start or now_state.changed_between):
            return None  # settled before the period and untouched in it
        severity = now_state.severity or info.severity
        state, fixed_at, reopened_at = now_state.state, now_state.fixed_at, now_state.reopened_at
        reopened = now_state.reopened_count
        reason, by, until = now_state.decision_reason, now_state.decision_by, now_state.accepted_until
        entered, config = now_state.accepted_until_entered, now_state.config_change
    due = deadline(dp, severity, info.first_seen, kind=kind, reopened_at=reopened_at,
                   ends_at=breaks_at(info.evidence, dp.zone()))
    title_en, title_zh, clauses = _clauses(catalog, info.check_id)
    check = catalog.checks.get(info.check_id)
    return FindingEntry(
        id=info.id, check_id=info.check_id, title_en=title_en, title_zh=title_zh, severity=severity,
        clauses=clauses, key=info.key, probe=info.probe, first_seen=info.first_seen, deadline=due, state=state,
        fixed_at=fixed_at if state in (FindingState.FIXED, FindingState.RESOLVED_BY_CONFIG) else None,
        reopened_count=reopened,
        overdue=state in NEEDS_FIX and due is not None and as_of > due,
        fixed_late=state is FindingState.FIXED and due is not None and fixed_at is not None and fixed_at > due,
        decision_reason=reason if state in (FindingState.ACCEPTED, FindingState.FALSE_POSITIVE) else None,
        decision_by=by if state in (FindingState.ACCEPTED, FindingState.FALSE_POSITIVE) else None,
        accepted_until=until if state is FindingState.ACCEPTED else None,
        accepted_until_entered=entered if state is FindingState.ACCEPTED else None,
        config_change=config if state is FindingState.RESOLVED_BY_CONFIG else None,
        remediation_en=check.remediation_en if check else "", remediation_zh=check.remediation_zh if check else "",
        evidence=evidence_of(seen.scan_id, seen.at, seen.evidence) if seen is not None else None,
        history=decision_history(events, as_of),
    )


def gather(
    store: Store,
    config: Config,
    catalog: Catalog,
    *,
    period: Period,
    now: datetime,
    asset: str | None = None,
    posture_version: str,
) -> ReportData:
    from agent.tracking.remediation import deadline_policy
    from state import evidence, external_scans
    from state.report_reads import last_occurrences

    as_of = min(period.until, now)
    dp = deadline_policy(config)
    cadence_days, warn_days = config.schedule.cadence_days, config.schedule.cadence_warn_days
    chosen = _select_assets(store, config, asset, period)
    names = {a.name for a in chosen}

    scans_by_asset: dict[str, list[ScanSummary]] = defaultdict(list)
    for info in evidence.scan_summaries(store, asset=asset, since=period.since, until=as_of):
        if info.asset in names:
            scans_by_asset[info.asset].append(info)
    before = evidence.last_complete_before(store, period.since, asset=asset)
    runs: dict[int, list[RunSummary]] = defaultdict(list)
    for run in evidence.run_summaries(store, asset=asset, since=period.since, until=as_of):
        runs[run.scan_id].append(run)
    counts = evidence.occurrence_counts(store, asset=asset, since=period.since, until=as_of)
    events_by_finding: dict[int, list[EventInfo]] = defaultdict(list)
    for event in evidence.events(store, asset=asset, until=as_of):
        events_by_finding[event.finding_id].append(event)
    # Third-party scans count for the cadence like complete scans of posture's own.
    external: dict[str, list[ExternalScanInfo]] = defaultdict(list)
    for x in external_scans.scans(store, asset, until=as_of):
        external[x.asset].append(x)
    findings_by_asset: dict[str, list[FindingInfo]] = defaultdict(list)
    for f in store.findings(FindingFilter.ALL, asset):
        findings_by_asset[f.asset].append(f)

    # The asset's latest scan in the period with a TLS result: where its certificates come from.
    tls_scan: dict[str, ScanSummary] = {}
    for name in names:
        for info in reversed(scans_by_asset[name]):
            if any(
                r.probe == "tls" and r.status is not RunStatus.SKIPPED for r in runs.get(info.id, ())
            ):
                tls_scan[name] = info
                break
    tls_obs = evidence.run_observations(store, (s.id for s in tls_scan.values()), "tls")
    # The last occurrence of each finding up to the report's moment: the evidence shown beside it.
    last_seen = last_occurrences(store, (f.id for name in names for f in findings_by_asset.get(name, ())), as_of)
    # Declared controls beside what the asset's last edge run in the period observed.
    declared = {spec.name: spec.declared for spec in config.asset_specs() if spec.declared}
    edge_scan: dict[str, int] = {}
    for name in declared:
        for info in reversed(scans_by_asset.get(name, [])):
            if any(r.probe == "edge" and r.status is not RunStatus.SKIPPED for r in runs.get(info.id, ())):
                edge_scan[name] = info.id
                break
    edge_obs = evidence.run_observations(store, edge_scan.values(), "edge") if edge_scan else {}

    reports = []
    everything: list[tuple[str, list[tuple[datetime, datetime]]]] = []
    configured = {spec.name for spec in config.asset_specs()}
    for a in chosen:
        kind = a.kind
        in_period = scans_by_asset.get(a.name, [])
        others = external.get(a.name, [])
        complete = sorted([s.started_at for s in in_period if _counts(s)] + [x.performed_at for x in others])
        earlier = [t for t in (before.get(a.name), *(t for t in complete if t < period.since)) if t is not None]
        previous = max(earlier, default=None)
        added_at, url = (a.added_at, a.url) if isinstance(a, AssetInfo) else (None, a.url.normalised)
        record = cadence_record(complete, previous, added_at, period.since, as_of,
                                cadence_days=cadence_days, warn_days=warn_days)
        entries = [_finding(f, events_by_finding.get(f.id, []), kind, period, as_of, dp, catalog, last_seen.get(f.id))
                   for f in findings_by_asset.get(a.name, [])]
        findings = sorted((e for e in entries if e is not None),
                          key=lambda e: (severity_position(e.severity), e.first_seen, e.id))
        external_in = tuple(x for x in others if x.performed_at >= period.since)
        if asset is None and a.name not in configured and not (in_period or findings or external_in):
            continue  # an ad-hoc URL scanned once long ago, or an asset since removed: no evidence here
        stretches = [(e.severity, open_intervals(events_by_finding.get(e.id, []), as_of)) for e in findings]
        everything.extend(stretches)
        seen = tls_scan.get(a.name)
        certs = _certificates(tls_obs.get(seen.id, {}), seen, as_of) if seen else ()
        reports.append(AssetReport(
            name=a.name, url=url, kind=kind, added_at=added_at,
            scans=tuple(_scan_entry(s, runs.get(s.id, ()), counts.get(s.id, 0)) for s in in_period),
            external_scans=external_in,
            findings=tuple(findings), cadence=record, certificates=certs,
            series=step_series(stretches, period.since, as_of),
            declared=declared_controls(declared.get(a.name, {}), edge_obs.get(edge_scan[a.name])
                                       if a.name in edge_scan else None, edge_scan.get(a.name)),
        ))
    return ReportData(
        period=period, as_of=as_of, generated_at=now, posture_version=posture_version,
        catalog_version=catalog.version, policy=_policy(config, dp), assets=tuple(reports),
        series=step_series(everything, period.since, as_of), duties=_duties(store, config, as_of),
        watch=gather_watch(store, config, as_of, tuple(reports)),
    )


def _duties(store: Store, config: Config, as_of: datetime) -> tuple[DutyStatus, ...]:
    """The compliance calendar on the report's last day (only when the config has a [firm])."""
    from agent.tracking.duties import calendar, local_day

    if config.firm is None:
        return ()
    return tuple(calendar(config, store, local_day(as_of - timedelta(microseconds=1), config.agent.timezone)))
