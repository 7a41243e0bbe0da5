"""Probe ``http``: is the asset reachable only over HTTPS, and does it say so with HSTS?

For an ``http://`` asset the URL itself is the plain endpoint; for an
``https://``/``wss://`` asset it is the ``http://`` twin on port 80 (or the
``http_port`` setting). A plain endpoint is walked through redirects only while
they stay on plain HTTP within the host; where the walk ends is judged by
:func:`probes.http.judge.judge_plain`. An HTTPS endpoint is walked while it
stays on HTTPS within the host, and its HSTS policy judged.

Every address of the host is asked; each finding lists the addresses that fail.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
from probes.eol.banners import Banner, from_headers
from probes.eol.check import CHECK_ID as EOL_CHECK
from probes.eol.check import eol_findings, load_eol_data
from probes.eol.model import Settings as EolSettings
from probes.http.judge import (
    HSTS_MISSING,
    HSTS_SHORT,
    NO_HTTPS,
    Answer,
    PlainState,
    PlainVerdict,
    hsts_findings,
    judge_plain,
    next_hop,
    no_https_finding,
    pick_hsts,
    url_port,
)
from probes.http.model import DEFAULT_HTTP_PORT, Observations, Settings
from probes.net.http import HttpExchange
from probes.net.web import PAGE_SAMPLE, Hsts, hsts_min_age, http_url
from vocab import DataFileError, one_line

#: Judging needs to know whether a body exists, not what it says.


def endpoint_key(host: str, port: int) -> str:
    return f"{host}:{port}"


def twin_port(target: Target) -> int:
    """Where the plain-HTTP twin of an HTTPS asset listens (setting ``http_port``, else 80)."""
    return Settings.from_json(target.probe_settings(Settings.SECTION)).http_port


def twin_url(target: Target, port: int) -> str:
    parts = urlsplit(target.url)
    host = f"[{target.host}]" if ":" in target.host else target.host
    netloc = host if port == DEFAULT_HTTP_PORT else f"{host}:{port}"
    return urlunsplit(("http", netloc, parts.path or "/", parts.query, ""))


def _answer(ex: HttpExchange) -> Answer:
    sts = ex.header_all("strict-transport-security")
    return Answer(
        url=ex.url,
        status=ex.status,
        location=ex.location,
        body_length=len(ex.body),
        truncated=ex.truncated,
        hsts=sts[0] if sts else None,  # RFC 6797 8.1: only the first field counts
        server=ex.header("server"),
    )


def _error_json(exc: BaseException) -> dict[str, JSON]:
    kind = exc.kind.value if isinstance(exc, ProbeFailure) else "internal"
    return {"kind": kind, "message": one_line(exc)}


class _Run:
    """One run of the probe on one target: what it asked, saw and failed at."""

    def __init__(self, target: Target, ctx: ProbeContext) -> None:
        self.target = target
        self.ctx = ctx
        self.ends_at = asyncio.get_running_loop().time() + ctx.limits.probe_deadline
        # scheme ("plain" | "https") -> endpoint key -> what was asked and seen there
        self.endpoints: dict[str, dict[str, dict[str, Any]]] = {"plain": {}, "https": {}}
        self.plain: dict[str, dict[str, PlainVerdict]] = {}
        self.policies: dict[str, dict[str, tuple[Hsts, str | None]]] = {}
        self.errors: list[BaseException] = []
        self.http_port: int | None = None
        # Software named in response headers (Server, X-Powered-By...): judged for end of life.
        self.banners: dict[tuple[str, str, str], Banner] = {}

    # -- collecting --------------------------------------------------------

    async def collect(self) -> None:
        t = self.target
        if not t.addresses:
            raise ConnectFailure(f"{t.host} has no reachable address")
        if t.http_scheme == "http":
            await self.plain_endpoint(t.url, t.port, role="asset")
            return
        # A wss:// asset is judged as the https origin its WebSocket upgrades from.
        await self.https_endpoint(http_url(t), t.port, role="asset")
        self.http_port = twin_port(t)
        if self.http_port != t.port:
            await self.plain_endpoint(twin_url(t, self.http_port), self.http_port, role="http_twin")

    def _endpoint(self, kind: str, key: str, role: str, url: str) -> dict[str, Any]:
        return self.endpoints[kind].setdefault(key, {"role": role, "url": url, "addresses": {}})

    async def plain_endpoint(self, url: str, port: int, *, role: str) -> None:
        key = endpoint_key(self.target.host, port)
        obs = self._endpoint("plain", key, role, url)
        for addr in self.target.addresses:
            chain: list[Answer] = []
            try:
                verdict = await self._plain(url, addr, port, chain, twin=role == "http_twin")
            except ProbeFailure as exc:
                obs["addresses"][addr] = {"error": _error_json(exc), "chain": [a.to_json() for a in chain]}
                self.errors.append(exc)
                continue
            obs["addresses"][addr] = verdict.to_json()
            self.plain.setdefault(key, {})[addr] = verdict
            final = verdict.final
            if role == "asset" and verdict.state is PlainState.UPGRADES and final and final.location:
                # The asset is plain, but where it sends visitors is HTTPS on the
                # same host: that response decides whether browsers keep to HTTPS.
                await self.https_endpoint(final.location, url_port(final.location), role="https_landing",
                                          only=addr)

    async def _plain(self, url: str, addr: str, port: int, chain: list[Answer], *, twin: bool) -> PlainVerdict:
        if twin:
            # A twin that is not there is fine; tell "refused" from "dropped"
            # before speaking HTTP, since the HTTP layer reports a connect
            # timeout and a silent server alike.
            try:
                async with self.ctx.connector.open(
                    self.target.host, addr, port, timeout=self.ctx.limits.connect_timeout
                ):
                    pass
            except ConnectFailure:
                return PlainVerdict(PlainState.CLOSED, url)
            except DeadlineExceeded:
                return PlainVerdict(PlainState.FILTERED, url)
        await self._walk(url, addr, "http", chain)
        return PlainVerdict(judge_plain(chain[-1], self.target.host), url, tuple(chain))

    async def https_endpoint(self, url: str, port: int, *, role: str, only: str | None = None) -> None:
        key = endpoint_key(self.target.host, port)
        obs = self._endpoint("https", key, role, url)
        for addr in (only,) if only else self.target.addresses:
            if addr in obs["addresses"]:
                continue
            chain: list[Answer] = []
            try:
                await self._walk(url, addr, "https", chain)
            except ProbeFailure as exc:
                obs["addresses"][addr] = {"error": _error_json(exc), "chain": [a.to_json() for a in chain]}
                self.errors.append(exc)
                continue
            hsts, source = pick_hsts(chain, hsts_min_age(self.target.probe_settings(Settings.SECTION)))
            self.policies.setdefault(key, {})[addr] = (hsts, source)
            first = chain[0]
            obs["addresses"][addr] = {
                "status": first.status,
                "location": first.location,
                "server": first.server,
                "chain": [a.to_json() for a in chain],
                "hsts": hsts.to_json(),
                "hsts_from": source,
            }

    async def _walk(self, url: str, addr: str, scheme: str, chain: list[Answer]) -> None:
        """Request ``url`` and follow redirects that stay on ``scheme`` within the host."""
        seen = {url}
        current = url
        while True:
            answer = _answer(await self._get(current, addr))
            chain.append(answer)
            hop = next_hop(answer, self.target.host, scheme)
            if hop is None:
                return
            if hop in seen or len(chain) > self.ctx.limits.max_redirects:
                raise ProtocolFailure(
                    f"redirect loop or too many redirects within {self.target.host} "
                    f"({len(chain)} hops from {url})"
                )
            seen.add(hop)
            current = hop

    async def _get(self, url: str, addr: str) -> HttpExchange:
        remaining = self.ends_at - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise DeadlineExceeded(f"http probe deadline of {self.ctx.limits.probe_deadline:g}s passed")
        ex = await self.ctx.http.page(  # the tls probe reads the asset's page for HSTS too: one request
            url,
            addr,
            max_body=min(PAGE_SAMPLE, self.ctx.limits.max_body),
            deadline=min(self.ctx.limits.request_deadline, remaining),
        )
        for banner in from_headers(ex.headers, where=url):
            self.banners.setdefault((banner.product, banner.version, banner.where), banner)
        return ex

    # -- results -----------------------------------------------------------

    def findings(self) -> tuple[Finding, ...]:
        found: list[Finding] = []
        for key, verdicts in self.plain.items():
            f = no_https_finding(key, verdicts)
            if f is not None:
                found.append(f)
        for key, policies in self.policies.items():
            found.extend(hsts_findings(key, policies))
        found.extend(self.eol_findings())
        return tuple(found)

    def eol_findings(self) -> list[Finding]:
        if not self.banners:
            return []
        path = EolSettings.from_json(self.target.probe_settings(EolSettings.SECTION)).data
        try:
            data = load_eol_data(path) if path is not None else None
        except DataFileError as exc:
            self.errors.append(ProtocolFailure(f"end-of-life data {path}: {exc}"))
            return []
        return eol_findings(self.banners.values(), data, self.ctx.clock().date())

    def observations(self) -> Observations:
        return Observations(plain=self.endpoints["plain"], https=self.endpoints["https"], http_port=self.http_port,
                            banners=tuple(b.to_json() for b in self.banners.values()))


class HttpProbe:
    name = "http"
    active = False
    checks = frozenset({NO_HTTPS, HSTS_MISSING, HSTS_SHORT, EOL_CHECK})  # software.eol: server banners

    def applies(self, target: Target) -> bool:
        return target.is_web

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        run = _Run(target, ctx)
        try:
            async with asyncio.timeout(ctx.limits.probe_deadline):
                await run.collect()
        except TimeoutError:
            # The probe's own deadline says more than whatever it interrupted.
            run.errors.insert(0, DeadlineExceeded(
                f"http probe took longer than its deadline of {ctx.limits.probe_deadline:g}s"
            ))
        except Exception as exc:  # errors are values: a bug is reported, never raised
            run.errors.append(exc)
        findings = run.findings()
        if run.errors:
            return error_result(self.name, run.errors[0], observations=run.observations().to_json(), findings=findings)
        return ProbeResult(self.name, RunStatus.OK, observations=run.observations().to_json(), findings=findings)
