"""The ports probe's typed ``Settings`` and ``Observations`` (see :mod:`probes.model`).

Stored shape of the observations (keys appear as the run got that far)::

    {"port_list": "default"|"configured", "ports_scanned", "allowed_ports", "allowed_from",
     "skipped_addresses"?, "nmap"?: {"path", "version"},
     "addresses": {ADDRESS: {"open": [{"port", "protocol", "state", "service", ...}],
                             "service_detection", "commands", "elapsed", "scanned"?: false}},
     "elapsed"}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from probes.base import ProbeFailure
from probes.model import JSON, Bound, integer, mapping, split, text
from probes.ports.judge import PortTable, default_port_table

#: Evidence keys that summarise a ports finding in one line, first present wins (agent/output.py).
#: End-of-life findings (probes/eol) have none: their title says it.
SUMMARY_KEYS = ("reason", "service", "addresses")


class SettingsError(ProbeFailure):
    """The asset's ``[ports]`` settings are unusable."""


SETTINGS_KEYS = frozenset({"ports", "nmap_path", "max_rate", "host_timeout", "eol_data"})


@dataclass(frozen=True)
class Settings:
    """``[ports]``. ``eol_data`` is accepted here (where the config writes it) and passed to the
    http and ports probes alike as the shared ``eol`` section (:mod:`probes.eol.model`)."""

    ports: tuple[int, ...]
    port_list: str  # "default" or "configured"
    nmap_path: str | None = None
    max_rate: int = 200  # packets per second
    host_timeout: float = 60.0  # seconds, per nmap run
    eol_data: str | None = None  # a refreshed EOL data file instead of the shipped one

    SECTION: ClassVar[str] = "ports"
    BOUNDS: ClassVar[Mapping[str, Bound]] = {
        "port": Bound(1, 65535),
        "max_rate": Bound(1, 10000),
        "host_timeout": Bound(0, 3600, above=True),
    }

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], table: PortTable) -> Settings:
        unknown = sorted(set(settings) - SETTINGS_KEYS)
        if unknown:
            raise SettingsError(f"unknown ports setting(s): {', '.join(unknown)}")
        raw_ports = settings.get("ports")
        if raw_ports is None:
            ports, port_list = table.default_ports, "default"
        else:
            if not isinstance(raw_ports, list | tuple) or not raw_ports or not all(
                isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in raw_ports
            ):
                raise SettingsError("ports setting must be a non-empty list of port numbers 1-65535")
            ports, port_list = tuple(sorted(set(raw_ports))), "configured"
        nmap_path = settings.get("nmap_path")
        if nmap_path is not None and (not isinstance(nmap_path, str) or not nmap_path):
            raise SettingsError("nmap_path setting must be a path")
        max_rate = settings.get("max_rate", cls.max_rate)
        host_timeout = settings.get("host_timeout", cls.host_timeout)
        try:
            cls.BOUNDS["max_rate"].check(cls.SECTION, "max_rate", max_rate, integer=True)
            cls.BOUNDS["host_timeout"].check(cls.SECTION, "host_timeout", host_timeout)
        except ValueError as exc:
            raise SettingsError(f"{exc} (max_rate: packets per second; host_timeout: seconds)") from None
        eol_data = settings.get("eol_data")
        if eol_data is not None and not isinstance(eol_data, str):
            raise SettingsError("eol_data setting must be a path")
        return cls(ports, port_list, nmap_path, max_rate, float(host_timeout), eol_data)

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Settings:
        """Settings from ``[ports]``, against the shipped port table; ValueError (a SettingsError) when unusable."""
        try:
            return cls.from_settings(raw, default_port_table())
        except SettingsError as exc:
            raise ValueError(str(exc)) from None

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"max_rate": self.max_rate, "host_timeout": self.host_timeout}
        if self.port_list == "configured":
            out["ports"] = list(self.ports)
        if self.nmap_path is not None:
            out["nmap_path"] = self.nmap_path
        if self.eol_data is not None:
            out["eol_data"] = self.eol_data
        return out


@dataclass(frozen=True)
class Observations:
    port_list: str | None = None
    ports_scanned: int | None = None
    allowed_ports: tuple[int, ...] | None = None
    allowed_from: str | None = None
    skipped_addresses: Mapping[str, str] | None = None
    nmap: Mapping[str, JSON] | None = None  # {"path", "version"}
    addresses: Mapping[str, Mapping[str, JSON]] | None = None  # address -> what nmap found there
    elapsed: float | None = None
    rest: Mapping[str, JSON] = field(default_factory=dict)

    _KEYS: ClassVar[tuple[str, ...]] = ("port_list", "ports_scanned", "allowed_ports", "allowed_from",
                                        "skipped_addresses", "nmap", "addresses", "elapsed")

    @property
    def scanned_everywhere(self) -> bool:
        """nmap scanned at least one address and every one it was given (else it tells nothing of ports)."""
        return bool(self.addresses) and all(s.get("scanned") is not False for s in (self.addresses or {}).values())

    def open_ports(self) -> dict[str, list[int]]:
        """Address -> the open port numbers; an address nmap could not scan is left out."""
        out: dict[str, list[int]] = {}
        for address, scan in (self.addresses or {}).items():
            if scan.get("scanned") is False:
                continue
            opened = scan.get("open")
            out[address] = [p for e in (opened if isinstance(opened, list) else [])
                            if isinstance(e, Mapping) and (p := integer(e.get("port"))) is not None]
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, JSON]) -> Observations:
        allowed = raw.get("allowed_ports")
        skipped = mapping(raw.get("skipped_addresses"))
        addresses = mapping(raw.get("addresses"))
        elapsed = raw.get("elapsed")
        return cls(
            port_list=text(raw.get("port_list")),
            ports_scanned=integer(raw.get("ports_scanned")),
            allowed_ports=tuple(p for p in allowed if isinstance(p, int)) if isinstance(allowed, list) else None,
            allowed_from=text(raw.get("allowed_from")),
            skipped_addresses=None if skipped is None else {str(k): str(v) for k, v in skipped.items()},
            nmap=mapping(raw.get("nmap")),
            addresses=None if addresses is None else {
                str(a): dict(s) if isinstance(s, Mapping) else {} for a, s in addresses.items()},
            elapsed=elapsed if isinstance(elapsed, int | float) and not isinstance(elapsed, bool) else None,
            rest=split(raw, cls._KEYS),
        )

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        values: dict[str, JSON] = {
            "port_list": self.port_list, "ports_scanned": self.ports_scanned,
            "allowed_ports": list(self.allowed_ports) if self.allowed_ports is not None else None,
            "allowed_from": self.allowed_from,
            "skipped_addresses": dict(self.skipped_addresses) if self.skipped_addresses is not None else None,
            "nmap": dict(self.nmap) if self.nmap is not None else None,
            "addresses": {a: dict(s) for a, s in self.addresses.items()} if self.addresses is not None else None,
            "elapsed": self.elapsed,
        }
        out.update({k: v for k, v in values.items() if v is not None})
        out.update(self.rest)
        return out
