"""Which protocol versions and cipher suites a TLS server accepts, and the checks on them.

:func:`scan_suites` talks raw ClientHellos over plain TCP (see
:mod:`probes.tls.hello`), so it sees SSLv3, RC4 and 3DES that the local
OpenSSL would refuse to negotiate. It uses few connections: per protocol it
offers every candidate suite at once (at most :data:`MAX_OFFER` per hello),
records the one the server picks, removes it and offers the rest again until
the server refuses. One connection per accepted suite plus one refusal per
protocol, a couple to learn whether the server enforces its own order, one
for the weakest TLS 1.3 group and one for TLS_FALLBACK_SCSV: a few dozen for a
typical server instead of one per suite and protocol. TLS 1.3 hellos after the first
carry no key share, so the server answers with a HelloRetryRequest naming its suite and
signs nothing (:meth:`_Scanner.ask`). Protocols are scanned
concurrently; the connector's per-host gate bounds how many at once.

:func:`judge_suites` turns scans of every address of one host:port into
findings (pure).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from probes.base import JSON, DeadlineExceeded, Finding, ProbeFailure, ProtocolFailure, Severity
from probes.net.connector import Connector
from probes.tls.hello import (
    GROUPS_MODERN,
    GROUPS_WEAKEST_FIRST,
    HANDSHAKE_FAILURE,
    INAPPROPRIATE_FALLBACK,
    PROTOCOL_VERSION,
    FlightReader,
    Outcome,
    ServerReply,
    client_hello,
)
from probes.tls.suite_data import LEGACY_PROTOCOLS, PROTOCOLS, KexFamily, Protocol, Suite, Weakness, suite_table


class SuiteCheck(enum.StrEnum):
    """The check IDs the protocol and cipher-suite scan raises."""

    LEGACY_PROTOCOL = "tls.protocol.legacy"
    WEAK_CIPHER = "tls.cipher.weak"
    NO_FORWARD_SECRECY = "tls.cipher.no_forward_secrecy"


INSUFFICIENT_SECURITY = 71
# Named groups without the RFC 7919 FFDHE ones: an RFC 7919 server whose only DHE group is
# its own (a 512-bit one, say) refuses every DHE suite from a client that lists FFDHE groups.
GROUPS_NO_FFDHE = tuple(g for g in GROUPS_MODERN if not 256 <= g < 512)
MAX_OFFER = 128  # suites per hello: more trips up some old stacks (testssl.sh uses the same bound)
ATTEMPT_TIMEOUT = 5.0  # seconds to wait for one server's answer to one hello


@dataclass(frozen=True)
class SuiteScan:
    address: str
    port: int
    protocols: dict[str, bool]  # "SSLv3" .. "TLSv1.3" -> accepted
    suites: dict[str, tuple[str, ...]]  # protocol -> accepted IANA names, server order when known
    preferred: dict[str, str]  # protocol -> what the server picks from a full offer
    groups: tuple[str, ...]  # key-exchange groups seen (x25519, secp256r1, ffdhe2048, dh1024...)
    connections: int  # TCP connections this scan opened
    server_order: dict[str, bool] = field(default_factory=dict)  # protocol -> server enforces its order
    secure_renegotiation: bool | None = None  # RFC 5746 support, None when only TLS 1.3 answered
    fallback_scsv: bool | None = None  # RFC 7507 inappropriate_fallback honoured; None: not tested

    def accepted(self) -> list[Protocol]:
        return [p for p in PROTOCOLS if self.protocols.get(p.value)]

    def best(self) -> Protocol | None:
        accepted = self.accepted()
        return accepted[-1] if accepted else None

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "port": self.port,
            "protocols": dict(self.protocols),
            "suites": {p: list(s) for p, s in self.suites.items()},
            "preferred": dict(self.preferred),
            "groups": list(self.groups),
            "connections": self.connections,
            "server_order": dict(self.server_order),
            "secure_renegotiation": self.secure_renegotiation,
            "fallback_scsv": self.fallback_scsv,
        }


@dataclass
class _ProtocolResult:
    protocol: Protocol
    accepted: list[int] = field(default_factory=list)
    preferred: int | None = None
    server_order: bool | None = None
    garbage: str | None = None


class _Scanner:
    def __init__(self, connector: Connector, host: str, address: str, port: int, sni: str | None) -> None:
        self.connector = connector
        self.host = host
        self.address = address
        self.port = port
        self.sni = sni if sni and not _is_ip(sni) else None  # SNI never carries an IP (RFC 6066 3)
        self.table = suite_table()
        self.connections = 0
        self.groups: list[str] = []
        self.renegotiation: list[bool] = []
        self.no_ffdhe = False  # the server refuses DHE when FFDHE groups are listed: stop listing them
        self.quiet_tls13 = True  # TLS 1.3 hellos after the first go without a key share (see ask)

    async def hello(self, protocol: Protocol, suites: Sequence[int], *, certificates: bool = False,
                    **kw: Any) -> ServerReply:
        if self.no_ffdhe and protocol is not Protocol.TLS13:
            kw.setdefault("groups", GROUPS_NO_FFDHE)
        data = client_hello(protocol, suites, sni=self.sni, **kw)
        kex = {}
        for suite_id in suites:
            suite = self.table.by_id(suite_id)
            if suite is not None and suite.kex_family is not None:
                kex[suite_id] = suite.kex_family
        reader = FlightReader(kex, certificates=certificates)
        self.connections += 1
        try:
            reply = await self.connector.exchange(self.host, self.address, self.port, data, reader.feed,
                                                  answer_timeout=ATTEMPT_TIMEOUT)
            if reply is None:
                reply = reader.eof()
        except TimeoutError:
            reply = reader.eof("no answer")
            if reply.outcome is Outcome.CLOSED:
                reply = ServerReply(Outcome.TIMEOUT, detail=f"no answer in {ATTEMPT_TIMEOUT:g}s")
        except OSError as exc:  # reset or broken pipe: the server hung up on the hello
            reply = reader.eof(f"connection {type(exc).__name__}")
        return reply

    def keep(self, reply: ServerReply) -> None:
        """Record the group and renegotiation support of an answer that fits what was asked."""
        if reply.group and reply.group not in self.groups:
            self.groups.append(reply.group)
        if reply.secure_renegotiation is not None:
            self.renegotiation.append(reply.secure_renegotiation)

    async def ask(self, protocol: Protocol, offer: Sequence[int], *, quiet: bool) -> ServerReply:
        """A hello offering ``offer``; with ``quiet`` (TLS 1.3 only), without a key share.

        A TLS 1.3 server that accepts a hello without a key share answers with a
        HelloRetryRequest naming the suite it selected (RFC 8446 4.1.4): the same choice, and
        no key exchange or signature on its side, where a ServerHello costs it both. The
        first TLS 1.3 hello carries key shares (the group a real client gets is observed);
        those after it are quiet. A refused quiet hello is asked again with key shares, and a
        server that accepts only then (it mishandles an empty key share) is asked the usual
        way from then on: a quiet refusal never stands for the server's answer.
        """
        if not (quiet and protocol is Protocol.TLS13 and self.quiet_tls13):
            return await self.hello(protocol, offer)
        reply = await self.hello(protocol, offer, key_share_groups=())
        if reply.accepted:
            return reply
        confirm = await self.hello(protocol, offer)
        if confirm.accepted:
            self.quiet_tls13 = False
        return confirm

    async def enumerate(self, protocol: Protocol) -> _ProtocolResult:
        result = _ProtocolResult(protocol)
        remaining = [s.id for s in self.table.candidates(protocol)]
        first_offer = set(remaining[:MAX_OFFER])
        while remaining:
            offer = remaining[:MAX_OFFER]
            reply = await self.ask(protocol, offer, quiet=bool(result.accepted))
            if self._ffdhe_refusal(protocol, offer, reply):
                retry = await self.hello(protocol, offer, groups=GROUPS_NO_FFDHE)
                if retry.accepted:
                    self.no_ffdhe, reply = True, retry
            if reply.accepted:
                if reply.version is not protocol or reply.suite not in offer:
                    break  # negotiated another version, or broke the protocol: stop asking
                self.keep(reply)
                result.accepted.append(reply.suite)
                remaining.remove(reply.suite)
                continue
            if reply.outcome is Outcome.GARBAGE:
                result.garbage = reply.detail
                break
            # A silent server or a version alert will not change its mind for other suites.
            if reply.outcome is Outcome.TIMEOUT or reply.alert == PROTOCOL_VERSION or len(remaining) <= MAX_OFFER:
                break
            remaining = remaining[MAX_OFFER:]  # nothing more in this slice: try the next
        if result.accepted:
            result.preferred = result.accepted[0]
            # The first pick came from a partial offer unless every accepted suite was in it.
            await self._order(protocol, result, chunked=not first_offer.issuperset(result.accepted))
        return result

    def _ffdhe_refusal(self, protocol: Protocol, offer: Sequence[int], reply: ServerReply) -> bool:
        """Whether a refusal may be RFC 7919's (DHE offered with FFDHE groups the server lacks)."""
        if self.no_ffdhe or protocol is Protocol.TLS13 or reply.accepted:
            return False
        if reply.alert not in (HANDSHAKE_FAILURE, INSUFFICIENT_SECURITY):
            return False
        return any((s := self.table.by_id(i)) is not None and s.kex_family is KexFamily.FF for i in offer)

    async def _order(self, protocol: Protocol, result: _ProtocolResult, chunked: bool) -> None:
        """Learn what the server picks from a full offer, and whose order it follows."""
        accepted = result.accepted
        if len(accepted) < 2:
            return
        if chunked:  # the first pick came from a partial offer: ask again with all of them
            first = await self.ask(protocol, accepted, quiet=True)
            if first.accepted and first.suite in accepted:
                result.preferred = first.suite
        again = await self.ask(protocol, list(reversed(accepted)), quiet=True)
        if again.accepted and again.suite in accepted:
            result.server_order = again.suite == result.preferred

    async def weakest_tls13_group(self, suites: Sequence[int]) -> None:
        # No key share and groups weakest first: the HelloRetryRequest names the
        # weakest group a client-order server takes (or a server-order one's favourite).
        reply = await self.hello(Protocol.TLS13, suites, groups=GROUPS_WEAKEST_FIRST, key_share_groups=())
        if reply.accepted and reply.version is Protocol.TLS13:
            self.keep(reply)

    async def fallback(self, results: dict[Protocol, _ProtocolResult]) -> bool | None:
        accepted = [p for p in PROTOCOLS if results[p].accepted]
        lower = [p for p in accepted[:-1] if p is not Protocol.TLS13]
        if not lower:
            return None
        probe = lower[-1]
        reply = await self.hello(probe, results[probe].accepted, fallback_scsv=True)
        if reply.alert == INAPPROPRIATE_FALLBACK:
            return True
        return False if reply.accepted else None


