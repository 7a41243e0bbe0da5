"""The daemon's dead-man alerts: no cycle for twice the scan period, or deliveries that keep failing.

Both go straight to the channels through :func:`agent.notify.channels.send`, not
through the delivery log: the log and the cycle that flushes it may be exactly
what is broken. Each condition is sent once while it lasts (a stale period is named
by the last cycle it counts from; a failing channel until it delivers again), and
always written to stderr, which systemd keeps in the journal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config import Config
    from agent.notify.channels import SendResult
    from state.job_queue import JobQueue
    from state.store import Store

FAILING_ATTEMPTS = 3  # a channel whose oldest pending delivery failed this often "keeps failing"

_TEXT = {
    "stale": {
        "en": ("posture: no cycle completed",
               "posture has completed no scheduling cycle since {since} (more than {limit}). Scheduled scans, "
               "deadline and cadence alerts may have stopped: check the service (journalctl -u posture)."),
        "zh-TW": ("posture：排程週期停止",
                  "posture 自 {since} 起未完成任何排程週期（已超過 {limit}）。排程掃描、期限與頻率警示可能已停止，"
                  "請檢查服務（journalctl -u posture）。"),
    },
    "failing": {
        "en": ("posture: notifications keep failing",
               "Notifications to {channel} keep failing ({attempts} attempts; last error: {error}). "
               "Alerts for that channel are waiting in posture's delivery log."),
        "zh-TW": ("posture：通知持續傳送失敗",
                  "傳送至 {channel} 的通知持續失敗（已嘗試 {attempts} 次；最後錯誤：{error}）。"
                  "該管道的警示仍在 posture 的傳送紀錄中等待。"),
    },
}


def _human(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Failing:
    channel: str  # the channel's id (a hash of its URL)
    label: str  # masked URL
    attempts: int
    error: str


@dataclass
class DeadMan:
    threshold: timedelta  # twice the shortest scan period
    last_cycle: datetime  # the newest completed cycle known (this agent's or, from the database, any agent's)
    alerted_for: datetime | None = None
    failing: set[str] = field(default_factory=set)  # channel ids already reported

    def cycle_done(self, at: datetime) -> None:
        self.last_cycle = max(self.last_cycle, at)

    @property
    def deadline(self) -> datetime:
        return self.last_cycle + self.threshold

    def stale(self, now: datetime) -> bool:
        """True once per stale stretch: no cycle since ``last_cycle`` for longer than the threshold."""
        if now <= self.deadline or self.alerted_for == self.last_cycle:
            return False
        self.alerted_for = self.last_cycle
        return True

    def newly_failing(self, failing: Sequence[Failing]) -> list[Failing]:
        """Channels failing now that were not reported yet; recovered channels are forgotten."""
        now_ids = {f.channel for f in failing}
        self.failing &= now_ids
        new = [f for f in failing if f.channel not in self.failing]
        self.failing |= {f.channel for f in new}
        return new


def failing_channels(store: Store) -> list[Failing]:
    """Channels with a pending alert or digest that has failed at least FAILING_ATTEMPTS times."""
    from state.deliveries import deliveries
    from state.delivery_views import DeliveryState

    worst: dict[str, Failing] = {}
    for d in deliveries(store, states=[DeliveryState.PENDING]):
        if d.attempts >= FAILING_ATTEMPTS and (d.channel not in worst or d.attempts > worst[d.channel].attempts):
            worst[d.channel] = Failing(d.channel, d.channel_label, d.attempts, d.last_error or "unknown")
    return sorted(worst.values(), key=lambda f: f.label)


def stale_text(language: str, since: datetime, limit: timedelta, tz: str) -> tuple[str, str]:
    from agent.notify.i18n import moment

    title, body = _TEXT["stale"]["en" if language == "en" else "zh-TW"]
    return title, body.format(since=f"{moment(since, tz)} ({tz})", limit=_human(limit))


def failing_text(language: str, failing: Failing) -> tuple[str, str]:
    title, body = _TEXT["failing"]["en" if language == "en" else "zh-TW"]
    return title, body.format(channel=failing.label, attempts=failing.attempts, error=failing.error)


def send_stale(cfg: Config, since: datetime, limit: timedelta) -> list[SendResult]:
    return _send(cfg, lambda lang: stale_text(lang, since, limit, cfg.agent.timezone), skip=set())


def send_failing(cfg: Config, failing: Failing, skip: set[str]) -> list[SendResult]:
    """Tell the other channels (the failing one, and any other failing, would not hear it)."""
    return _send(cfg, lambda lang: failing_text(lang, failing), skip=skip)


def _send(cfg: Config, text: Callable[[str], tuple[str, str]], skip: set[str]) -> list[SendResult]:
    from agent.notify.channels import Message, channels, send
    from agent.notify.dispatch import all_secrets

    chans = [c for c in channels(cfg) if c.wants("alert") and c.id not in skip]
    secrets = all_secrets(channels(cfg))
    results = []
    for channel in chans:
        title, body = text(channel.language)
        results.append(send(channel, Message(title=title, text=body, markdown=body, kind="failure"), secrets))
    return results


# -- each turn of the daemon, or of the fleet's elected scheduler ---------------------------


async def check_stale(dm: DeadMan, queue: JobQueue, cfg: Config, now: datetime) -> None:
    """Report (log and channels) a stretch with no completed cycle, once; the newest completed
    cycle is read from the database (any agent's), or, when it is down, what this one saw."""
    import asyncio

    from agent.scheduling.daemon_setup import log
    from state.errors import StoreError
    from state.job_queue import JobKind

    try:
        last = await asyncio.to_thread(queue.last_finished, JobKind.CYCLE)
    except StoreError:
        last = None  # the database is down: judge by what this agent saw itself
    if last is not None:
        dm.cycle_done(last)
    if dm.stale(now):
        since, limit = dm.last_cycle, dm.threshold
        log(f"dead-man: no cycle completed since {since.isoformat(timespec='seconds')} (limit {limit})")
        for r in await asyncio.to_thread(send_stale, cfg, since, limit):
            if not r.ok:
                log(f"dead-man alert to {r.channel.label} failed: {r.error}")


async def check_failing(dm: DeadMan, store: Store, cfg: Config) -> None:
    """Report each channel that newly keeps failing, to the other channels."""
    import asyncio

    from agent.scheduling.daemon_setup import log

    failing = await asyncio.to_thread(failing_channels, store)
    for f in dm.newly_failing(failing):
        log(f"dead-man: notifications to {f.label} keep failing ({f.attempts} attempts: {f.error})")
        skip = {x.channel for x in failing}
        await asyncio.to_thread(send_failing, cfg, f, skip)
