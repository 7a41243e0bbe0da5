"""What the daemon calls: ``start_metrics`` once, and ``observe_*`` after a scan, a send, a turn.

Nothing here imports prometheus_client: with ``[metrics] listen`` unset every hook is a no-op
and the library is never loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.config import Config
    from agent.monitoring.metrics import Metrics
    from state.store import Store

_active: Metrics | None = None


def start_metrics(listen: str | None, store: Store, config: Callable[[], Config], clock: Callable[[], datetime],
                  running: Callable[[], int]) -> Metrics | None:
    """Serve metrics at ``listen`` (None: off, nothing imported). Raises ConfigError if it cannot bind."""
    global _active
    if listen is None:
        return None
    from agent.monitoring.metrics import Metrics

    _active = Metrics.serve(listen, store, config, clock, running)
    return _active


def stop_metrics() -> None:
    global _active
    if _active is not None:
        _active.stop()
        _active = None


def observe_scan(record: Any) -> None:
    """A stored ScanRecord: its status and duration, and each probe run's outcome, duration, error kind."""
    if _active is not None:
        _active.recorder.scan(record)


def observe_deliveries(deliveries: Iterable[Any]) -> None:
    """Notification sends (agent.notify.dispatch.Delivery): delivered or failed, by event."""
    if _active is not None:
        _active.recorder.deliveries(deliveries)


def observe_queue(due: int) -> None:
    """Scans due now and not running (waiting for a free slot or another agent's lease)."""
    if _active is not None:
        _active.recorder.queue(due)