async def scan_suites(
    connector: Connector, host: str, address: str, port: int, *, sni: str | None, deadline: float
) -> SuiteScan:
    """Scan one address; raises :mod:`probes.base` failures only."""
    scanner = _Scanner(connector, host, address, port, sni)
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    try:
        async with asyncio.timeout(deadline):
            results, fallback = await _run(scanner)
    except TimeoutError:
        raise DeadlineExceeded(
            f"TLS suite scan of {where} did not finish in {deadline:g}s ({scanner.connections} connections)"
        ) from None
    if not any(r.accepted for r in results.values()):
        garbage = next((r.garbage for r in results.values() if r.garbage), None)
        if garbage:
            raise ProtocolFailure(f"{where} does not answer like a TLS server: {garbage}")
        raise ProtocolFailure(f"{where} accepted no SSL/TLS version posture offered")
    names = scanner.table.name_of
    return SuiteScan(
        address=address,
        port=port,
        protocols={p.value: bool(results[p].accepted) for p in PROTOCOLS},
        suites={p.value: tuple(names(s) for s in results[p].accepted) for p in PROTOCOLS if results[p].accepted},
        preferred={p.value: names(r.preferred) for p, r in results.items() if r.preferred is not None},
        groups=tuple(scanner.groups),
        connections=scanner.connections,
        server_order={p.value: r.server_order for p, r in results.items() if r.server_order is not None},
        secure_renegotiation=all(scanner.renegotiation) if scanner.renegotiation else None,
        fallback_scsv=fallback,
    )


