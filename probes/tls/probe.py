"""Probe ``tls``: the certificate chain of every address, then (when built) protocol and cipher strength.

Collect: one handshake per address with SNI, at a permissive security level so
that a chain which does not verify, a 1024-bit key or a SHA-1 signature is
still captured whole. Evaluate: :mod:`probes.tls.cert` judges each chain;
findings are merged per host:port. The protocol/cipher half lives in
:mod:`probes.tls.suites` and :mod:`probes.tls.grade`.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm

import probes.tls.grade as grading
import probes.tls.suites as suites
from probes.base import (
    JSON,
    ConnectFailure,
    DeadlineExceeded,
    Finding,
    ProbeContext,
    ProbeFailure,
    ProbeResult,
    ProtocolFailure,
    RunStatus,
    Target,
    error_result,
)
from probes.net.handshake import capture_chain, capture_key, sni_for
from probes.net.scope import unicode_host
from probes.net.web import PAGE_SAMPLE, SHARED_SECTION, hsts_min_age, http_url, parse_hsts
from probes.tls.cert import WEAK_HASHES, CertCheck, CertReport, cert_findings, judge_chain
from probes.tls.grade import CertVerdict
from probes.tls.model import Address, Certificate, Observations, Settings
from probes.tls.suites import SuiteCheck, SuiteScan
from probes.tls.trust import load_trust_store


class AddressStatus(enum.StrEnum):
    OK = "ok"
    ERROR = "error"


@dataclass
class _Run:
    """What the probe has gathered so far; turned into a result however the run ends."""

    target: Target
    settings: Settings = field(default_factory=Settings)
    addresses: dict[str, dict[str, JSON]] = field(default_factory=dict)
    reports: dict[str, CertReport] = field(default_factory=dict)
    errors: dict[str, ProbeFailure] = field(default_factory=dict)  # the first failure of each address
    stage_errors: dict[str, dict[str, JSON]] = field(default_factory=dict)  # address -> stage -> error
    cert_findings: list[Finding] | None = None  # None until merged
    suite_findings: list[Finding] = field(default_factory=list)
    extra: dict[str, JSON] = field(default_factory=dict)
    failure: BaseException | None = None  # a failure of the probe as a whole

    def fail(self, address: str, exc: ProbeFailure, stage: str = "certificate") -> None:
        self.errors.setdefault(address, exc)
        self.stage_errors.setdefault(address, {})[stage] = {"kind": exc.kind.value, "message": str(exc)}

    def ordered_reports(self) -> list[tuple[str, CertReport]]:
        return [(a, self.reports[a]) for a in self.target.addresses if a in self.reports]

    def merge_certificates(self) -> None:
        if self.cert_findings is None:
            self.cert_findings = cert_findings(self.target.host, self.target.port, self.ordered_reports())

    def address_observations(self, address: str) -> Address:
        entry = dict(self.addresses.get(address, {}))
        cert = entry.pop("certificate", None)
        return Address(
            status=(AddressStatus.ERROR if address in self.errors else AddressStatus.OK).value,
            certificate=Certificate.from_json(cert) if isinstance(cert, Mapping) else None,
            errors=self.stage_errors.get(address, {}),
            rest=entry,
        )

    def observations(self) -> Observations:
        t = self.target
        shown = unicode_host(t.host)
        return Observations(
            host=t.host,
            port=t.port,
            addresses={a: self.address_observations(a) for a in t.addresses},
            skipped_addresses=dict(t.skipped_addresses),
            rest={"sni": sni_for(t.host), **({"host_unicode": shown} if shown else {}), **self.extra},
        )

    def result(self, probe: str) -> ProbeResult:
        self.merge_certificates()
        obs, findings = self.observations().to_json(), (*(self.cert_findings or ()), *self.suite_findings)
        failure = self.failure or _combined(self.errors, self.target.addresses)
        if failure is not None:
            return error_result(probe, failure, observations=obs, findings=findings)
        return ProbeResult(probe=probe, status=RunStatus.OK, observations=obs, findings=findings)


def _combined(errors: dict[str, ProbeFailure], order: Sequence[str]) -> ProbeFailure | None:
    """One error for the result, of the first failed address's kind; every one is in the observations."""
    failed = [a for a in order if a in errors]
    if not failed:
        return None
    first = errors[failed[0]]
    more = f" (also failed: {', '.join(failed[1:])})" if failed[1:] else ""
    return type(first)(f"{failed[0]}: {first}{more}")


