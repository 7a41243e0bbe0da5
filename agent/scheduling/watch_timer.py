"""The watch's own schedule in the daemon (``[watch] every``, default daily).

When the next watch is due comes from storage (the newest stored watch of each domain), so a
restart neither repeats a watch nor skips one. A watch runs in a thread like the evaluation
cycle; its new findings are alerted at once, like a scan's. Two agents on one database may
both watch in the same minute: the lifecycle makes that harmless (the second watch refreshes
what the first stored, and alerts are deduplicated by the alert log).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.scheduling.daemon_setup import log
from vocab import one_line

if TYPE_CHECKING:
    from agent.session import Session
    from state.store import Store

RETRY_FAILED = timedelta(hours=1)  # a watch whose resolver answered nothing is tried again sooner


def next_due(store: Store, session: Session, now: datetime) -> datetime | None:
    """When the next watch is due (None: nothing to watch)."""
    from agent.scanning.watch import every, last_watch_scan

    cfg = session.config
    if not cfg.watch.domains:
        return None
    last = last_watch_scan(store, cfg)
    if last is None:
        return now
    at, failed = last
    return at + (min(every(cfg), RETRY_FAILED) if failed else every(cfg))


class WatchTimer:
    def __init__(self) -> None:
        self.busy = False
        self.next_at: datetime | None = None

    async def turn(self, session: Session, store: Store, clock: Callable[[], datetime], now: datetime,
                   wake: asyncio.Event) -> datetime | None:
        """Start the watch when due; the moment to wake for it (None: nothing to wait for)."""
        if self.busy:
            return None
        self.next_at = await asyncio.to_thread(next_due, store, session, now)
        if self.next_at is None or self.next_at > now:
            return self.next_at
        self.busy = True
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._thread, args=(loop, session, clock, wake), daemon=True,
                         name="posture-watch").start()
        return None

    def _thread(self, loop: asyncio.AbstractEventLoop, session: Session, clock: Callable[[], datetime],
                wake: asyncio.Event) -> None:
        from agent.notify.dispatch import alert_new_findings
        from agent.scanning.watch import watch
        from agent.targets import display_url
        from state.records import Trigger

        try:
            outcomes: list[Any] = watch(session, trigger=Trigger.SCHEDULED, clock=clock)
            for o in outcomes:
                r = o.record
                opened = len(o.stored.opened) if o.stored is not None else 0
                log(f"watch of {display_url(r.asset.url)}: {r.status.value}, {opened} new finding(s)"
                    + (f" ({r.error})" if r.error else ""))
            if outcomes and session.config.notify:
                for d in alert_new_findings(session, outcomes, max(o.record.finished_at for o in outcomes)):
                    if not d.ok:
                        log(f"alert to {d.channel} failed: {d.error}")
        except Exception as exc:  # reported; the next turn tries again when due
            log(f"watch failed: {one_line(exc, named=True)}")
        loop.call_soon_threadsafe(self._done, wake)

    def _done(self, wake: Any) -> None:
        self.busy = False
        wake.set()
