"""Sending through the delivery log: record conditions, claim what is due, send grouped, mark.

One message per channel per call, whatever the number of conditions; a failed send
keeps its conditions pending with an exponential backoff (schedules.due.retry_delay),
and whichever posture process runs next (``posture scan``, ``posture run --once``, the
daemon) retries them when they are due.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from agent.notify.alerts import Alert, AlertKind
from agent.notify.channels import Channel, Message, SendResult, send
from schedules.due import retry_delay
from state.delivery_views import DeliveryEvent, DeliveryInfo, DeliveryState

if TYPE_CHECKING:
    from agent.scanning.options import ScanOutcome
    from agent.session import Session
    from probes.catalog import Catalog
    from state.store import Store

LEASE = timedelta(minutes=5)  # a sender that dies mid-send leaves its claim to be retried after this


@dataclass(frozen=True)
class Delivery:
    """What one send did: the channel (by label only), how many conditions, the outcome."""

    channel: str  # masked label
    event: DeliveryEvent
    items: int
    ok: bool
    error: str | None = None
    retry_at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        return {"channel": self.channel, "event": self.event.value, "items": self.items, "ok": self.ok,
                "error": self.error, "retry_at": None if self.retry_at is None else self.retry_at.isoformat()}


def all_secrets(chans: Iterable[Channel]) -> list[str]:
    """Every channel's secrets: an error from one send must not show another channel's token either."""
    return sorted({s for c in chans for s in c.secrets})


def record_alerts(store: Store, chans: Sequence[Channel], alerts: Iterable[Alert], now: datetime) -> int:
    """Log each alert for every channel that wants it; returns how many were new to the log."""
    from state.deliveries import Wanted, record

    wanted = [
        Wanted(c.id, c.label, DeliveryEvent.ALERT, a.condition, a.payload())
        for a in alerts
        for c in chans
        if c.wants("alert") and (a.kind is not AlertKind.NEW_FINDING or c.hears(a.severity))
    ]
    return len(record(store, wanted, now)) if wanted else 0


def supersede_stale(store: Store, holding: set[str], prefixes: Sequence[str] = ("deadline:", "cadence:")) -> int:
    """Pending deadline and cadence alerts whose condition no longer holds are not sent any more."""
    from state.deliveries import deliveries, supersede

    stale = [
        d.id
        for d in deliveries(store, event=DeliveryEvent.ALERT, states=[DeliveryState.PENDING])
        if d.condition.startswith(tuple(prefixes)) and d.condition not in holding
    ]
    if stale:
        supersede(store, stale)
    return len(stale)


def supersede_gone_findings(store: Store, now: datetime) -> int:
    """Pending new-finding alerts (``new:ID:N``) whose finding no longer needs fixing as that
    appearance (fixed, accepted, a false positive, resolved by configuration, gone, or reopened
    since) are not sent any more: a delivery that failed is not retried after the fact.
    Recorded as superseded in the delivery log; returns how many."""
    from agent.notify.alerts import new_finding_key, still_new
    from state.deliveries import deliveries, supersede

    pending = [(d.id, key) for d in deliveries(store, event=DeliveryEvent.ALERT, states=[DeliveryState.PENDING],
                                               prefix="new:")
               if (key := new_finding_key(d.condition)) is not None]
    if not pending:
        return 0
    found = {f.id: f for f in store.findings_with_ids({ident for _, (ident, _) in pending})}
    stale = [i for i, (ident, count) in pending if not still_new(found.get(ident), count, now)]
    if stale:
        supersede(store, stale)
    return len(stale)


def flush(
    store: Store,
    chans: Sequence[Channel],
    event: DeliveryEvent,
    now: datetime,
    render: Callable[[Channel, list[DeliveryInfo]], Message | None],
    *,
    retry: bool = True,
    prefix: str | None = None,
) -> list[Delivery]:
    """Send each channel's due deliveries of ``event`` as one message; mark them sent or retry later.

    With ``retry`` off (a one-off send a person asked for), a failure is final and reported.
    """
    from state.deliveries import claim, mark_failed, mark_sent, supersede

    secrets = all_secrets(chans)
    done: list[Delivery] = []
    for channel in chans:
        if not channel.wants(event.value):
            continue
        rows = claim(store, channel.id, now, LEASE, event=event, prefix=prefix)
        if not rows:
            continue
        msg = render(channel, rows)
        if msg is None:  # nothing left worth sending (e.g. only a digest superseded meanwhile)
            supersede(store, [r.id for r in rows])
            continue
        result: SendResult = send(channel, msg, secrets)
        ids = [r.id for r in rows]
        if result.ok:
            mark_sent(store, ids, now)
            done.append(Delivery(channel.label, event, len(rows), True))
        else:
            attempts = max(r.attempts for r in rows)
            retry_at = now + retry_delay(attempts) if retry else None
            error = result.error or "delivery failed"
            mark_failed(store, ids, error, retry_at)
            done.append(Delivery(channel.label, event, len(rows), False, error, retry_at))
    return done


def alert_renderer(tz: str, catalog: Catalog) -> Callable[[Channel, list[DeliveryInfo]], Message | None]:
    from agent.notify.alerts import message

    def render(channel: Channel, rows: list[DeliveryInfo]) -> Message | None:
        alerts = [Alert.from_payload(r.condition, r.payload) for r in rows]
        return message(alerts, channel.language, tz, catalog, channel.max_items) if alerts else None

    return render


def send_alerts(store: Store, chans: Sequence[Channel], alerts: Iterable[Alert], now: datetime, tz: str,
                catalog: Catalog) -> tuple[int, list[Delivery]]:
    """Record the alerts and send what is due on every channel: (new conditions, deliveries).
    New-finding alerts whose finding no longer needs fixing are withdrawn first."""
    recorded = record_alerts(store, chans, alerts, now)
    supersede_gone_findings(store, now)
    return recorded, flush(store, chans, DeliveryEvent.ALERT, now, alert_renderer(tz, catalog))


def alert_new_findings(session: Session, outcomes: Iterable[ScanOutcome], now: datetime, *,
                       store: Store | None = None) -> list[Delivery]:
    """Alert at once the new (or reopened) findings of configured assets that ``outcomes`` stored.

    ``posture scan`` and the daemon's scan jobs both call this after storing a scan, so an
    urgent finding never waits for the next cycle; due retries go out with it. ``store``: an
    open store to use (the daemon's), else the session's is opened for the call.
    """
    from agent.notify.alerts import new_finding
    from agent.notify.channels import channels
    from probes.catalog import load_catalog
    from state.lifecycle import NEEDS_FIX

    cfg = session.config
    chans = channels(cfg)
    if not any(c.wants("alert") for c in chans):
        return []
    ids = [i for o in outcomes if o.asset.configured and o.stored is not None
           for i in (*o.stored.opened, *o.stored.reopened)]
    with contextlib.nullcontext(store) if store is not None else session.open_store() as open_store:
        alerts = [new_finding(f) for f in (open_store.finding(i) for i in ids) if f.state in NEEDS_FIX]
        _, sent = send_alerts(open_store, chans, alerts, now, cfg.agent.timezone, load_catalog())
    return sent
