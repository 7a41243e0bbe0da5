"""One evaluation cycle: everything due at a moment, done once (``posture run --once``).

In order: register the configured assets (a new one counts for cadence from now),
lapse acceptances whose end has passed, run the full scans that are due under
``[schedule] scan_every`` as the daemon plans them (an asset never scanned at once; a
scan in its quiet window waits for the window's end; what waits is listed with why),
then alert on new findings, missed deadlines and slipping cadence, and send the
digest when its firing has come (:func:`evaluation_cycle`). The daemon runs the same
cycle without the scans (it runs them as jobs) and, like ``posture scan``, alerts a
scan's new findings at once (:func:`agent.notify.dispatch.alert_new_findings`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.notify.dispatch import Delivery

if TYPE_CHECKING:
    from agent.config import Config
    from agent.notify.alerts import Alert
    from agent.notify.channels import Channel
    from agent.scanning.options import Clock, ScanOutcome
    from agent.scheduling.scan_jobs import Waiting
    from agent.session import Session
    from agent.targets import AssetSpec
    from probes.catalog import Catalog
    from schedules.timing import Cron
    from state.delivery_views import DeliveryInfo
    from state.store import Store
    from state.views import AssetInfo

NEW_LOOKBACK = timedelta(days=7)  # a new finding not alerted by its scan (crash, no channel yet) within this


@dataclass
class CycleReport:
    at: datetime
    expired: list[int] = field(default_factory=list)
    scans: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    alerts_recorded: int = 0
    superseded: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    digest_firing: datetime | None = None

    @property
    def failed_scans(self) -> list[dict[str, Any]]:
        from state.records import ScanStatus

        return [s for s in self.scans if s["status"] == ScanStatus.FAILED]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "acceptances_expired": self.expired,
            "scans": self.scans,
            "waiting": [w.to_json() for w in self.waiting],
            "alerts_recorded": self.alerts_recorded,
            "alerts_superseded": self.superseded,
            "deliveries": [d.to_json() for d in self.deliveries],
            "digest_firing": None if self.digest_firing is None else self.digest_firing.isoformat(),
        }


# ---------------------------------------------------------------- scans


def scheduled_scans(session: Session, store: Store, specs: list[AssetSpec], now: datetime,
                    waiting: list[Waiting] | None = None) -> list[ScanOutcome]:
    """The full scans of ``specs`` due at ``now``, planned by the one planner the daemon uses
    (:class:`agent.scheduling.scan_jobs.ScanPlanner`), stored as scheduled, claimed as jobs exactly as the daemon
    claims them: a timer's ``run --once`` and a running daemon (or two timers) never scan one
    asset twice. What waits (jitter, quiet window, lease) is appended to ``waiting``.
    """
    import asyncio

    from agent.scanning.service import ScanRequest, scan_options
    from agent.scheduling.scan_jobs import LEASE, owner_id, run_due_scans
    from state.job_queue import JobQueue
    from state.records import Trigger

    opts = scan_options(session, ScanRequest(trigger=Trigger.SCHEDULED))
    queue = JobQueue(store, owner_id(), LEASE)
    outcomes: list[ScanOutcome] = asyncio.run(run_due_scans(session.config, queue, opts, now, specs,
                                                            waiting=waiting))
    return outcomes


def scan_summary(outcome: ScanOutcome) -> dict[str, Any]:
    from agent.output import probe_steps

    stored = outcome.stored
    return {
        "asset": outcome.asset.name,
        "status": outcome.record.status.value,
        "scan_id": getattr(stored, "scan_id", None),
        "opened": list(getattr(stored, "opened", ())),
        "reopened": list(getattr(stored, "reopened", ())),
        "fixed": list(getattr(stored, "fixed", ())),
        "error": outcome.record.error,
        "reason": outcome.record.error,
        "probes": probe_steps(outcome.record.probe_runs),
    }


# ---------------------------------------------------------------- alerts


def current_alerts(cfg: Config, store: Store, assets: dict[str, AssetInfo], now: datetime
                   ) -> tuple[list[Alert], set[str]]:
    """Every alert condition holding at ``now``, and the keys of the deadline/cadence ones."""
    from agent.notify.alerts import cadence_slipping, deadline_missed, new_finding
    from agent.tracking.remediation import cadences, deadline_policy, deadlines
    from schedules.remediation import is_overdue
    from state.history_reads import reopened_at
    from state.views import FindingFilter

    open_now = [f for f in store.findings(FindingFilter.OPEN, now=now) if f.asset in assets]
    kinds = {name: info.kind for name, info in assets.items()}
    due = deadlines(store, deadline_policy(cfg), open_now, kinds)
    back = reopened_at(store, [f.id for f in open_now if f.reopened_count])
    alerts: list[Alert] = []
    for f in open_now:
        appeared = max(f.first_seen, back.get(f.id, f.first_seen))
        if now - NEW_LOOKBACK <= appeared <= now:
            alerts.append(new_finding(f))
        when = due.get(f.id)
        if when is not None and is_overdue(when, now):
            alerts.append(deadline_missed(f, when, now))
    for c in cadences(cfg, store, assets, now).values():
        slipping = cadence_slipping(c)
        if slipping is not None:
            alerts.append(slipping)
    holding = {a.condition for a in alerts if a.condition.startswith(("deadline:", "cadence:"))}
    return alerts, holding


# ---------------------------------------------------------------- digest


def digest_deliveries(cfg: Config, store: Store, chans: Sequence[Channel], now: datetime, catalog: Catalog,
                      assets: dict[str, AssetInfo]) -> tuple[datetime | None, list[Delivery]]:
    """Send the digest of the latest firing not yet logged, to every digest channel.

    The digest of a firing covers the events from where the channel's last digest sent ended
    (its firing) to this firing, whenever the cycle runs: a late timer, downtime or a retry
    moves neither end, so every event lands in exactly one digest. The window is logged with
    the firing (payload ``since``), so a retry rebuilds the same one. After downtime only the
    latest missed firing goes out, covering every firing missed since the last digest sent.
    """
    from agent.notify import digest, digest_text
    from agent.notify.channels import Message
    from agent.notify.dispatch import flush
    from schedules.timing import due_firing, parse_digest
    from state.deliveries import Wanted, deliveries, record, supersede
    from state.delivery_views import DeliveryEvent, DeliveryState

    cron = parse_digest(cfg.schedule.digest, cfg.agent.timezone)
    wanting = [c for c in chans if c.wants("digest")]
    if cron is None or not wanting:
        return None, []
    firing: datetime | None = None
    for channel in wanting:
        logged = [d for d in deliveries(store, channel=channel.id, event=DeliveryEvent.DIGEST, prefix="digest:")
                  if _firing(d) is not None]
        last = max((f for d in logged if (f := _firing(d)) is not None), default=None)
        due = due_firing(cron, last, now)
        if due is None:
            continue
        firing = due
        condition = f"digest:{due.isoformat()}"
        sent = [f for d in logged if d.state == DeliveryState.SENT and (f := _firing(d)) is not None and f < due]
        # Where the last digest sent ended; none sent yet: where the first one logged began (it and any
        # after it never went out), or the previous firing (a new installation's first digest).
        since = max(sent) if sent else min((_since(cron, d) for d in logged), default=_previous(cron, due))
        record(store, [Wanted(channel.id, channel.label, DeliveryEvent.DIGEST, condition,
                              {"firing": due.isoformat(), "since": since.isoformat()})], now)
        # After downtime only the latest missed firing goes out (its window covers the others').
        older = [d.id for d in logged if d.state == DeliveryState.PENDING and d.condition != condition]
        if older:
            supersede(store, older)
    built: dict[tuple[datetime, datetime], digest.Digest] = {}

    def render(channel: Channel, rows: list[DeliveryInfo]) -> Message | None:
        windows = [(_since(cron, r), f) for r in rows if (f := _firing(r)) is not None]
        if not windows:
            return None
        window = max(windows, key=lambda w: w[1])  # one row per firing; the latest if several are due
        if window not in built:
            built[window] = digest.build(cfg, store, now, catalog, assets, window=window,
                                         periods=_periods(cron, *window))
        return digest_text.message(built[window], channel.language, channel.max_items)

    return firing, flush(store, wanting, DeliveryEvent.DIGEST, now, render, prefix="digest:")


def _firing(d: DeliveryInfo) -> datetime | None:
    value = d.payload.get("firing")
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _previous(cron: Cron, firing: datetime) -> datetime:
    """The firing before ``firing`` (a week before, should the expression give none)."""
    from schedules.weekly import WEEK

    return cron.previous(firing - timedelta(seconds=1)) or firing - WEEK


def _since(cron: Cron, d: DeliveryInfo) -> datetime:
    """Where the window of a logged digest starts: as logged, else (logged before windows were) its
    previous firing."""
    value = d.payload.get("since")
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    firing = _firing(d)
    assert firing is not None
    return _previous(cron, firing)


_MAX_PERIODS = 1000  # counting firings in a window stops here (a year of hourly digests is more)


def _periods(cron: Cron, since: datetime, firing: datetime) -> int:
    """How many firings fall in (since, firing]: more than one when digests were not sent."""
    n, at = 1, _previous(cron, firing)
    while at > since and n < _MAX_PERIODS:
        n, at = n + 1, _previous(cron, at)
    return n


# ---------------------------------------------------------------- the cycle


def evaluate(session: Session, store: Store, now: datetime, report: CycleReport) -> None:
    """Alerts and the digest at ``now`` (after any scans of this cycle are stored)."""
    from agent.notify.channels import channels
    from agent.notify.dispatch import alert_renderer, flush, record_alerts, supersede_gone_findings, supersede_stale
    from probes.catalog import load_catalog
    from state.delivery_views import DeliveryEvent

    cfg = session.config
    from agent.scanning.watch import watch_names

    wanted = {s.name for s in cfg.asset_specs()} | set(watch_names(cfg))  # watched domains are pseudo-assets
    assets = {a.name: a for a in store.assets() if a.name in wanted}
    chans = channels(cfg)
    from agent.scheduling.calendar import calendar_alerts

    calendar = calendar_alerts(session, store, now)  # duties due/overdue, the declaration pack (issue 19)
    if not chans:
        return
    catalog = load_catalog()
    alerts, holding = current_alerts(cfg, store, assets, now)
    alerts += calendar
    report.alerts_recorded = record_alerts(store, chans, alerts, now)
    report.superseded = supersede_stale(store, holding) + supersede_gone_findings(store, now)
    report.deliveries += flush(store, chans, DeliveryEvent.ALERT, now, alert_renderer(cfg.agent.timezone, catalog))
    report.digest_firing, sent = digest_deliveries(cfg, store, chans, now, catalog, assets)
    report.deliveries += sent


def evaluation_cycle(session: Session, store: Store, now: datetime, *, scans: bool,
                     clock: Clock | None = None) -> CycleReport:
    """One cycle at ``now``: register the configured assets, lapse expired acceptances, run the
    due full scans when ``scans`` (``run --once``; the daemon runs its scans itself, as jobs),
    then alert and send the digest when due (at ``clock()`` after the scans, when given)."""
    from agent.scanning.service import register_assets

    specs = session.config.asset_specs()
    report = CycleReport(at=now)
    register_assets(store, specs, now)
    report.expired = store.reopen_expired_acceptances(now)
    if scans:
        outcomes = scheduled_scans(session, store, specs, now, report.waiting)
        report.scans = [scan_summary(o) for o in outcomes]
        # The watch's own schedule (the daemon runs it on its own timer instead).
        report.scans += [scan_summary(o) for o in due_watch(session, store, clock or (lambda: now))]
    evaluate(session, store, now if clock is None else clock(), report)
    return report


def alerting_cycle(session: Session, store: Store, now: datetime) -> CycleReport:
    """The daemon's cycle: :func:`evaluation_cycle` without the scans (its scan jobs run apart)."""
    return evaluation_cycle(session, store, now, scans=False)


def run_once(session: Session) -> CycleReport:
    """``posture run --once``: one :func:`evaluation_cycle` with the due scans."""
    from agent.scanning.options import make_clock

    clock = make_clock(session.now)
    with session.open_store() as store:
        return evaluation_cycle(session, store, clock(), scans=True, clock=clock)


def due_watch(session: Session, store: Store, clock: Callable[[], datetime]) -> list[Any]:
    """The phishing and impersonation watch, when ``[watch] every`` says it is due (stored)."""
    from agent.scanning.watch import watch
    from agent.scheduling.watch_timer import next_due
    from state.records import Trigger

    due = next_due(store, session, clock())
    if due is None or due > clock():
        return []
    return list(watch(session, trigger=Trigger.SCHEDULED, clock=clock))
