"""Deadlines and cadence from the config and the stored history.

The rules live in :mod:`schedules` (pure); this module gathers what they need from the
store: each finding's deadline under ``[remediation]``, each configured asset's cadence
under ``[schedule]`` counting complete scans and registered third-party scans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from schedules.remediation import Cadence, DeadlinePolicy, breaks_at, cadence, deadline
from vocab import Severity

if TYPE_CHECKING:
    from agent.config import Config
    from agent.scanning.quiet_policy import QuietPolicy
    from agent.targets import AssetSpec
    from state.store import Store
    from state.views import AssetInfo, FindingInfo


def deadline_policy(cfg: Config) -> DeadlinePolicy:
    r = cfg.remediation
    return DeadlinePolicy(
        days={Severity.CRITICAL: r.critical, Severity.HIGH: r.high, Severity.MEDIUM: r.medium, Severity.LOW: r.low,
              Severity.INFO: r.info},
        per_kind={kind: {str(s): n for s, n in days.items()} for kind, days in r.kinds.items()},
        reopened_keeps_deadline=r.reopened_keeps_deadline,
        timezone=cfg.agent.timezone,
    )


def deadlines(store: Store, policy: DeadlinePolicy, findings: Iterable[FindingInfo],
              kinds: Mapping[str, str]) -> dict[int, datetime | None]:
    """finding id -> its deadline (None: its severity has none). ``kinds``: asset name -> kind.

    A finding whose evidence names when its condition breaks (a certificate's notAfter, an
    end-of-life date, a bare date taken in the agent's time zone) is due no later than that."""
    rows = list(findings)
    reopened: dict[int, datetime] = {}
    if not policy.reopened_keeps_deadline:
        from state.history_reads import reopened_at

        reopened = reopened_at(store, [f.id for f in rows if f.reopened_count])
    return {
        f.id: deadline(policy, f.severity, f.first_seen, kind=kinds.get(f.asset), reopened_at=reopened.get(f.id),
                       ends_at=breaks_at(f.evidence, policy.zone()))
        for f in rows
    }


@dataclass(frozen=True)
class AssetCadence:
    asset: str
    cadence: Cadence
    last_scan: datetime | None  # posture's own last complete full scan
    last_external: datetime | None  # the last registered third-party scan
    last_attempt: datetime | None = None  # posture's own last full scan, whatever its status
    # Set when the asset's quiet windows leave no moment for a complete scan before the due date.
    no_room: str | None = None


def cadences(cfg: Config, store: Store, assets: Mapping[str, AssetInfo], now: datetime) -> dict[str, AssetCadence]:
    """Cadence of each asset named in ``assets`` (configured, already registered)."""
    from agent.scanning.quiet_policy import QuietPolicy
    from state import external_scans
    from state import history_reads as tracking

    # Everything stored counts, even a scan a moment "after" a --now given to a later command.
    times = tracking.scan_times(store)
    external = external_scans.latest(store)
    specs = {s.name: s for s in cfg.asset_specs()}
    quiet = QuietPolicy.from_config(cfg)
    out: dict[str, AssetCadence] = {}
    for name, info in assets.items():
        own = times[name].last_complete if name in times else None
        other = external.get(name)
        last = max((t for t in (own, other) if t is not None), default=None)
        c = cadence(last, info.added_at, now, cadence_days=cfg.schedule.cadence_days,
                    warn_days=cfg.schedule.cadence_warn_days)
        spec = specs.get(name)
        blocked = None if spec is None else _no_room(quiet, spec, c, now)
        out[name] = AssetCadence(name, c, own, other, times[name].last_attempt if name in times else None, blocked)
    return out


def _no_room(quiet: QuietPolicy, spec: AssetSpec, c: Cadence, now: datetime) -> str | None:
    """Why no complete scan can happen before the cadence deadline (quiet windows cover it all), or None.

    A complete scan needs the asset's active probes, which wait out its quiet windows.
    """
    from schedules.slots import room_before

    windows = quiet.windows(spec)
    if not windows or not spec.active_probes or now >= c.due:
        return None
    if room_before(now, c.due, windows, quiet.tz, quiet.holidays) is not None:
        return None
    labels = ", ".join(dict.fromkeys(w.label for w in windows))
    return f"its quiet windows ({labels}) leave no time for a complete scan before {c.due.date().isoformat()}"
