"""The compliance calendar in the evaluation cycle: duty alerts, and the declaration pack.

On the first day of each declaration window (1 January, 1 July, agent time zone) (or the
first cycle inside the window, after downtime) the pack of the half year just ended is
built into ``[firm] pack_dir`` (default: ``packs`` in the state directory) as
``DIR/2026H1``; a notice says where and until when; ``[firm] remind_days`` before the
window's last day a reminder follows unless ``posture duty record declaration`` was done
inside the window. Each is an alert condition sent once per channel by the delivery log.
Without a ``[firm]`` section in the config none of this happens (``posture duty list`` and
``posture pack`` still work, with tier 2's periods).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from agent.notify.alerts import Alert
    from agent.session import Session
    from schedules.duties import HalfYear
    from state.store import Store


def calendar_alerts(session: Session, store: Store, now: datetime) -> list[Alert]:
    """The calendar's alert conditions holding at ``now`` (building the pack when due); pending
    calendar alerts that no longer hold (a duty recorded meanwhile) are withdrawn."""
    from agent.notify.dispatch import supersede_stale
    from agent.notify.duty_alerts import duty_alert, pack_failed, pack_ready, pack_reminder
    from agent.report.pack import SUMS, default_dir
    from agent.tracking.duties import calendar, local_day
    from schedules.duties import DutyKind, open_window, reminder_day
    from state.duty_records import records

    cfg = session.config
    if cfg.firm is None:
        return []  # no [firm] in the config: the calendar stays silent
    tz = cfg.agent.timezone
    today = local_day(now, tz)
    alerts = [a for a in (duty_alert(s) for s in calendar(cfg, store, today)) if a is not None]
    half = open_window(today)
    if half is not None:
        directory = (default_dir(cfg) / half.label).absolute()
        if not (directory / SUMS).is_file():
            error = _build(session, store, half, directory, now)
            if error is not None:
                alerts.append(pack_failed(half, str(directory), error))
        if (directory / SUMS).is_file():
            alerts.append(pack_ready(half, str(directory)))
            filed = [r for r in records(store, tz, kind=DutyKind.DECLARATION.value, until=today + timedelta(days=1))
                     if r.performed_on >= half.window_first]
            if not filed and today >= reminder_day(half, cfg.firm_settings().remind_days):
                alerts.append(pack_reminder(half, str(directory), today))
    supersede_stale(store, {a.condition for a in alerts}, ("duty:", "pack:"))
    return alerts


def _build(session: Session, store: Store, half: HalfYear, directory: Path, now: datetime) -> str | None:
    """Build the pack; None, or why it could not be built (logged)."""
    from agent import __version__
    from agent.errors import AgentError
    from agent.report.pack import build
    from agent.scheduling.daemon_setup import log
    from state.errors import StorageGone, StoreError

    try:
        pack = build(session.config, store, half, directory, now, __version__)
    except StorageGone:
        raise
    except (AgentError, StoreError) as exc:
        log(f"declaration pack {half.label}: not built ({exc}); the next cycle retries")
        return str(exc)
    log(f"declaration pack {half.label} built in {directory} ({len(pack.files)} files, "
        f"manifest sha256 {pack.manifest_sha256})")
    return None
