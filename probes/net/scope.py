"""Which addresses posture will ever connect to, and per-address accounting.

The agent resolves each asset's name once and pins the result; every
connection afterwards goes through :class:`Pins`, which refuses any host or
address it was not given. That is how "probes only configured assets" is
enforced in one place instead of in every probe.

Three rules live here:

* **Address policy** (:func:`refusal_reason`): loopback, private (RFC 1918,
  ULA), link-local, CGNAT, multicast, unspecified, broadcast, reserved,
  documentation, benchmarking and cloud-metadata addresses are never probed
  unless a network containing them is allowed explicitly (config
  ``allow_addresses`` or ``POSTURE_ALLOW_ADDRESSES``). Metadata and link-local
  addresses are stricter: only an allow entry naming exactly that one address
  (``169.254.169.254/32``) lets them through; a wide network never does.
  Multicast, unspecified and broadcast addresses are never a host: always refused.
* **Origins** (:func:`origin_of`): what a probe may reach is a set of
  (scheme, host, port); see ``Target.scope``.
* **Limits** (:class:`AddressLimits`): per-address concurrency (open
  connections of every probe, pooled ones included) and request budgets, held
  for the whole process by one registry the runner or daemon creates.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import idna

from probes.base import BudgetExhausted, OutOfScope

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The environment variable that adds allowed networks (comma-separated CIDRs).
ALLOW_ENV = "POSTURE_ALLOW_ADDRESSES"

# Cloud instance-metadata endpoints: never a scan target, whatever DNS says.
METADATA_ADDRESSES = frozenset(
    {
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS IPv6
    }
)

# Reasons that only an allow entry for exactly that address overrides.
STRICT_REASONS = frozenset({"cloud metadata address", "link-local address"})
# Not a host at all: no allow entry ever makes these a target.
NEVER_REASONS = frozenset({"multicast address", "unspecified address", "broadcast address"})

_N = ipaddress.ip_network
# (network, reason), most specific first. Sources: RFC 6890 special-purpose registries.
_SPECIAL: tuple[tuple[IPNetwork, str], ...] = (
    (_N("169.254.0.0/16"), "link-local address"),
    (_N("fe80::/10"), "link-local address"),
    (_N("127.0.0.0/8"), "loopback address"),
    (_N("::1/128"), "loopback address"),
    (_N("0.0.0.0/32"), "unspecified address"),
    (_N("::/128"), "unspecified address"),
    (_N("255.255.255.255/32"), "broadcast address"),
    (_N("224.0.0.0/4"), "multicast address"),
    (_N("ff00::/8"), "multicast address"),
    (_N("10.0.0.0/8"), "private address (RFC 1918)"),
    (_N("172.16.0.0/12"), "private address (RFC 1918)"),
    (_N("192.168.0.0/16"), "private address (RFC 1918)"),
    (_N("fc00::/7"), "private address (unique local, RFC 4193)"),
    (_N("100.64.0.0/10"), "shared address space (CGNAT, RFC 6598)"),
    (_N("192.0.2.0/24"), "documentation address (RFC 5737)"),
    (_N("198.51.100.0/24"), "documentation address (RFC 5737)"),
    (_N("203.0.113.0/24"), "documentation address (RFC 5737)"),
    (_N("2001:db8::/32"), "documentation address (RFC 3849)"),
    (_N("3fff::/20"), "documentation address (RFC 9637)"),
    (_N("198.18.0.0/15"), "benchmarking address (RFC 2544)"),
    (_N("2001:2::/48"), "benchmarking address (RFC 5180)"),
    (_N("0.0.0.0/8"), "reserved address ('this network')"),
    (_N("192.0.0.0/24"), "reserved address (IETF protocol assignments)"),
    (_N("240.0.0.0/4"), "reserved address (future use)"),
    (_N("100::/64"), "reserved address (discard-only)"),
    (_N("::/96"), "reserved address (IPv4-compatible)"),
)


def parse_networks(values: Iterable[str], *, what: str = "address") -> tuple[IPNetwork, ...]:
    """CIDRs (or single addresses) -> networks; ValueError naming the bad one."""
    out: list[IPNetwork] = []
    for raw in values:
        text = raw.strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{what} {text!r} is not an IP address or CIDR network") from None
    return tuple(out)


def env_allow(environ: Mapping[str, str] | None = None) -> tuple[IPNetwork, ...]:
    """The networks ``POSTURE_ALLOW_ADDRESSES`` allows (ValueError when malformed)."""
    env = os.environ if environ is None else environ
    return parse_networks(env.get(ALLOW_ENV, "").split(","), what=ALLOW_ENV)


def _category(ip: IPAddress) -> str | None:
    if str(ip) in METADATA_ADDRESSES:
        return "cloud metadata address"
    for net, reason in _SPECIAL:
        if ip.version == net.version and ip in net:
            return reason
    return None


def _allowed(ip: IPAddress, reason: str, allow: Iterable[IPNetwork]) -> bool:
    if reason in NEVER_REASONS:
        return False
    for net in allow:
        if net.version != ip.version or ip not in net:
            continue
        if reason not in STRICT_REASONS or net.num_addresses == 1:
            return True
    return False


def refusal_reason(address: str, allow: Iterable[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be probed under ``allow``, or None when it may."""
    allow = tuple(allow)
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        # ::ffff:169.254.169.254 reaches the metadata service as surely as the IPv4 form.
        inner = refusal_reason(str(embedded), allow)
        if inner:
            return f"{inner} (embedded in {ip})"
        return None
    reason = _category(ip)
    if reason is None or _allowed(ip, reason, allow):
        return None
    return reason


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
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


