"""The watch's only I/O: DNS queries (A, AAAA, MX, NS; TXT for the firm's own mail records).

Every query goes to the configured resolver (``Settings.resolver``; the system's only when none
is configured, like every other lookup of posture), at most ``rate`` queries a second and
``concurrency`` at once. Nothing else is sent to a lookalike: not HTTP, not TLS, not SMTP.
dnspython's exceptions are translated here into values on :class:`Lookup`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from probes.base import ResolveFailure
from probes.net.dns import parse_resolver
from probes.watch.candidates import candidates
from probes.watch.model import RDTYPES, DomainObservation, Lookup, MailRecords, Settings


class _Pacer:
    """At most ``rate`` query starts a second and ``concurrency`` queries in flight."""

    def __init__(self, rate: float, concurrency: int) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = 0.0
        self.lock = asyncio.Lock()
        self.slots = asyncio.Semaphore(concurrency)
        self.answered = 0  # queries the server answered (any rcode)
        self.silent = 0  # queries that timed out

    @property
    def dead(self) -> bool:
        """The resolver has answered nothing while this many queries timed out: stop asking."""
        return self.answered == 0 and self.silent >= GIVE_UP_AFTER

    async def turn(self) -> None:
        async with self.lock:
            now = time.monotonic()
            wait = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


def _resolver(settings: Settings) -> Any:
    import dns.asyncresolver
    import dns.resolver

    if settings.resolver:
        try:
            ip, port = parse_resolver(settings.resolver)
        except ValueError as exc:
            raise ResolveFailure(f"invalid resolver {settings.resolver!r}: {exc}") from None
        r = dns.asyncresolver.Resolver(configure=False)
        r.nameservers = [ip]
        r.port = port
    else:
        try:
            r = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise ResolveFailure("no DNS resolver configured on this machine; set [agent] resolver") from None
    r.lifetime = settings.timeout
    r.timeout = settings.timeout
    return r


_NX = object()
GIVE_UP_AFTER = 8  # timeouts in a row, with no answer at all, before the resolver is taken for down


async def _query(r: Any, pacer: _Pacer, name: str, rdtype: str) -> tuple[str, ...] | object | str:
    """Answers (tuple), ``_NX`` (no such name), or an error message (str)."""
    import dns.exception
    import dns.resolver

    if pacer.dead:
        return f"{rdtype} {name}: not sent, the resolver answered none of the first {pacer.silent} queries"
    await pacer.turn()
    async with pacer.slots:
        if pacer.dead:
            return f"{rdtype} {name}: not sent, the resolver answered none of the first {pacer.silent} queries"
        try:
            answer = await r.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            pacer.answered += 1
            return _NX
        except dns.resolver.NoNameservers:
            pacer.answered += 1
            return f"{rdtype} {name}: the DNS server failed to answer (SERVFAIL/REFUSED)"
        except dns.exception.Timeout:
            pacer.silent += 1
            return f"{rdtype} {name}: timed out after {r.lifetime:g}s"
        except (dns.exception.DNSException, OSError) as exc:
            pacer.silent += 1
            return f"{rdtype} {name}: {' '.join(str(exc).split())[:200]}"
        pacer.answered += 1
    if answer.rrset is None:
        return ()
    return tuple(sorted(_text(rr, rdtype) for rr in answer.rrset))


def _text(rr: Any, rdtype: str) -> str:
    if rdtype == "TXT":
        return b"".join(rr.strings).decode("utf-8", "replace")
    if rdtype == "MX":
        return f"{rr.preference} {rr.exchange.to_text().rstrip('.').lower()}"
    if rdtype == "NS":
        return str(rr.target.to_text().rstrip(".").lower())
    return str(rr.to_text())


async def lookup(r: Any, pacer: _Pacer, name: str) -> Lookup:
    first = await _query(r, pacer, name, "A")
    if first is _NX:
        return Lookup(name=name, nxdomain=True)
    if isinstance(first, str):  # no answer to A (timeout, SERVFAIL): the other types would fare no better
        return Lookup(name=name, error=first)
    outcomes = [first, *await asyncio.gather(*(_query(r, pacer, name, t) for t in RDTYPES[1:]))]
    records: dict[str, tuple[str, ...]] = {}
    errors: list[str] = []
    for rdtype, got in zip(RDTYPES, outcomes, strict=True):
        if isinstance(got, str):
            errors.append(got)
        elif isinstance(got, tuple):
            records[rdtype] = got
    return Lookup(name=name, records=records, error="; ".join(errors) or None)


async def mail_records(r: Any, pacer: _Pacer, domain: str) -> MailRecords:
    apex, dmarc = await asyncio.gather(_query(r, pacer, domain, "TXT"), _query(r, pacer, f"_dmarc.{domain}", "TXT"))

    def split(got: object) -> tuple[tuple[str, ...], str | None]:
        if isinstance(got, str):
            return (), got
        return (got if isinstance(got, tuple) else ()), None

    (apex_txt, apex_err), (dmarc_txt, dmarc_err) = split(apex), split(dmarc)
    return MailRecords(domain, apex_txt, dmarc_txt, apex_err, dmarc_err)


async def observe(settings: Settings, domains: Sequence[str] | None = None) -> list[DomainObservation]:
    """Look up every candidate (and the allow-listed names) of each domain, and its mail records."""
    r = _resolver(settings)
    pacer = _Pacer(settings.rate, settings.concurrency)
    out: list[DomainObservation] = []
    for domain in domains if domains is not None else settings.domains:
        started = time.monotonic()
        cands = list(candidates(domain, settings))
        mail_task = asyncio.ensure_future(mail_records(r, pacer, domain))
        found = await asyncio.gather(*(lookup(r, pacer, c.name) for c in cands))
        mail = await mail_task
        out.append(DomainObservation(domain, len(cands), tuple(zip(cands, found, strict=True)), mail,
                                     started, time.monotonic() - started))
    return out
