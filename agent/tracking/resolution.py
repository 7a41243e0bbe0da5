"""Telling a fix from a configuration change (issue 14, item 5).

A finding that vanishes is ``fixed`` only when a later scan observed the condition gone.
When it vanishes because the configuration that judges the asset changed (an allow-list,
a declared control, a severity override, the asset kind, probe settings) it is
``resolved_by_config``. Two facts on every scan make the difference visible to storage:

- :func:`probe_config_hash`: per probe run, a hash of what decides that probe's findings
  on the asset; the lifecycle compares the hash of the run that last reported a finding
  with the hash of the run where it vanished (a changed TLS threshold says nothing about
  a fixed HSTS header). :func:`asset_config_hash` is the whole asset's, kept on the scan.
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


_SHARED_SECTIONS = frozenset({"web", "eol"})  # probes.net.web.SHARED_SECTION, probes.eol.model.Settings.SECTION

# Asset fields (besides kind and probe settings) that decide one probe's findings.
_ASSET_FIELDS: dict[str, tuple[str, ...]] = {"ports": ("allowed_ports",), "edge": ("declared",)}


def probe_config_hash(target: Target, probe: str, overrides: Mapping[str, str]) -> str:
    """16 hex digits over what decides ``probe``'s findings on this asset: the kind, the
    probe's settings (with the asset's own port list), the asset fields it reads (the
    allow-list for ports, declared controls for edge) and severity overrides."""
    fields = {name: getattr(target, name) for name in _ASSET_FIELDS.get(probe, ())}
    doc = {
        "kind": str(target.kind),
        "settings": target.probe_settings(probe),
        "fields": {k: sorted(v) if isinstance(v, frozenset) else v for k, v in fields.items()},
        "severity": dict(sorted(overrides.items())),
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def asset_config_hash(spec: AssetSpec, settings: Mapping[str, Any], overrides: Mapping[str, str]) -> str:
    """16 hex digits of SHA-256 over the asset's judging configuration (canonical JSON)."""
    doc = {
        # Not the URL: pointing the asset elsewhere re-targets the scan, it hides nothing;
        # what the new target shows is observed, fixed or not.
        "kind": spec.kind,
        "allowed_ports": sorted(spec.allowed_ports) if spec.allowed_ports is not None else None,
        "declared": dict(sorted(spec.declared.items())),
        "scan_ports": list(spec.scan_ports) if spec.scan_ports is not None else None,
        # Shared sections ("web", "eol") are copies of probe sections already here: left out, so the
        # hash stays what it was before they were passed separately.
        "settings": {k: v for k, v in settings.items() if k not in _SHARED_SECTIONS},
        "severity": dict(sorted(overrides.items())),
    }
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _ports(observations: Mapping[str, Any], target: Target) -> Observed | None:
    """Every open port nmap saw (allowed or not), among the ports this scan looked at."""
    from probes.ports.judge import CHECK_ID, default_port_table
    from probes.ports.model import Observations as PortsObservations
    from probes.ports.model import Settings as PortsSettings

    seen = PortsObservations.from_json(observations)
    if not seen.scanned_everywhere:
        return None  # an address nmap could not scan tells nothing about its ports
    present = {(CHECK_ID, str(port)) for ports in seen.open_ports().values() for port in ports}
    try:
        scanned = PortsSettings.from_settings(target.probe_settings("ports"), default_port_table()).ports
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
