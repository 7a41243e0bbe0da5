"""What the daemon is built from: its settings per config, its log.

Kept apart from the loop (:mod:`agent.scheduling.daemon`) so the loop reads as one piece.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from agent.scheduling.scan_jobs import ScanPlanner
from vocab import escape

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from agent.scanning.options import Clock, ScanOptions
    from agent.session import Session
    from state.store import Store

    CycleFn = Callable[[Session, Store, datetime], Any]  # the evaluation cycle (daemon and fleet scheduler)
    from probes.net.scope import AddressLimits

CYCLE_MAX = timedelta(minutes=15)  # evaluate at least this often: new-finding alerts within 30 minutes


def log(message: str) -> None:
    """One line on stderr (systemd keeps it in the journal, with the time); control characters escaped."""
    sys.stderr.write(f"posture: {escape(message)}\n")
    sys.stderr.flush()


def one_line_warnings() -> None:
    """Library warnings become one log line each, like everything else the daemon says."""
    import warnings

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        log(f"warning: {category.__name__}: {' '.join(str(message).split())[:300]}")

    warnings.showwarning = show


@dataclass(frozen=True)
class Settings:
    """Everything derived from one config (replaced whole on SIGHUP)."""

    session: Session
    planner: ScanPlanner
    opts: ScanOptions
    cycle_every: timedelta

    @classmethod
    def build(cls, session: Session, clock: Clock, address_limits: AddressLimits | None = None) -> Settings:
        """Raises ConfigError/UsageError (a bad schedule, holiday file, CA bundle...)."""
        from agent.scanning.service import ScanRequest, scan_options
        from state.records import Trigger

        opts = dataclasses.replace(scan_options(session, ScanRequest(trigger=Trigger.SCHEDULED)), clock=clock)
        if address_limits is not None:  # the daemon's, kept across SIGHUP: limits hold for the process
            opts = dataclasses.replace(opts, address_limits=address_limits)
        planner = ScanPlanner(session.config)
        return cls(session, planner, opts, min(planner.shortest, CYCLE_MAX))
