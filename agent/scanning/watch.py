"""Run the phishing and impersonation watch and store it: one scan per watched domain.

Each watched domain is a pseudo-asset ``watch:<domain>`` (kind ``watch``, URL ``dns://<domain>``)
whose scans hold two probe runs, ``lookalike`` and ``mail``; so the normal finding lifecycle,
alerts, digest, ``findings`` and ``accept`` apply unchanged. Only DNS queries are sent, through
the configured resolver (see :mod:`probes.watch.collect`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from state.records import AssetRecord, Observed, ProbeRunRecord, RunStatus, ScanRecord, ScanStatus, Trigger
from vocab import AssetKind

if TYPE_CHECKING:
    from agent.config import Config
    from agent.session import Session
    from probes.watch.model import Settings

WATCH_KIND = AssetKind.WATCH
PREFIX = "watch:"
LOOKALIKE_CHECKS = frozenset({"phishing.lookalike"})
MAIL_CHECKS = frozenset({"email.spf.missing", "email.spf.weak", "email.dmarc.missing", "email.dmarc.weak"})


@dataclass
class WatchOutcome:
    asset: AssetRecord
    record: ScanRecord
    stored: Any = None


def asset_of(domain: str) -> AssetRecord:
    return AssetRecord(name=f"{PREFIX}{domain}", url=f"dns://{domain}", kind=WATCH_KIND, configured=True)


def watch_names(cfg: Config) -> list[str]:
    """The pseudo-asset names of the configured watched domains."""
    return [asset_of(d).name for d in cfg.watch.domains]


def settings_of(cfg: Config, resolver: str | None = None) -> Settings:
    from probes.watch.model import Settings

    w = cfg.watch
    return Settings(domains=tuple(w.domains), allow=frozenset(w.allow), resolver=resolver or cfg.agent.resolver,
                    rate=w.rate, concurrency=w.concurrency, timeout=w.timeout)


def every(cfg: Config) -> timedelta:
    from schedules.timing import parse_duration

    return parse_duration(cfg.watch.every)


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _run(result: Any, started: datetime, finished: datetime, observed: Observed, config_hash: str,
         overrides: dict[str, str]) -> ProbeRunRecord:
    from agent.scanning.runner import finding_records
    from probes.catalog import load_catalog

    return ProbeRunRecord(
        probe=result.probe, status=RunStatus(result.status.value), started_at=started, finished_at=finished,
        observations=dict(result.observations), findings=finding_records(result, load_catalog(), overrides),
        error_kind=result.error.kind.value if result.error else None,
        error=result.error.message if result.error else None, observed=observed, config_hash=config_hash,
    )


def watch(session: Session, *, trigger: Trigger = Trigger.MANUAL, resolver: str | None = None,
          clock: Callable[[], datetime] | None = None) -> list[WatchOutcome]:
    """One watch of every configured domain at ``clock`` (default: the session's), stored; outcomes in config order."""
    from agent import __version__
    from agent.scanning.options import make_clock
    from probes.base import ProbeFailure, RunStatus
    from probes.catalog import load_catalog
    from probes.watch.collect import observe
    from probes.watch.judge import judge_lookalikes, judge_mail

    cfg = session.config
    settings = settings_of(cfg, resolver)
    clock = clock or make_clock(session.now)
    started = clock()
    overrides: dict[str, str] = {k: str(v) for k, v in cfg.severity.items()}
    try:
        observations = asyncio.run(observe(settings))
    except ProbeFailure as exc:
        from agent.errors import UsageError

        raise UsageError(str(exc)) from None
    finished = clock()
    catalog = load_catalog()
    outcomes: list[WatchOutcome] = []
    store = session.open_store()
    try:
        for obs in observations:
            looks, present = judge_lookalikes(obs, settings)
            mail = judge_mail(obs)
            reported = {("phishing.lookalike", f.key) for f in looks.findings}
            seen = frozenset(("phishing.lookalike", n) for n in present) | reported
            look_run = _run(looks, started, finished, Observed(LOOKALIKE_CHECKS, seen),
                            _hash({"allow": sorted(settings.allow), "words": settings.words, "tlds": settings.tlds}),
                            overrides)
            mail_run = _run(mail, started, finished,
                            Observed(MAIL_CHECKS, frozenset((f.check_id, f.key) for f in mail.findings)),
                            _hash({"mail": 1}), overrides)
            runs = (look_run, mail_run)
            if all(r.status is RunStatus.ERROR for r in (looks, mail)):
                status = ScanStatus.FAILED
            elif all(r.status is RunStatus.OK for r in (looks, mail)):
                status = ScanStatus.COMPLETE
            else:
                status = ScanStatus.PARTIAL
            errors = [r.error for r in runs if r.error]
            rec = ScanRecord(
                asset=asset_of(obs.domain), status=status, started_at=started, finished_at=finished,
                posture_version=__version__, catalog_version=catalog.version, config_hash=session.config_hash,
                probe_runs=runs, trigger=trigger, full=True,
                dns={"resolver": settings.resolver or "system"},
                error=errors[0] if status is ScanStatus.FAILED else None,
                asset_config_hash=_hash({"allow": sorted(settings.allow)}),
            )
            outcome = WatchOutcome(rec.asset, rec)
            outcome.stored = store.record_scan(rec)
            outcomes.append(outcome)
    finally:
        store.close()
    return outcomes


def last_watch_scan(store: Any, cfg: Config) -> tuple[datetime, bool] | None:
    """When the least recently watched configured domain was last watched, and whether that
    watch failed (None: one never was)."""
    names = watch_names(cfg)
    if not names:
        return None
    latest: list[tuple[datetime, bool]] = []
    for name in names:
        scans = [s for s in store.scans(asset=name) if s.status != ScanStatus.RUNNING]
        if not scans:
            return None
        newest = max(scans, key=lambda s: s.started_at)
        latest.append((newest.started_at, newest.status == ScanStatus.FAILED))
    return min(latest)
