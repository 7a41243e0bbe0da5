"""Name resolution: the only place posture resolves names.

Resolves A and AAAA through dnspython (a given resolver, or the system's),
records the CNAME chain and every address, refuses addresses no scan may touch
and marks address families this machine cannot reach as skipped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from probes.base import NameNotFound, ResolveFailure
from probes.net.scope import IPNetwork, env_allow, normalise_host, refusal_reason


@dataclass(frozen=True)
class Resolution:
    name: str
    resolver: str  # "ip:port" or "system" or "literal"
    cname_chain: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()  # every A/AAAA answer, in answer order
    usable: tuple[str, ...] = ()  # what probes may connect to
    skipped: dict[str, str] = field(default_factory=dict)  # address -> why (unreachable family)
    refused: dict[str, str] = field(default_factory=dict)  # address -> why (never a target)
    unexpected: tuple[str, ...] = ()  # answers outside the asset's expected ``addresses`` (also refused)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "resolver": self.resolver,
            "cname_chain": list(self.cname_chain),
            "addresses": list(self.addresses),
            "skipped": dict(self.skipped),
            "refused": dict(self.refused),
            "unexpected": list(self.unexpected),
        }


def parse_resolver(spec: str) -> tuple[str, int]:
    """``"127.0.0.1"``, ``"127.0.0.1:5353"``, ``"[::1]:53"`` -> (ip, port)."""
    spec = spec.strip()
    host, port = spec, 53
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif spec.count(":") == 1:
        host, _, p = spec.partition(":")
        port = int(p)
    ipaddress.ip_address(host)  # raises ValueError on a name
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port


def reachable(address: str) -> bool:
    """Whether this machine has a route to ``address`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((address, 9))
        return True
    except OSError:
        return False


def _classify(name: str, resolver: str, chain: tuple[str, ...], addresses: list[str],
              allow: Sequence[IPNetwork] = (), expected: Sequence[IPNetwork] | None = None) -> Resolution:
    """Sort answers into usable, refused (address policy, unexpected) and skipped (no route).

    Nothing is raised for refused answers: the caller records them on the scan, and a
    name with no usable address gets no probe at all.
    """
    usable: list[str] = []
    skipped: dict[str, str] = {}
    refused: dict[str, str] = {}
    unexpected: list[str] = []
    for a in addresses:
        reason = refusal_reason(a, allow)
        if reason:
            refused[a] = reason
        elif expected is not None and not _within(a, expected):
            unexpected.append(a)
            refused[a] = "outside the asset's expected addresses"
        elif not reachable(a):
            skipped[a] = "no route from this machine (address family unreachable)"
        else:
            usable.append(a)
    return Resolution(name, resolver, chain, tuple(addresses), tuple(usable), skipped, refused, tuple(unexpected))


def _within(address: str, networks: Sequence[IPNetwork]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip.version == n.version and ip in n for n in networks)


async def resolve(name: str, resolver: str | None = None, *, timeout: float = 5.0,
                  allow: Sequence[IPNetwork] | None = None, expected: Sequence[IPNetwork] | None = None
                  ) -> Resolution:
    """Resolve ``name`` (or accept an IP literal) and apply the address policy.

    ``allow``: networks the policy lets through (None: ``POSTURE_ALLOW_ADDRESSES``;
    the runner passes config and environment together); ``expected``: the asset's expected
    addresses (answers outside them are refused and listed as unexpected).
    Raises ResolveFailure; refused answers are values on the result.
    """
    host = normalise_host(name)
    if allow is None:
        try:
            allow = env_allow()
        except ValueError as exc:
            raise ResolveFailure(str(exc)) from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return _classify(host, "literal", (), [host], allow, expected)

    import dns.asyncresolver
    import dns.exception
    import dns.rdatatype
    import dns.resolver

    if resolver:
        try:
            ip, port = parse_resolver(resolver)
        except ValueError as exc:
            raise ResolveFailure(f"invalid resolver {resolver!r}: {exc}") from None
        r = dns.asyncresolver.Resolver(configure=False)
        r.nameservers = [ip]
        r.port = port
        label = f"{ip}:{port}"
    else:
        try:
            r = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise ResolveFailure("no DNS resolver configured on this machine; pass --resolver") from None
        label = "system"
    r.lifetime = timeout
    r.timeout = min(timeout, 2.0)

    async def lookup(rdtype: str) -> Any:
        """The answer, or the exception that stood for no answer."""
        try:
            return await r.resolve(host, rdtype, search=False)
        except (dns.exception.DNSException, OSError) as exc:
            return exc

    # A and AAAA at once: a resolver that never answers costs one timeout, not two.
    try:
        async with asyncio.timeout(timeout + 0.5):
            outcomes = await asyncio.gather(lookup("A"), lookup("AAAA"))
    except TimeoutError:
        raise ResolveFailure(f"DNS lookup of {host} via {label} timed out after {timeout:g}s") from None

    chain: list[str] = []
    addresses: list[str] = []
    nx = 0
    failure: ResolveFailure | None = None
    for rdtype, outcome in zip(("A", "AAAA"), outcomes, strict=True):
        if isinstance(outcome, dns.resolver.NXDOMAIN):
            nx += 1
            continue
        if isinstance(outcome, dns.resolver.NoAnswer):
            _cnames_from(outcome.kwargs.get("response"), chain)
            continue
        if isinstance(outcome, dns.resolver.NoNameservers):
            failure = failure or NameNotFound(f"DNS servers failed to answer {rdtype} for {host}: {outcome}")
            continue
        if isinstance(outcome, dns.exception.Timeout):
            failure = failure or ResolveFailure(
                f"DNS lookup of {host} via {label} timed out after {timeout:g}s"
            )
            continue
        if isinstance(outcome, (dns.exception.DNSException, OSError)):
            failure = failure or ResolveFailure(f"DNS lookup of {host} failed: {outcome}")
            continue
        _cnames_from(outcome.response, chain)
        for rr in outcome:
            text = rr.to_text()
            if text not in addresses:
                addresses.append(text)
    if not addresses:
        # One family failing while the other answered is normal; only an
        # empty result is an error, and a server failure says more than NXDOMAIN.
        if failure is not None:
            raise failure
        if nx:
            raise NameNotFound(f"{host}: no such domain (NXDOMAIN via {label})")
        raise NameNotFound(f"{host} has no A or AAAA record (via {label})")
    return _classify(host, label, tuple(chain), addresses, allow, expected)


def _cnames_from(response: Any, chain: list[str]) -> None:
    if response is None:
        return
    import dns.rdatatype

    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.CNAME:
            for rr in rrset:
                target = rr.target.to_text().rstrip(".").lower()
                if target not in chain:
                    chain.append(target)
