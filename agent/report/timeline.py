"""Replaying finding events and scan times: pure functions, no storage.

A finding's state at any moment is the target state of its last event by then, so
a report for a past half-year shows what was true at its end, not what is true
today, and regenerating it later gives the same answer. One state ends without an
event of its own: an acceptance lapses at its end date (``until``), whether or not a
cycle has written the ``acceptance_expired`` event yet; from then on the finding
needs a fix again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby

from agent.report.model import CadenceRecord, Gap, SeriesPoint
from probes.model import instant
from schedules.remediation import CadenceState, cadence
from state.records import FindingState
from state.views import EventInfo, EventKind
from vocab import SEVERITY_ORDER

NEEDS_FIX = (FindingState.OPEN, FindingState.REOPENED)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Replay:
    """A finding as its events tell it at one moment."""

    state: FindingState
    severity: str | None  # the last severity an opening/reopening event recorded
    fixed_at: datetime | None
    reopened_at: datetime | None
    reopened_count: int
    decision_reason: str | None
    decision_by: str | None
    accepted_until: datetime | None
    changed_between: bool  # an event fell in the window asked about
    accepted_until_entered: str | None = None  # the end date as the person typed it
    config_change: tuple[str | None, str | None] | None = None  # resolved by configuration: hashes


def replay(events: Sequence[EventInfo], moment: datetime, window_start: datetime | None = None) -> Replay | None:
    """The finding at ``moment`` from its events (oldest first); None before it was opened."""
    state: FindingState | None = None
    severity = None
    fixed_at = reopened_at = accepted_until = None
    reason = by = entered = None
    config: tuple[str | None, str | None] | None = None
    reopened = 0
    changed = False
    for event in events:
        if event.at > moment:
            break
        if state is FindingState.ACCEPTED and accepted_until is not None and accepted_until <= event.at:
            # The acceptance ended before this event; no cycle may have written its expiry yet.
            changed = changed or (window_start is not None and accepted_until >= window_start)
            state, reason, by, accepted_until, entered = FindingState.OPEN, None, None, None, None
        if window_start is not None and event.at >= window_start and event.kind is not EventKind.NOTE:
            changed = True
        state = event.to_state
        if event.kind in (EventKind.OPENED, EventKind.REOPENED) and isinstance(event.detail.get("severity"), str):
            severity = event.detail["severity"]
        if event.kind in (EventKind.FIXED, EventKind.RESOLVED_BY_CONFIG):
            fixed_at = event.at
            config = ((_text(event.detail.get("config_hash_before")), _text(event.detail.get("config_hash_after")))
                      if event.kind is EventKind.RESOLVED_BY_CONFIG else None)
        elif event.kind is EventKind.REOPENED:
            fixed_at, reopened_at, reopened, config = None, event.at, reopened + 1, None
        if event.kind in (EventKind.ACCEPTED, EventKind.FALSE_POSITIVE):
            reason, by = _text(event.detail.get("reason")), _text(event.detail.get("by"))
            accepted_until = _time(event.detail.get("until")) if event.kind is EventKind.ACCEPTED else None
            entered = _text(event.detail.get("until_entered")) if event.kind is EventKind.ACCEPTED else None
        elif event.kind is EventKind.ACCEPTANCE_EXPIRED:
            reason = by = accepted_until = entered = None
    if state is None:
        return None
    if state is FindingState.ACCEPTED and accepted_until is not None and accepted_until <= moment:
        # The acceptance has ended; no cycle may have written its expiry yet.
        changed = changed or (window_start is not None and accepted_until >= window_start)
        state, reason, by, accepted_until, entered = FindingState.OPEN, None, None, None, None
    return Replay(state, severity, fixed_at, reopened_at, reopened, reason, by, accepted_until, changed,
                  entered, config)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _time(value: object) -> datetime | None:
    return instant(value)  # the one reader of stored ISO times


FOREVER = datetime.max.replace(tzinfo=UTC)


def open_intervals(events: Sequence[EventInfo], end: datetime) -> list[tuple[datetime, datetime]]:
    """The stretches [start, stop) during which the finding needed a fix, by events up to ``end``.

    A stretch still open at ``end`` stops at :data:`FOREVER`, so ``end`` itself counts.
    """
    out: list[tuple[datetime, datetime]] = []
    opened: datetime | None = None
    lapses: datetime | None = None  # when the acceptance in force ends
    for event in events:
        if event.at > end:
            break
        if lapses is not None and lapses <= event.at and opened is None:
            opened = lapses
        if event.kind is EventKind.ACCEPTED:
            lapses = _time(event.detail.get("until"))
        elif event.to_state is not FindingState.ACCEPTED:  # a note leaves the acceptance as it was
            lapses = None
        needs = event.to_state in NEEDS_FIX
        if needs and opened is None:
            opened = event.at
        elif not needs and opened is not None:
            out.append((opened, event.at))
            opened = None
    if lapses is not None and lapses <= end and opened is None:
        opened = lapses
    if opened is not None:
        out.append((opened, FOREVER))
    return out


def step_series(
    stretches: Sequence[tuple[str, Sequence[tuple[datetime, datetime]]]], since: datetime, as_of: datetime
) -> tuple[SeriesPoint, ...]:
    """Findings needing a fix, by severity, as a step function over [since, as_of].

    One point at ``since``, one wherever a count changes, one at ``as_of``: exact (the
    counts change only at events) and small, whatever the period's length. Each
    stretch [start, stop) adds one at its start and takes it away at its stop.
    """
    deltas: list[tuple[datetime, str, int]] = []
    for severity, spans in stretches:
        for start, stop in spans:
            if stop <= since or start > as_of:
                continue
            deltas.append((max(start, since), severity, 1))
            if stop <= as_of:
                deltas.append((stop, severity, -1))
    deltas.sort(key=lambda d: d[0])
    counts = dict.fromkeys(map(str, SEVERITY_ORDER), 0)
    points = [SeriesPoint(since, dict(counts))]
    for moment, group in groupby(deltas, key=lambda d: d[0]):
        for _, severity, step in group:
            counts[severity] = counts.get(severity, 0) + step
        if counts == points[-1].counts:
            continue
        if moment == points[-1].at:
            points[-1] = SeriesPoint(moment, dict(counts))
        else:
            points.append(SeriesPoint(moment, dict(counts)))
    if points[-1].at < as_of:
        points.append(SeriesPoint(as_of, dict(counts)))
    return tuple(points)


def cadence_record(
    complete: Sequence[datetime],
    previous: datetime | None,
    added_at: datetime | None,
    since: datetime,
    as_of: datetime,
    *,
    cadence_days: int,
    warn_days: int,
) -> CadenceRecord:
    """The half-yearly scan record: complete scans in [since, as_of), gaps longer than the cadence.

    ``previous`` is the last complete scan before the period; the first stretch is
    measured from it (or from when the asset was added: an asset never scanned
    counts from then, as cadence alerts do).
    """
    limit = timedelta(days=cadence_days)
    in_period = tuple(t for t in complete if since <= t < as_of)
    if added_at is None:
        # Configured but never even registered: the period has no evidence at all.
        days = (as_of - since) // DAY
        return CadenceRecord(cadence_days, warn_days, (), None, (Gap(since, as_of, days, True),),
                             CadenceState.OVERDUE, since, -days, None)
    gaps: list[Gap] = []
    anchor = previous or added_at
    for moment in in_period:
        if moment - anchor > limit and moment > since:
            gaps.append(Gap(anchor, moment, (moment - anchor) // DAY, False))
        anchor = moment
    if as_of - anchor > limit:
        gaps.append(Gap(anchor, as_of, (as_of - anchor) // DAY, True))
    last = in_period[-1] if in_period else previous
    state = cadence(last, added_at, as_of, cadence_days=cadence_days, warn_days=warn_days)
    return CadenceRecord(cadence_days, warn_days, in_period, previous, tuple(gaps), state.state, state.due,
                         state.days_left, last)
