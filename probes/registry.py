"""Probe registry: name -> class, imported only when used (keeps CLI start-up light).

Adding a probe is adding a line here, a module, and its catalog entries.
Order is the order a scan runs and reports them.

A scan asks every probe whether it applies to the asset, also those ``--probe`` left out (they
are recorded as skipped, so a narrowed scan is never taken for a full one). Importing every
probe's module to answer costs a narrowed scan start-up time (edge, leak, social, ports and
what they import) for probes it does not run, so each line also says, as data, whether the
probe is active and to which targets it applies; :func:`load_probe` returns a
:class:`LazyProbe` that answers those from the line and imports the probe's module on the
first use of anything else (``checks``, ``run``, the optional flags). A test holds each line
to its class (``tests/agent/test_startup_imports.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from probes.base import Probe, ProbeContext, ProbeResult, Target
from vocab import AssetKind


@dataclass(frozen=True)
class ProbeLine:
    where: str  # "module:Class"
    active: bool  # the class's ``active``
    applies: Callable[[Target], bool]  # the class's ``applies``


_PROBES: dict[str, ProbeLine] = {
    "tls": ProbeLine("probes.tls.probe:TlsProbe", False, lambda t: t.uses_tls),
    "http": ProbeLine("probes.http.probe:HttpProbe", False, lambda t: t.is_web),
    "edge": ProbeLine("probes.edge.probe:EdgeProbe", False, lambda t: t.is_web),
    "leak": ProbeLine("probes.leak.probe:LeakProbe", True, lambda t: t.is_web and t.active),
    "social": ProbeLine("probes.social.probe:SocialProbe", False,
                        lambda t: t.kind is AssetKind.WEBSITE and t.scheme in ("http", "https")),
    "ports": ProbeLine("probes.ports.probe:PortsProbe", True, lambda t: True),
}


def probe_names() -> list[str]:
    return list(_PROBES)


def probe_line(name: str) -> ProbeLine:
    try:
        return _PROBES[name]
    except KeyError:
        raise KeyError(f"unknown probe {name!r} (known: {', '.join(_PROBES)})") from None


def declared_checks(name: str) -> frozenset[str]:
    """The check IDs the probe ``name`` declares it can raise (its class's ``checks``)."""
    return load_probe(name).checks


def probe_class(name: str) -> type[Probe]:
    """The probe's class (its module imported now)."""
    module_name, _, cls_name = probe_line(name).where.partition(":")
    cls: type[Probe] = getattr(importlib.import_module(module_name), cls_name)
    return cls


class LazyProbe:
    """The probe ``name``: ``name``, ``active`` and ``applies`` from its registry line, the rest
    from the probe itself, built on first use. A module that cannot be imported fails ``run``
    (the scan records the error on that probe) and reads as missing optional attributes."""

    def __init__(self, name: str, line: ProbeLine) -> None:
        self.name = name
        self.active = line.active
        self._line = line
        self._probe: Probe | None = None

    def loaded(self) -> Probe:
        if self._probe is None:
            self._probe = probe_class(self.name)()
        return self._probe

    @property
    def checks(self) -> frozenset[str]:
        return self.loaded().checks

    def applies(self, target: Target) -> bool:
        return self._line.applies(target)

    def run(self, target: Target, ctx: ProbeContext) -> Awaitable[ProbeResult]:
        async def run() -> ProbeResult:
            return await self.loaded().run(target, ctx)  # an import error is raised here, in the scan's await

        return run()

    def __getattr__(self, attr: str) -> Any:  # the probe's optional flags (holds_host, active_part)
        if attr.startswith("_"):
            raise AttributeError(attr)
        try:
            probe = self.loaded()
        except Exception as exc:  # run() reports it; until then the probe has no optional flags
            raise AttributeError(f"probe {self.name} could not be loaded: {exc}") from exc
        return getattr(probe, attr)


def load_probe(name: str) -> Probe:
    """The probe ``name`` (a :class:`LazyProbe`: its module is imported when it runs)."""
    # cast: Probe declares ``checks`` as a plain attribute, LazyProbe reads it from the probe it loads
    return cast(Probe, LazyProbe(name, probe_line(name)))