@dataclass(frozen=True)
class RawChain:
    """A certificate chain read from a raw handshake, and what was negotiated to get it."""

    chain: tuple[bytes, ...]  # DER, leaf first, as sent
    protocol: Protocol
    suite: str


async def fetch_chain(
    connector: Connector, host: str, address: str, port: int, *, sni: str | None, scan: SuiteScan,
    deadline: float = ATTEMPT_TIMEOUT * 2,
) -> RawChain:
    """The certificate chain the server sends, read from a raw ClientHello (TLS 1.2 and earlier).

    For a server the local TLS library will not finish a handshake with (only
    RC4, 3DES, NULL or small-DH suites, SSLv3, a certificate message over
    OpenSSL's 100 KB bound): the chain travels in clear before any of that
    matters. The hello offers what ``scan`` saw accepted at the best such
    version, preferred suite first, never an anonymous one (it sends no
    certificate). Raises :mod:`probes.base` failures only.
    """
    table = suite_table()
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    for protocol in reversed([p for p in scan.accepted() if p is not Protocol.TLS13]):
        names = list(scan.suites.get(protocol.value, ()))
        preferred = scan.preferred.get(protocol.value)
        if preferred in names:
            names.remove(preferred)
            names.insert(0, preferred)
        suites = [s.id for s in table.lookup(names) if Weakness.ANON not in s.weaknesses][:MAX_OFFER]
        if not suites:
            continue
        scanner = _Scanner(connector, host, address, port, sni)
        try:
            async with asyncio.timeout(deadline):
                reply = await scanner.hello(protocol, suites, certificates=True)
                if scanner._ffdhe_refusal(protocol, suites, reply):
                    reply = await scanner.hello(protocol, suites, certificates=True, groups=GROUPS_NO_FFDHE)
        except TimeoutError:
            raise DeadlineExceeded(f"no certificate from {where} in {deadline:g}s") from None
        if reply.accepted and reply.certificates and reply.suite is not None:
            return RawChain(reply.certificates, protocol, table.name_of(reply.suite))
        detail = reply.detail or reply.alert_name or reply.outcome.value
        raise ProtocolFailure(f"{where} sent no certificate in a {protocol.value} handshake ({detail})")
    raise ProtocolFailure(f"{where} accepts no TLS 1.2-or-earlier suite that carries a certificate")