Origin = tuple[str, str, int]  # (scheme, normalised host, port)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL; None when it has none."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        host = normalise_host(parts.hostname or "")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host or port is None:
        return None
    return scheme, host, port


def same_host(a: str, b: str) -> bool:
    """Whether two absolute URLs name the same host (normal form); an unparsable or hostless URL never does."""
    try:
        host_a, host_b = urlsplit(a).hostname, urlsplit(b).hostname
    except ValueError:  # unparsable (hostile) Location: never "the same host"
        return False
    return bool(host_a) and normalise_host(host_a or "") == normalise_host(host_b or "")


def format_origin(origin: Origin) -> str:
    scheme, host, port = origin
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}" if port == _DEFAULT_PORTS.get(scheme) else f"{scheme}://{shown}:{port}"


Reclaimer = Callable[[], Awaitable[None]]


class _Slot:
    """One address's connection gate, request budget and counters."""

    def __init__(self, concurrency: int, now: float) -> None:
        self.sem = asyncio.Semaphore(concurrency)
        self.open = 0
        self.peak = 0
        self.spent = 0
        self.window_start = now
        self.reclaimers: list[Reclaimer] = []
        self.many = asyncio.Lock()  # one multi-slot holder at a time: no two can deadlock


class AddressLimits:
    """Per-address limits for the whole process: one instance, made by the runner or daemon.

    ``per_address_concurrency`` bounds the connections open at once to one address,
    counting every probe's sockets: raw TLS/port probes and pooled HTTP connections,
    kept-alive ones included (an idle pooled connection is closed to make room when
    another probe needs a slot). ``budget`` bounds the HTTP requests sent to one address
    within ``window`` seconds, shared by every scan and job in the process.
    """

    def __init__(self, per_address_concurrency: int = 4, budget: int = 300, *, window: float = 3600.0,
                 linger: float = 0.05, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_address_concurrency = per_address_concurrency
        self.linger = linger
        self.budget = budget
        self.window = window
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self.requests: Counter[str] = Counter()  # address -> requests sent (ever)
        self.connections: Counter[str] = Counter()  # address -> connections opened (ever)

    def _slot(self, address: str) -> _Slot:
        slot = self._slots.get(address)
        if slot is None:
            slot = self._slots[address] = _Slot(self.per_address_concurrency, self._clock())
        return slot

    def open_now(self, address: str) -> int:
        return self._slot(address).open

    def peak(self, address: str) -> int:
        return self._slot(address).peak

    def add_reclaimer(self, address: str, reclaim: Reclaimer) -> None:
        """``reclaim`` closes idle pooled connections to ``address`` when a slot is wanted."""
        self._slot(address).reclaimers.append(reclaim)

    def remove_reclaimer(self, address: str, reclaim: Reclaimer) -> None:
        reclaimers = self._slot(address).reclaimers
        if reclaim in reclaimers:
            reclaimers.remove(reclaim)

    async def acquire(self, address: str) -> None:
        """Take one connection slot of ``address``, closing idle pooled connections if need be."""
        slot = self._slot(address)
        while True:
            if not slot.sem.locked():
                await slot.sem.acquire()
                break
            for reclaim in list(slot.reclaimers):
                await reclaim()
            try:
                async with asyncio.timeout(0.05):
                    await slot.sem.acquire()
                break
            except TimeoutError:
                continue
        slot.open += 1
        slot.peak = max(slot.peak, slot.open)
        self.connections[address] += 1

    def release(self, address: str, *, peer_closed: bool = False) -> None:
        """Give the slot back ``linger`` seconds after the connection closed.

        Until the peer has read our FIN (or close_notify) the connection is still open on
        its side; reusing the slot at once would let a server see one more connection
        than the limit for that moment. ``peer_closed``: the peer has closed its side
        already (we read its FIN after sending ours), so the slot is free at once.
        """
        slot = self._slot(address)

        def free() -> None:
            slot.open -= 1
            slot.sem.release()

        if peer_closed:
            free()
            return
        try:
            asyncio.get_running_loop().call_later(self.linger, free)
        except RuntimeError:  # no loop (a stream collected late): nothing waits on the slot
            free()

    @asynccontextmanager
    async def hold(self, address: str) -> AsyncIterator[None]:
        await self.acquire(address)
        try:
            yield
        finally:
            self.release(address)

    @asynccontextmanager
    async def hold_all(self, address: str) -> AsyncIterator[int]:
        """Hold every slot of ``address`` (a tool such as nmap that opens up to that many)."""
        slot = self._slot(address)
        taken = 0
        async with slot.many:
            try:
                for _ in range(self.per_address_concurrency):
                    await self.acquire(address)
                    taken += 1
                yield taken
            finally:
                for _ in range(taken):
                    self.release(address)

    def spend(self, address: str, host: str = "") -> None:
        """Count one HTTP request against the address's budget (BudgetExhausted when spent)."""
        slot = self._slot(address)
        now = self._clock()
        if now - slot.window_start >= self.window:
            slot.window_start, slot.spent = now, 0
        if slot.spent >= self.budget:
            who = f"{host} ({address})" if host and host != address else address
            raise BudgetExhausted(f"request budget of {self.budget} for {who} is spent")
        slot.spent += 1
        self.requests[address] += 1


@dataclass
class Held:
    """One held connection slot; ``peer_closed``: the peer has closed (no linger needed)."""

    peer_closed: bool = False


@dataclass
class Pins:
    """host -> pinned addresses and origins in scope, over one :class:`AddressLimits`."""

    hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    per_host_concurrency: int = 4
    host_budget: int = 300
    requests: Counter[str] = field(default_factory=Counter)  # host -> requests
    connections: Counter[str] = field(default_factory=Counter)  # host -> connections opened
    limits: AddressLimits | None = None
    #: networks allowed for every host (None: POSTURE_ALLOW_ADDRESSES), and per host.
    allow: tuple[IPNetwork, ...] | None = None
    host_allow: dict[str, tuple[IPNetwork, ...]] = field(default_factory=dict)
    #: hosts in scope that got no usable address: why (said by every request refused for it)
    refused: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limits is None:
            self.limits = AddressLimits(self.per_host_concurrency, self.host_budget)
        if self.allow is None:
            self.allow = env_allow()

    @property
    def shared(self) -> AddressLimits:
        assert self.limits is not None
        return self.limits

    @classmethod
    def of(cls, hosts: Mapping[str, Iterable[str]], *, per_host_concurrency: int = 4, host_budget: int = 300,
           limits: AddressLimits | None = None, allow: Iterable[IPNetwork] | None = None) -> Pins:
        return cls(
            hosts={normalise_host(h): tuple(a) for h, a in hosts.items()},
            per_host_concurrency=per_host_concurrency,
            host_budget=host_budget,
            limits=limits,
            allow=tuple(allow) if allow is not None else None,
        )

    def for_asset(self) -> Pins:
        """An empty table for one asset's scan over the same limits and allow-list: what one asset
        resolved (and its own allowed networks) never re-points another asset's requests, even
        when both name the same host and DNS answered them differently."""
        return Pins(per_host_concurrency=self.per_host_concurrency, host_budget=self.host_budget,
                    limits=self.shared, allow=self.allow)

    def add(self, host: str, addresses: Iterable[str], allow: Iterable[IPNetwork] = ()) -> None:
        key = normalise_host(host)
        self.hosts[key] = tuple(addresses)
        self.host_allow[key] = tuple(allow)

    def refuse(self, host: str, why: str) -> None:
        """``host`` is in scope but may not be probed (its addresses refused, its name unresolved)."""
        self.refused[normalise_host(host)] = why

    def addresses(self, host: str) -> tuple[str, ...]:
        key = normalise_host(host)
        if key in self.refused:
            raise OutOfScope(f"{host} is not probed: {self.refused[key]}")
        if key not in self.hosts:
            raise OutOfScope(f"{host} is not a configured asset host")
        return self.hosts[key]

    def check(self, host: str, address: str) -> None:
        if address not in self.addresses(host):
            raise OutOfScope(f"{address} is not a pinned address of {host}")
        allow = (*(self.allow or ()), *self.host_allow.get(normalise_host(host), ()))
        reason = refusal_reason(address, allow)
        if reason:
            raise OutOfScope(f"refusing {address}: {reason}")

    @asynccontextmanager
    async def connection(self, host: str, address: str) -> AsyncIterator[Held]:
        """Hold one of ``address``'s connection slots (for a raw connection or a tool run).

        Set ``peer_closed`` on what it yields when the peer is known to have closed its side
        (the slot is then free at once, without the linger).
        """
        await self.shared.acquire(address)
        self.connections[normalise_host(host)] += 1
        held = Held()
        try:
            yield held
        finally:
            self.shared.release(address, peer_closed=held.peer_closed)

    def spend(self, host: str, address: str) -> None:
        """Count one HTTP request against the address's budget."""
        self.shared.spend(address, host)
        self.requests[normalise_host(host)] += 1
