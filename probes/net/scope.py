"""Which addresses posture will ever connect to, and per-host accounting.

The agent resolves each asset's name once and pins the result; every
connection afterwards goes through :class:`Pins`, which refuses any host or
address it was not given. That is how "probes only configured assets" is
enforced in one place instead of in every probe.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import idna

from probes.base import BudgetExhausted, OutOfScope

# Cloud instance-metadata endpoints: never a scan target, whatever DNS says.
METADATA_ADDRESSES = frozenset(
    {
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IPv6
    }
)


def refusal_reason(address: str) -> str | None:
    """Why ``address`` may never be probed, or None when it may."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # ::ffff:169.254.169.254 reaches the metadata service as surely as the IPv4 form.
        inner = refusal_reason(str(embedded))
        if inner:
            return f"{inner} (embedded in {ip})"
    if str(ip) in METADATA_ADDRESSES:
        return "cloud metadata address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if ip.is_unspecified:
        return "unspecified address"
    if isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast address"
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped or NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


@functools.lru_cache(maxsize=4096)
def normalise_host(host: str) -> str:
    """The one normal form of a host name, used everywhere (scope, pins, DNS, SNI, Host, certificate names, output).

    A name becomes its A-label form (IDNA 2008 with UTS #46 mapping, as browsers
    apply it): ``證券.台灣`` and ``XN--ZCR140L.xn--kpry57d.`` are both
    ``xn--zcr140l.xn--kpry57d``; lowercase, no trailing dot, no brackets. An IP
    literal becomes its canonical text. A name IDNA refuses (an underscore
    label, a broken A-label) is only lowercased: whether it is a valid host
    is for the caller to decide (:func:`unicode_host` shows it to people).
    """
    text = host.strip().strip("[]").rstrip(".")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    lowered = text.lower()
    if lowered.isascii() and "xn--" not in lowered:
        return lowered  # plain ASCII: nothing for IDNA to do
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return lowered


def unicode_host(host: str) -> str | None:
    """The Unicode form of an internationalised name (for people, beside the A-label); None when it is not one."""
    name = normalise_host(host)
    if "xn--" not in name:
        return None
    try:
        shown = idna.decode(name)
    except (idna.IDNAError, UnicodeError, ValueError):
        return None
    return shown if shown != name else None


@dataclass
class Pins:
    """host -> pinned addresses, plus per-host concurrency and budgets."""

    hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    per_host_concurrency: int = 4
    host_budget: int = 300
    requests: Counter[str] = field(default_factory=Counter)
    connections: Counter[str] = field(default_factory=Counter)
    _gates: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    @classmethod
    def of(cls, hosts: Mapping[str, Iterable[str]], *, per_host_concurrency: int = 4, host_budget: int = 300) -> Pins:
        return cls(
            hosts={normalise_host(h): tuple(a) for h, a in hosts.items()},
            per_host_concurrency=per_host_concurrency,
            host_budget=host_budget,
        )

    def add(self, host: str, addresses: Iterable[str]) -> None:
        self.hosts[normalise_host(host)] = tuple(addresses)

    def addresses(self, host: str) -> tuple[str, ...]:
        key = normalise_host(host)
        if key not in self.hosts:
            raise OutOfScope(f"{host} is not a configured asset host")
        return self.hosts[key]

    def check(self, host: str, address: str) -> None:
        if address not in self.addresses(host):
            raise OutOfScope(f"{address} is not a pinned address of {host}")
        reason = refusal_reason(address)
        if reason:
            raise OutOfScope(f"refusing {address}: {reason}")

    def gate(self, host: str) -> asyncio.Semaphore:
        key = normalise_host(host)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = asyncio.Semaphore(self.per_host_concurrency)
        return gate

    def spend(self, host: str) -> None:
        """Count one HTTP request against the host's budget."""
        key = normalise_host(host)
        if self.requests[key] >= self.host_budget:
            raise BudgetExhausted(f"request budget of {self.host_budget} for {host} is spent")
        self.requests[key] += 1
