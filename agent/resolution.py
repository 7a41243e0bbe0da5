"""Telling a fix from a configuration change (issue 14, item 5).

A finding that vanishes is ``fixed`` only when a later scan observed the condition gone.
When it vanishes because the configuration that judges the asset changed (an allow-list,
a declared control, a severity override, the asset kind, probe settings) it is
``resolved_by_config``. Two facts on every scan make the difference visible to storage:

- :func:`asset_config_hash`: a hash of everything that decides what a scan of one asset
  reports; the lifecycle compares the hash of the scan that last saw a finding with the
  hash of the scan where it vanished.
- :func:`still_observed`: the conditions a probe run still observed whether or not it
  reported them (a port open but now allowed). ``None`` when the probe cannot say: then a
  vanished finding under a changed configuration is not claimed fixed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.targets import AssetSpec


def asset_config_hash(spec: AssetSpec, settings: Mapping[str, Any], overrides: Mapping[str, str]) -> str:
    """16 hex digits of SHA-256 over the asset's judging configuration (canonical JSON)."""
    doc = {
        "kind": spec.kind,
        "url": spec.url.normalised,
        "allowed_ports": sorted(spec.allowed_ports) if spec.allowed_ports is not None else None,
        "declared": dict(sorted(spec.declared.items())),
        "scan_ports": list(spec.scan_ports) if spec.scan_ports is not None else None,
        "settings": settings,
        "severity": dict(sorted(overrides.items())),
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _ports(observations: Mapping[str, Any]) -> frozenset[tuple[str, str]] | None:
    from probes.ports_judge import CHECK_ID

    addresses = observations.get("addresses")
    if not isinstance(addresses, dict):
        return None
    found: set[tuple[str, str]] = set()
    for scan in addresses.values():
        if not isinstance(scan, dict) or scan.get("scanned") is False:
            return None  # an address nmap could not scan tells nothing about its ports
        for port in scan.get("open", []):
            if isinstance(port, dict) and isinstance(port.get("port"), int):
                found.add((CHECK_ID, str(port["port"])))
    return frozenset(found)


# probe name -> what its observations say is still there. Probes not listed cannot tell.
_OBSERVED: dict[str, Callable[[Mapping[str, Any]], frozenset[tuple[str, str]] | None]] = {
    "ports": _ports,
}


def still_observed(probe: str, observations: Mapping[str, Any]) -> frozenset[tuple[str, str]] | None:
    """(check_id, key) of every condition the run observed, reported or not; None: cannot tell."""
    reader = _OBSERVED.get(probe)
    return reader(observations) if reader is not None else None
