"""Probe registry: name -> class, imported only when used (keeps CLI start-up light).

Adding a probe is adding a line here, a module, and its catalog entries.
Order is the order a scan runs and reports them.
"""

from __future__ import annotations

import importlib

from probes.base import Probe

_PROBES: dict[str, str] = {
    "tls": "probes.tls.probe:TlsProbe",
    "http": "probes.http.probe:HttpProbe",
    "edge": "probes.edge.probe:EdgeProbe",
    "leak": "probes.leak.probe:LeakProbe",
    "social": "probes.social.probe:SocialProbe",
    "ports": "probes.ports.probe:PortsProbe",
}


def probe_names() -> list[str]:
    return list(_PROBES)


def declared_checks(name: str) -> frozenset[str]:
    """The check IDs the probe ``name`` declares it can raise (its class's ``checks``)."""
    return load_probe(name).checks


def load_probe(name: str) -> Probe:
    try:
        spec = _PROBES[name]
    except KeyError:
        raise KeyError(f"unknown probe {name!r} (known: {', '.join(_PROBES)})") from None
    module_name, _, cls_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    probe: Probe = cls()
    return probe
