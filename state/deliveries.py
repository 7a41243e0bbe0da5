"""The notification delivery log: each alert condition (or digest firing) once per channel.

A condition is recorded PENDING the first time it holds; a sender *claims* the rows
that are due (a short lease: another process will not send them meanwhile, and a
sender that dies mid-send leaves them to be retried when the lease ends), sends them
as one grouped message, then marks them SENT or schedules the retry. The backoff
policy is the caller's; this module only keeps the times.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, or_, select

from state.delivery_views import DeliveryEvent, DeliveryInfo, DeliveryState
from state.lifecycle import aware
from state.tables.notify import DeliveryRow
from state.txn import read, write

if TYPE_CHECKING:
    from state.store import Store

_ERROR_MAX = 1000


@dataclass(frozen=True)
class Wanted:
    """A condition a channel should hear about once."""

    channel: str  # a stable hash of the channel's URL (never the URL: it carries secrets)
    channel_label: str  # the URL with its secrets masked, for people
    event: DeliveryEvent
    condition: str  # e.g. "deadline:12:2026-02-01T00:00:00+00:00"; unique per channel
    payload: dict[str, Any] = field(default_factory=dict)


def _info(row: DeliveryRow) -> DeliveryInfo:
    assert row.id is not None  # rows read back always have ids
    return DeliveryInfo(
        id=row.id, channel=row.channel, channel_label=row.channel_label, event=row.event,
        condition=row.condition, state=row.state, created_at=row.created_at, attempts=row.attempts,
        last_attempt_at=row.last_attempt_at, next_retry_at=row.next_retry_at, sent_at=row.sent_at,
        last_error=row.last_error, payload=dict(row.payload),
    )


def record(store: Store, wanted: Sequence[Wanted], now: datetime) -> list[int]:
    """Log the conditions not yet logged for their channel (PENDING, due at once); new row ids."""
    at = aware(now, "now")

    def work(session: Session) -> list[int]:
        table = DeliveryRow.__table__  # type: ignore[attr-defined]
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        new: list[int] = []
        for w in {(w.channel, w.condition): w for w in wanted}.values():
            values = {
                "channel": w.channel, "channel_label": w.channel_label, "event": w.event.value,
                "condition": w.condition, "state": DeliveryState.PENDING.value, "created_at": at,
                "attempts": 0, "payload": dict(w.payload),
            }
            # Two agents may log the same condition at once: the unique key keeps one.
            result = session.execute(
                insert(table).values(values).on_conflict_do_nothing(index_elements=["channel", "condition"])
                .returning(table.c.id)
            )
            inserted = result.scalar_one_or_none()
            if inserted is not None:
                new.append(int(inserted))
        return new

    return write(store, "cannot record notifications", work)


def claim(store: Store, channel: str, now: datetime, lease: timedelta,
          event: DeliveryEvent | None = None, prefix: str | None = None) -> list[DeliveryInfo]:
    """Take the channel's PENDING rows that are due (of ``event``, conditions starting with
    ``prefix``), counting an attempt on each."""
    at = aware(now, "now")

    def work(session: Session) -> list[DeliveryInfo]:
        query = select(DeliveryRow).where(
            DeliveryRow.channel == channel, DeliveryRow.state == DeliveryState.PENDING,
            or_(col(DeliveryRow.next_retry_at).is_(None), col(DeliveryRow.next_retry_at) <= at),
        )
        if event is not None:
            query = query.where(DeliveryRow.event == event)
        if prefix is not None:
            query = query.where(col(DeliveryRow.condition).startswith(prefix, autoescape=True))
        rows = list(session.exec(query.order_by(col(DeliveryRow.id)).with_for_update()))
        for row in rows:
            row.attempts += 1
            row.last_attempt_at = at
            row.next_retry_at = at + lease
        session.flush()
        return [_info(r) for r in rows]

    return write(store, "cannot claim notifications", work)


def mark_sent(store: Store, ids: Iterable[int], at: datetime) -> None:
    when = aware(at, "at")

    def work(session: Session) -> None:
        for row in _rows(session, ids):
            row.state, row.sent_at, row.next_retry_at, row.last_error = DeliveryState.SENT, when, None, None

    write(store, "cannot mark notifications sent", work)


def mark_failed(store: Store, ids: Iterable[int], error: str, retry_at: datetime | None) -> None:
    """Keep the rows PENDING until ``retry_at``; with no retry they end FAILED."""
    due = None if retry_at is None else aware(retry_at, "retry_at")

    def work(session: Session) -> None:
        for row in _rows(session, ids):
            row.last_error = error[:_ERROR_MAX]
            row.next_retry_at = due
            if due is None:
                row.state = DeliveryState.FAILED

    write(store, "cannot mark notifications failed", work)


def supersede(store: Store, ids: Iterable[int]) -> None:
    """PENDING rows whose condition gave way to another (a warning to an overdue) are never sent."""

    def work(session: Session) -> None:
        for row in _rows(session, ids):
            if row.state == DeliveryState.PENDING:
                row.state, row.next_retry_at = DeliveryState.SUPERSEDED, None

    write(store, "cannot supersede notifications", work)


def deliveries(
    store: Store,
    *,
    channel: str | None = None,
    event: DeliveryEvent | None = None,
    states: Sequence[DeliveryState] | None = None,
    prefix: str | None = None,
) -> list[DeliveryInfo]:
    """Logged deliveries, oldest first, filtered by channel, event, state and condition prefix."""
    query = select(DeliveryRow)
    if channel is not None:
        query = query.where(DeliveryRow.channel == channel)
    if event is not None:
        query = query.where(DeliveryRow.event == event)
    if states is not None:
        query = query.where(col(DeliveryRow.state).in_([DeliveryState(s).value for s in states]))
    if prefix is not None:
        query = query.where(col(DeliveryRow.condition).startswith(prefix, autoescape=True))
    query = query.order_by(col(DeliveryRow.created_at), col(DeliveryRow.id))
    return read(store, "cannot read the delivery log", lambda s: [_info(r) for r in s.exec(query)])


def prune(store: Store, before: datetime) -> int:
    """Delete settled deliveries (sent, superseded, failed) created before ``before``."""
    from sqlalchemy import delete

    cutoff = aware(before, "before")

    def work(session: Session) -> int:
        result = session.execute(
            delete(DeliveryRow).where(
                col(DeliveryRow.created_at) < cutoff, col(DeliveryRow.state) != DeliveryState.PENDING
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    return write(store, "cannot prune the delivery log", work)


def _rows(session: Session, ids: Iterable[int]) -> list[DeliveryRow]:
    wanted = sorted(set(ids))
    if not wanted:
        return []
    return list(session.exec(select(DeliveryRow).where(col(DeliveryRow.id).in_(wanted)).with_for_update()))
