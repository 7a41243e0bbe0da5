"""Telling a fix from a configuration change (issue 14, item 5).

A finding that vanishes is ``fixed`` only when a later scan observed the condition gone.
When it vanishes because the configuration that judges the asset changed (an allow-list,
a declared control, a severity override, the asset kind, probe settings) it is
``resolved_by_config``. Two facts on every scan make the difference visible to storage:

- :func:`asset_config_hash`: a hash of everything that decides what a scan of one asset
  reports; the lifecycle compares the hash of the scan that last saw a finding with the
  hash of the scan where it vanished.
- :func:`observed`: the conditions a probe run still observed whether or not it
  reported them (a port open but now allowed), and what it looked at (the ports scanned).
  ``None`` when the probe cannot say: then a vanished finding under a changed
  configuration is not claimed fixed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from state.records import Observed

if TYPE_CHECKING:
    from agent.targets import AssetSpec
    from probes.base import Target


def asset_config_hash(spec: AssetSpec, settings: Mapping[str, Any], overrides: Mapping[str, str]) -> str:
    """16 hex digits of SHA-256 over the asset's judging configuration (canonical JSON)."""
    doc = {
        # Not the URL: pointing the asset elsewhere re-targets the scan, it hides nothing;
        # what the new target shows is observed, fixed or not.
        "kind": spec.kind,
        "allowed_ports": sorted(spec.allowed_ports) if spec.allowed_ports is not None else None,
        "declared": dict(sorted(spec.declared.items())),
        "scan_ports": list(spec.scan_ports) if spec.scan_ports is not None else None,
        "settings": settings,
        "severity": dict(sorted(overrides.items())),
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _ports(observations: Mapping[str, Any], target: Target) -> Observed | None:
    """Every open port nmap saw (allowed or not), among the ports this scan looked at."""
    from probes.ports import ScanSettings
    from probes.ports_judge import CHECK_ID, default_port_table

    addresses = observations.get("addresses")
    if not isinstance(addresses, dict) or not addresses:
        return None
    present: set[tuple[str, str]] = set()
    for scan in addresses.values():
        if not isinstance(scan, dict) or scan.get("scanned") is False:
            return None  # an address nmap could not scan tells nothing about its ports
        for port in scan.get("open", []):
            if isinstance(port, dict) and isinstance(port.get("port"), int):
                present.add((CHECK_ID, str(port["port"])))
    try:
        scanned = ScanSettings.from_settings(target.probe_settings("ports"), default_port_table()).ports
    except Exception:  # settings the probe itself refused: it reported an error, not OK
        return None
    return Observed(frozenset({CHECK_ID}), frozenset(present), frozenset((CHECK_ID, str(p)) for p in scanned))


# probe name -> what its observations say is still there. Probes not listed cannot tell.
_OBSERVED: dict[str, Callable[[Mapping[str, Any], Target], Observed | None]] = {
    "ports": _ports,
}


def observed(probe: str, observations: Mapping[str, Any], target: Target) -> Observed | None:
    """What the run observed, reported or not; None: the probe cannot tell."""
    reader = _OBSERVED.get(probe)
    return reader(observations, target) if reader is not None else None