class TlsProbe:
    name = "tls"
    active = False
    checks = frozenset(c.value for c in (*CertCheck, *SuiteCheck))

    def applies(self, target: Target) -> bool:
        return target.uses_tls

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        if not target.addresses:
            return ProbeResult(
                probe=self.name,
                status=RunStatus.SKIPPED,
                observations=Observations(skipped_addresses=dict(target.skipped_addresses)).to_json(),
                skip_reason="no address of this host can be probed from here",
            )
        try:
            settings = Settings.from_json(target.probe_settings(self.name))
        except ValueError as exc:
            return error_result(self.name, exc)
        run = _Run(target, settings)
        limit = ctx.limits.probe_deadline
        loop = asyncio.get_running_loop()
        end = loop.time() + limit
        try:
            async with asyncio.timeout(limit):
                await self._certificates(run, ctx)
                await self._strength(run, ctx, lambda: max(end - loop.time(), 0.1))
        except TimeoutError:
            timeout = DeadlineExceeded(f"tls probe exceeded its {limit:g}s deadline")
            for address in target.addresses:
                if address not in run.addresses and address not in run.errors:
                    run.fail(address, timeout)
            run.failure = run.failure or timeout
        return run.result(self.name)

    async def _certificates(self, run: _Run, ctx: ProbeContext) -> None:
        target = run.target
        store = await asyncio.to_thread(load_trust_store, ctx.ca_bundle)
        now = ctx.clock()
        warn_days = run.settings.expiry_warning_days
        sni = sni_for(target.host)
        run.extra["trust_store"] = {"sources": list(store.sources), "anchors": len(store)}
        run.extra["expiry_warning_days"] = warn_days

        async def one(address: str) -> None:
            try:
                # The reach step's handshake with this address, when it made one: the same capture.
                cap = ctx.captured.get(capture_key(address, target.port, sni)) or await capture_chain(
                    ctx.connector, target.host, address, target.port, sni=sni)
                try:
                    report = judge_chain(cap.chain, target.host, now, store, warn_days)
                except (ValueError, UnsupportedAlgorithm) as exc:
                    raise ProtocolFailure(f"the certificate from {address} cannot be read: {exc}") from None
            except ProbeFailure as exc:
                run.fail(address, exc)
                return
            run.reports[address] = report
            run.addresses[address] = {
                "protocol": cap.protocol,
                "cipher": cap.cipher,
                "cipher_bits": cap.cipher_bits,
                **report.observations(),
            }

        await asyncio.gather(*(one(a) for a in target.addresses))

    async def _strength(self, run: _Run, ctx: ProbeContext, remaining: Callable[[], float]) -> None:
        """Protocols, suites and the grade."""
        target = run.target
        sni = sni_for(target.host)
        # An address that could not even be reached is not scanned again; one whose
        # handshake failed is: it may speak only what this machine's OpenSSL refuses.
        unreachable = {a for a, e in run.errors.items() if isinstance(e, ConnectFailure | DeadlineExceeded)}
        scans: dict[str, SuiteScan] = {}

        async def one(address: str) -> None:
            try:
                scans[address] = await suites.scan_suites(
                    ctx.connector, target.host, address, target.port, sni=sni, deadline=remaining()
                )
            except ProbeFailure as exc:
                run.fail(address, exc, stage="suites")
            except Exception as exc:  # a bug in the strength half: recorded, never allowed to sink the rest
                run.failure = run.failure or exc

        try:
            await asyncio.gather(*(one(a) for a in target.addresses if a not in unreachable))
            await self._raw_chains(run, ctx, scans, remaining)
            ordered = [scans[a] for a in target.addresses if a in scans]
            run.extra["suites"] = {a: scans[a].to_json() for a in target.addresses if a in scans}
            run.suite_findings.extend(suites.judge_suites(target.host, target.port, ordered))
            if not ordered:
                return
            min_age = hsts_min_age(target.probe_settings(SHARED_SECTION))  # the http probe's threshold, shared
            max_age = await self._hsts(target, ctx, remaining()) if target.is_web else None
            run.extra["hsts_max_age"] = max_age
            verdict = self._cert_verdict(run.ordered_reports())
            run.extra["grade"] = grading.grade(verdict, ordered, max_age, hsts_min_age=min_age).to_json()
        except Exception as exc:  # the strength half failing must not cost the certificate results
            run.failure = exc

    @staticmethod
    async def _raw_chains(run: _Run, ctx: ProbeContext, scans: Mapping[str, SuiteScan],
                          remaining: Callable[[], float]) -> None:
        """Certificates the local TLS library could not get, read from a raw handshake instead.

        A server that speaks only what OpenSSL refuses (RC4, 3DES, NULL, DH under
        1024 bits, SSLv3) or sends a certificate message over OpenSSL's bound
        still sends its chain in clear at TLS 1.2 and earlier: that chain is
        judged like any other, and the address's certificate error is lifted
        (kept in the observations as ``tls_library_error``).
        """
        from probes.tls.suite_data import suite_table
        from probes.tls.suites import fetch_chain

        target = run.target
        store = await asyncio.to_thread(load_trust_store, ctx.ca_bundle)
        warn_days = run.settings.expiry_warning_days
        now = ctx.clock()

        async def one(address: str) -> None:
            first = run.errors[address]
            try:
                raw = await fetch_chain(ctx.connector, target.host, address, target.port, sni=sni_for(target.host),
                                        scan=scans[address], deadline=max(min(remaining(), 15.0), 0.1))
                try:
                    report = judge_chain(raw.chain, target.host, now, store, warn_days)
                except (ValueError, UnsupportedAlgorithm) as exc:
                    raise ProtocolFailure(f"the certificate from {address} cannot be read: {exc}") from None
            except ProbeFailure as exc:
                run.stage_errors.setdefault(address, {})["raw_certificate"] = {
                    "kind": exc.kind.value, "message": str(exc)}
                return
            del run.errors[address]
            errors = run.stage_errors.get(address, {})
            errors.pop("certificate", None)
            if not errors:
                run.stage_errors.pop(address, None)
            run.reports[address] = report
            suite = suite_table().by_name(raw.suite)
            run.addresses[address] = {
                "protocol": raw.protocol.value,
                "cipher": raw.suite,
                "cipher_bits": suite.bits if suite is not None else None,
                "chain_source": "raw_handshake",
                "tls_library_error": str(first),
                **report.observations(),
            }

        failed = [a for a in target.addresses
                  if a in scans and isinstance(run.errors.get(a), ProtocolFailure) and a not in run.reports
                  and "certificate" in run.stage_errors.get(a, {})]
        await asyncio.gather(*(one(a) for a in failed))

    @staticmethod
    def _cert_verdict(reports: Sequence[tuple[str, CertReport]]) -> CertVerdict | None:
        """The worst of every address's certificate, as the grade sees one."""
        from probes.tls.grade import CertVerdict

        if not reports:
            return None
        rs = [r for _, r in reports]
        weakest = min(rs, key=lambda r: (not r.key.weak, r.key.bits))
        hashes = [r.weakest_hash for r in rs]  # the leaf's, or an intermediate's when that one is weaker
        return CertVerdict(
            trusted=all(r.trust.trusted for r in rs),
            hostname_ok=all(r.hostname_ok for r in rs),
            expired=any(r.expired for r in rs),
            not_yet_valid=any(r.not_yet_valid for r in rs),
            key_type=weakest.key.type,
            key_bits=weakest.key.bits,
            signature_hash=next((h for h in hashes if h in WEAK_HASHES), hashes[0]),
        )

    @staticmethod
    async def _hsts(target: Target, ctx: ProbeContext, remaining: float) -> int | None:
        """max-age from the asset's page (the request the http probe makes, sent once); any
        failure only means "unknown"."""
        try:
            exchange = await ctx.http.page(
                http_url(target), target.addresses[0], max_body=min(PAGE_SAMPLE, ctx.limits.max_body),
                deadline=min(ctx.limits.request_deadline, remaining),
            )
        except ProbeFailure:
            return None
        return parse_hsts(exchange.header("strict-transport-security")).max_age