async def _run(scanner: _Scanner) -> tuple[dict[Protocol, _ProtocolResult], bool | None]:
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = {p: tg.create_task(scanner.enumerate(p)) for p in PROTOCOLS}
    except BaseExceptionGroup as group:
        raise _first_leaf(group) from None
    results = {p: t.result() for p, t in tasks.items()}
    tls13 = results[Protocol.TLS13].accepted
    fallback: bool | None = None
    if any(r.accepted for r in results.values()):
        # Extras: a failure here costs the observation, not the scan.
        with contextlib.suppress(ProbeFailure):
            if tls13:
                await scanner.weakest_tls13_group(tls13)
            fallback = await scanner.fallback(results)
    return results, fallback


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception to report from a failed task group: a probe failure if any."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return next((e for e in leaves if isinstance(e, ProbeFailure)), leaves[0])


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- judging


def judge_suites(host: str, port: int, scans: Sequence[SuiteScan]) -> list[Finding]:
    """tls.protocol.legacy, tls.cipher.weak and tls.cipher.no_forward_secrecy, one finding each."""
    key = f"{host}:{port}"
    findings = [f for f in (_legacy(key, scans), _weak(key, scans), _no_fs(key, scans)) if f is not None]
    return findings


def _legacy(key: str, scans: Sequence[SuiteScan]) -> Finding | None:
    by_address = {
        s.address: [p.value for p in s.accepted() if p in LEGACY_PROTOCOLS] for s in scans
    }
    by_address = {a: p for a, p in by_address.items() if p}
    if not by_address:
        return None
    protocols = [p.value for p in PROTOCOLS if any(p.value in v for v in by_address.values())]
    severity, reason = None, None
    if Protocol.SSL3.value in protocols:
        severity, reason = Severity.HIGH, "SSLv3 is accepted: broken by POODLE and prohibited by RFC 7568"
    return Finding(
        SuiteCheck.LEGACY_PROTOCOL.value,
        key,
        evidence={"protocols": protocols, "addresses": sorted(by_address), "by_address": by_address},
        severity=severity,
        severity_reason=reason,
    )


_CRITICAL_WEAKNESS = (Weakness.NULL, Weakness.ANON, Weakness.EXPORT)
WEAK_DH = "weak_dh"  # a reason beside the suites' own weaknesses: DHE over a group under MIN_DH_BITS
MIN_DH_BITS = 2048  # NIST SP 800-57 Part 1 Rev. 5 (112-bit security); SSL Labs caps a smaller group at B
LOGJAM_DH_BITS = 1024  # under this, Logjam (weakdh.org, 2015): critical, and SSL Labs' F
_FF_GROUP = re.compile(r"^(?:ffdhe|dh)(\d+)$")


