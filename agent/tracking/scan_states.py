"""Where the findings a scan just reported stand in the stored record: state, first seen, deadline.

``posture scan --format json`` gives pipelines these per finding, and ``--fail-on`` decides
on the state: an accepted risk or a false positive does not fail a build, an open finding does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.session import Session


@dataclass(frozen=True)
class Standing:
    state: str
    first_seen: datetime
    deadline: datetime | None


def standings(session: Session, assets: Iterable[str], ids: set[int]) -> dict[int, Standing]:
    """finding id -> its standing, for the ``ids`` of the scanned ``assets``."""
    from agent.tracking.remediation import deadline_policy, deadlines
    if not ids:
        return {}
    with session.open_store() as store:
        scanned = set(assets)
        rows = [f for f in store.findings_with_ids(ids) if f.asset in scanned]
        kinds = {a.name: a.kind for a in store.assets()}
        due = deadlines(store, deadline_policy(session.config), rows, kinds)
    return {f.id: Standing(f.state.value, f.first_seen, due.get(f.id)) for f in rows}


def annotate(docs: list[dict[str, Any]], found: Mapping[int, Standing]) -> None:
    """Add ``state``, ``first_seen`` and ``deadline`` to each finding of the scan documents."""
    from agent.output import iso

    for doc in docs:
        for f in doc["findings"]:
            s = found.get(f["id"]) if f.get("id") is not None else None
            f["state"] = s.state if s else None
            f["first_seen"] = iso(s.first_seen) if s else None
            f["deadline"] = iso(s.deadline) if s else None


def failing(docs: Iterable[Mapping[str, Any]], threshold: str) -> list[Mapping[str, Any]]:
    """The findings that still need fixing at or above ``threshold`` (what ``--fail-on`` fails on)."""
    from probes.base import Severity
    from state.lifecycle import NEEDS_FIX

    needs_fix = {s.value for s in NEEDS_FIX}
    floor = Severity(threshold).rank
    out = []
    for doc in docs:
        for f in doc["findings"]:
            try:
                rank = Severity(f["severity"]).rank
            except ValueError:
                continue
            if f.get("state") in needs_fix and rank >= floor:
                out.append(f)
    return out


def unverified(session: Session, outcomes: Iterable[Any], threshold: str,
               requested: Iterable[str] | None = None) -> list[tuple[int, str, str]]:
    """Stored findings of the scanned assets still needing a fix at or above ``threshold`` that this
    scan was to look at again but could not (their probe failed, was skipped or left a part out): a
    gate must not read a scan that did not look as a scan that found nothing. Probes outside
    ``requested`` (``--probe``) are not this scan's business. (id, asset, probe) each."""
    from probes.base import Severity
    from state.records import RunStatus
    from state.views import FindingFilter

    floor = Severity(threshold).rank
    outcomes = list(outcomes)
    wanted = set(requested) if requested else None
    missed: dict[str, set[str]] = {}
    for o in outcomes:
        missed.setdefault(o.record.asset.name, set()).update(
            r.probe for r in o.record.probe_runs
            if (RunStatus(r.status) != RunStatus.OK or r.skip_reason) and (wanted is None or r.probe in wanted))
    if not any(missed.values()):
        return []
    now = max(o.record.finished_at for o in outcomes)
    with session.open_store() as store:
        rows = [f for name, probes in missed.items() if probes
                for f in store.findings(FindingFilter.OPEN, asset=name, now=now)]
    out = []
    for f in rows:
        try:
            rank = Severity(f.severity).rank
        except ValueError:
            continue
        if rank >= floor and f.probe in missed[f.asset]:
            out.append((f.id, f.asset, f.probe))
    return sorted(out)
