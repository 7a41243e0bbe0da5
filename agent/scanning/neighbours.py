"""Assets that must be left alone now protect what shares their address.

Quiet hours and ``active_probes = false`` are set per asset, but an active probe acts on an
address: a website on the same address as a trading gateway would otherwise port-scan the
gateway (nmap walks every port of the address) in market hours, while the gateway's own
record says it was left alone. So, before an asset is probed, every other configured asset
that must be left alone now is looked up (DNS only, each host once per run), and where its
answers share an address with this asset's:

* on this asset's own port as well (one service, two names): this asset is passive too;
* on another port: this asset's probes that take the whole address (the port scan) are
  skipped, the neighbour named as the reason.

Both are recorded as skips, so the scan is partial and no finding of a skipped probe is
closed by it. ``--force-active`` lifts an asset's own quiet window, not its neighbours'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from agent.scanning.options import ScanOptions
from agent.targets import AssetSpec


@dataclass(frozen=True)
class Guard:
    """Why this asset must hold back for a neighbour, or None: on its endpoint, on its addresses."""

    endpoint: str | None = None
    address: str | None = None


def left_alone(spec: AssetSpec, at: datetime, opts: ScanOptions) -> list[tuple[AssetSpec, str]]:
    """The other configured assets that must be left alone at ``at``, each with why."""
    out = []
    for other in opts.neighbours:
        if other.name == spec.name:
            continue
        why = None
        if not other.active_probes:
            why = f"active probes are off for {other.name}"
        elif opts.quiet is not None:
            why = opts.quiet(other, at)
        if why:
            out.append((other, why))
    return out


async def guard(spec: AssetSpec, usable: Iterable[str], at: datetime, opts: ScanOptions,
                answers: Callable[[AssetSpec], Awaitable[tuple[str, ...]]]) -> Guard:
    """What this asset (probing ``usable``) must leave out for its neighbours at ``at``.

    ``answers`` gives a neighbour's addresses as its DNS answered (refused ones included:
    sharing is about where packets go, not about what posture may probe); () when unknown.
    """
    mine = set(usable)
    endpoint = address = None
    for other, why in left_alone(spec, at, opts):
        shared = sorted(mine & set(await answers(other)))
        if not shared:
            continue
        where = ", ".join(shared)
        if other.url.port == spec.url.port and endpoint is None:
            endpoint = f"{other.name} ({other.kind}) is the same service ({where} port {other.url.port}): {why}"
        if address is None:
            address = f"{other.name} ({other.kind}) shares {where} (its port {other.url.port}): {why}"
    return Guard(endpoint, address)