def dh_bits(group: str) -> int | None:
    """The size of a finite-field DH group as the scan labels it (``dh1024``, ``ffdhe2048``); None for others."""
    found = _FF_GROUP.match(group.lower())
    return int(found.group(1)) if found else None


def _weak_dh_group(scan: SuiteScan) -> tuple[int, str] | None:
    """The smallest finite-field group under :data:`MIN_DH_BITS` the scan saw, with its size."""
    small = [(bits, g) for g in scan.groups if (bits := dh_bits(g)) is not None and bits < MIN_DH_BITS]
    return min(small) if small else None


def _weak(key: str, scans: Sequence[SuiteScan]) -> Finding | None:
    """Weak suites, and DHE suites served over a group under 2048 bits (reason ``weak_dh``)."""
    table = suite_table()
    suites: dict[str, list[str]] = {}
    reasons: dict[str, list[str]] = {}
    addresses: set[str] = set()
    dh_groups: dict[str, str] = {}
    dh_smallest: int | None = None
    for scan in scans:
        weak_dh = _weak_dh_group(scan)
        for proto in scan.accepted():
            for suite in table.lookup(scan.suites.get(proto.value, ())):
                why = {w.value for w in suite.weaknesses}
                if weak_dh is not None and suite.kex_family is KexFamily.FF and not suite.tls13:
                    why.add(WEAK_DH)
                    dh_groups[scan.address] = weak_dh[1]
                    dh_smallest = weak_dh[0] if dh_smallest is None else min(dh_smallest, weak_dh[0])
                if not why:
                    continue
                addresses.add(scan.address)
                listed = suites.setdefault(proto.value, [])
                if suite.name not in listed:
                    listed.append(suite.name)
                reasons[suite.name] = sorted(why.union(reasons.get(suite.name, ())))
    if not suites:
        return None
    ordered = {p.value: suites[p.value] for p in PROTOCOLS if p.value in suites}
    worst = sorted({w for r in reasons.values() for w in r} & {w.value for w in _CRITICAL_WEAKNESS})
    why_critical = [f"accepts {', '.join(worst)} suites: no real encryption or authentication"] if worst else []
    if dh_smallest is not None and dh_smallest < LOGJAM_DH_BITS:
        why_critical.append(f"DHE over a {dh_smallest}-bit group: breakable today (Logjam)")
    evidence: dict[str, JSON] = {"suites": ordered, "addresses": sorted(addresses), "reasons": reasons}
    evidence |= {"dh_groups": dh_groups, "dh_bits": dh_smallest} if dh_groups else {}
    return Finding(
        SuiteCheck.WEAK_CIPHER.value,
        key,
        evidence=evidence,
        severity=Severity.CRITICAL if why_critical else None,
        severity_reason="; ".join(why_critical) or None,
    )


def negotiates_forward_secrecy(scan: SuiteScan) -> bool:
    """TLS 1.3, or a forward-secret suite picked from a full offer at the best version.

    Without a recorded pick, any forward-secret suite accepted at that version counts.
    """
    best = scan.best()
    if best is None or best is Protocol.TLS13:
        return best is not None
    table = suite_table()
    pick = table.by_name(scan.preferred.get(best.value, ""))
    if pick is not None:
        return pick.forward_secret
    return _any_forward_secret(table.lookup(scan.suites.get(best.value, ())))


def _no_fs(key: str, scans: Sequence[SuiteScan]) -> Finding | None:
    """No forward secrecy: no TLS 1.3, and a full offer at the best version gets a non-FS suite."""
    table = suite_table()
    preferred: dict[str, str] = {}
    fs_available: dict[str, bool] = {}
    for scan in scans:
        best = scan.best()
        if best is None or negotiates_forward_secrecy(scan):
            continue
        preferred[scan.address] = scan.preferred.get(best.value, "")
        fs_available[scan.address] = _any_forward_secret(table.lookup(_all_suites(scan)))
    if not preferred:
        return None
    return Finding(
        SuiteCheck.NO_FORWARD_SECRECY.value,
        key,
        evidence={
            "addresses": sorted(preferred),
            "preferred": preferred,
            "forward_secret_suites_accepted": fs_available,
        },
    )


def _all_suites(scan: SuiteScan) -> Iterable[str]:
    for names in scan.suites.values():
        yield from names


def _any_forward_secret(suites: Iterable[Suite]) -> bool:
    return any(s.forward_secret for s in suites)
