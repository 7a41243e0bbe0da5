"""What an export carries: the findings chosen by ``--since``/``--asset``, with what each needs.

Both formats share this, so a finding has one stable identifier (:func:`uid`) and one
reading of its state wherever it goes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from agent.config import Config
    from probes.catalog import Catalog, Check, Clause
    from state.store import Store
    from state.views import FindingInfo

EXPORT_VERSION = "1"  # bump when a field changes meaning or goes away; adding fields keeps it


@dataclass(frozen=True)
class Item:
    finding: FindingInfo
    check: Check
    clauses: tuple[Clause, ...]
    url: str  # the asset's URL: no user, password, query or fragment
    kind: str
    deadline: datetime | None


def uid(f: FindingInfo) -> str:
    """Stable across exports and databases: the same asset, check and key give the same id."""
    digest = hashlib.sha256("\x1f".join(("posture", f.asset, f.check_id, f.key)).encode()).hexdigest()
    return f"posture-{digest[:32]}"


def safe_url(url: str) -> str:
    """``scheme://host[:port]/path`` with any user info, query and fragment removed."""
    p = urlsplit(url)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, netloc, p.path, "", ""))


def gather(store: Store, cfg: Config, catalog: Catalog, since: datetime | None, asset: str | None,
           now: datetime) -> list[Item]:
    """Findings as they stand at ``now`` with anything seen or decided at or after ``since`` (all when
    None), oldest first. An acceptance past its end date is over: the finding is open again."""
    from agent.targets import hide_values, query_values
    from agent.tracking.remediation import deadline_policy, deadlines
    from state.lifecycle import NEEDS_FIX
    from state.views import FindingFilter

    assets = {a.name: a for a in store.assets()}
    rows = [f for f in store.findings(FindingFilter.ALL, asset, now=now)
            if since is None or _touched(f, now) >= since]
    due = deadlines(store, deadline_policy(cfg), [f for f in rows if f.state in NEEDS_FIX],
                    {n: a.kind for n, a in assets.items()})
    by_check: dict[str, list[Clause]] = {}
    for clause in catalog.clauses.values():
        for check_id in clause.checks:
            by_check.setdefault(check_id, []).append(clause)
    out = []
    for f in sorted(rows, key=lambda r: (r.first_seen, r.id)):
        info = assets.get(f.asset)
        check = catalog.checks.get(f.check_id) or _unknown(f)
        if info is not None and query_values(info.url):  # evidence quoting the URL: its query values masked
            f = replace(f, evidence=hide_values(f.evidence, query_values(info.url)))
        out.append(Item(f, check, tuple(by_check.get(f.check_id, ())),
                        safe_url(info.url) if info else "", info.kind if info else "", due.get(f.id)))
    return out


def _touched(f: FindingInfo, now: datetime) -> datetime:
    lapsed = f.accepted_until if f.accepted_until is not None and f.accepted_until <= now else None
    return max(t for t in (f.first_seen, f.last_seen, f.fixed_at, lapsed) if t is not None)


def _unknown(f: FindingInfo) -> Check:
    """A check the running catalog no longer has (stored by an older posture): its id stands in."""
    from probes.catalog import Check

    return Check(id=f.check_id, severity=f.severity, title_en=f.check_id, title_zh=f.check_id,  # type: ignore[arg-type]
                 remediation_en="", remediation_zh="", references=())
