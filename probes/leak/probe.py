"""Probe ``leak``: provoke errors safely and judge what comes back (issue 6).

Regulation CC-19000 (十八): when a system errors, users see a short message
and a code, never the detailed error. This probe sends a small, fixed set of
harmless provocations (see :mod:`probes.leak.provoke`) and judges the answers
against signatures kept as data (see :mod:`probes.leak.judge`).

I/O happens here only, through ``ctx.http`` (pinned addresses, budgets,
per-request deadlines, 1 MiB body cap); the whole probe runs under
``ctx.limits.probe_deadline``. A provocation the server refuses outright
(reset, garbage, timeout) is recorded and the rest go on: how a server
refuses is not a leak. Losing the home page, the budget or the scope ends the
probe with an error result carrying whatever was judged so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from probes.base import (
    JSON,
    ConnectFailure,
    DeadlineExceeded,
    ProbeContext,
    ProbeFailure,
    ProbeResult,
    ProtocolFailure,
    RunStatus,
    Target,
    error_result,
)
from probes.leak.judge import Observed, Verdict, judge
from probes.leak.model import Observations
from probes.leak.provoke import (
    Provocation,
    ProvocationKind,
    RequestRole,
    choose_parameters,
    discovery_pages,
    extract_links,
    fixed_provocations,
    param_candidates,
    param_provocations,
)
from probes.leak.signatures import LeakCheck, load_signatures
from probes.net.web import http_url
from vocab import one_line

if TYPE_CHECKING:
    from probes.net.http import HttpExchange

#: Browsers ask for HTML first; frameworks pick their HTML error page for them.
ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
BODY_CAP = 1 << 20


@dataclass
class _Session:
    """One run against one target: what was sent and what came back, in plan order."""

    target: Target
    ctx: ProbeContext
    home: Observed | None = None
    provocations: dict[int, Observed] = field(default_factory=dict)
    normals: list[Observed] = field(default_factory=list)
    log: list[dict[str, JSON]] = field(default_factory=list)
    parameters: list[dict[str, JSON]] = field(default_factory=list)

    async def fetch(
        self,
        role: RequestRole,
        kind: ProvocationKind | None,
        method: str,
        url: str,
        *,
        raw_path: bytes | None = None,
        follow: bool = True,
        detail: dict[str, str] | None = None,
        reference_url: str | None = None,
    ) -> Observed:
        entry: dict[str, JSON] = {"role": role.value, "kind": kind.value if kind else None, "method": method,
                                  "url": url, **(detail or {})}
        self.log.append(entry)
        try:
            ex = await self.ctx.http.request(
                method,
                url,
                headers={"accept": ACCEPT},
                raw_path=raw_path,
                follow_redirects=follow,
                max_body=min(self.ctx.limits.max_body, BODY_CAP),
            )
        except ProbeFailure as exc:
            entry["error"] = one_line(exc)
            entry["error_kind"] = exc.kind.value
            raise
        entry.update({"path": ex.path_sent, "status": ex.status, "content_type": ex.content_type,
                      "bytes": len(ex.body), "truncated": ex.truncated, "elapsed_ms": round(ex.elapsed * 1000)})
        return _observed(ex, role, kind, method, detail or {}, reference_url)

    async def provoke(self, index: int, p: Provocation) -> None:
        # A refusal (reset, garbage, timeout) is an answer, and not a leak; it is in the log.
        with contextlib.suppress(ProtocolFailure, DeadlineExceeded, ConnectFailure):
            self.provocations[index] = await self.fetch(
                RequestRole.PROVOCATION, p.kind, p.method, p.url, raw_path=p.raw_path,
                follow=p.follow_redirects, detail=p.detail, reference_url=p.reference_url,
            )

    async def collect(self) -> None:
        t = self.target
        url = http_url(t)
        self.home = await self.fetch(RequestRole.HOME, ProvocationKind.BASELINE, "GET", url)
        fixed = fixed_provocations(url, secrets.token_hex(6))
        async with asyncio.TaskGroup() as group:
            for i, p in enumerate(fixed):
                group.create_task(self.provoke(i, p))
            group.create_task(self.parameter_phase(self.home, start=len(fixed)))

    async def parameter_phase(self, home: Observed, start: int) -> None:
        origin = self.target.origin
        links = _links(home)
        candidates = param_candidates(links, origin)
        if not candidates:
            for url in discovery_pages(links, origin, exclude=(http_url(self.target), home.url)):
                page = await self._ordinary(RequestRole.DISCOVERY, url)
                if page is not None:
                    candidates = param_candidates(_links(page), origin)
                if candidates:
                    break
        chosen = choose_parameters(candidates)
        if not chosen:
            return
        self.parameters = [{"url": c.url, "name": c.name, "numeric": c.numeric} for c in chosen]
        reference = await self._ordinary(RequestRole.REFERENCE, chosen[0].url)
        if reference is None:
            return  # without its normal page a variant cannot be judged fairly
        plan = param_provocations(chosen)
        await asyncio.gather(*(self.provoke(start + i, p) for i, p in enumerate(plan)))

    async def _ordinary(self, role: RequestRole, url: str) -> Observed | None:
        try:
            # reference_url: the URL asked for, which variants name, whatever it redirected to
            page = await self.fetch(role, None, "GET", url, reference_url=url)
        except (ProtocolFailure, DeadlineExceeded, ConnectFailure):
            return None
        self.normals.append(page)
        return page

    def observed(self) -> list[Observed]:
        ordered = [self.provocations[i] for i in sorted(self.provocations)]
        return [*([self.home] if self.home else []), *ordered, *self.normals]

    def observations(self, verdict: Verdict | None) -> Observations:
        return Observations(
            address=self.target.addresses[0] if self.target.addresses else None,
            requests=tuple(self.log),
            parameters=tuple(self.parameters),
            signatures_version=load_signatures().version,
            banners=tuple(verdict.banners) if verdict is not None else None,
            suppressed_by_normal_page=None if verdict is None else {
                k: tuple(v) for k, v in verdict.suppressed.items()},
        )


def _observed(ex: HttpExchange, role: RequestRole, kind: ProvocationKind | None, method: str,
              detail: dict[str, str], reference_url: str | None) -> Observed:
    path = ex.path_sent
    if ex.redirects:  # evidence names the request posture made, not the hop it ended on
        first = urlsplit(ex.redirects[0].url)
        path = first.path + (f"?{first.query}" if first.query else "")
    return Observed(
        role=role,
        kind=kind,
        method=method,
        path=path,
        url=ex.url,
        status=ex.status,
        content_type=ex.content_type,
        headers=ex.headers,
        text=ex.text if ex.is_textual else "",
        textual=ex.is_textual,
        truncated=ex.truncated,
        detail=detail,
        reference_url=reference_url,
        redirected=bool(ex.redirects),
    )


def _links(page: Observed) -> list[str]:
    if not page.textual or "html" not in (page.content_type or "text/html"):
        return []
    return extract_links(page.text, page.url)


class LeakProbe:
    name = "leak"
    active = True
    checks = frozenset(c.value for c in LeakCheck)

    def applies(self, target: Target) -> bool:
        return target.is_web and target.active

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        if not target.is_web:
            return ProbeResult.skipped(self.name, f"{target.scheme}:// is not a web asset")
        if not target.active:
            return ProbeResult.skipped(self.name, "active probes are not allowed for this asset")
        session = _Session(target, ctx)
        failure: BaseException | None = None
        try:
            async with asyncio.timeout(ctx.limits.probe_deadline):
                await session.collect()
        except TimeoutError:
            limit = ctx.limits.probe_deadline
            failure = DeadlineExceeded(f"leak probe of {target.url} passed its {limit:g}s deadline")
        except Exception as exc:  # errors are values: budget, scope, lost home page; else internal
            failure = _leaf(exc)
        verdict = await asyncio.to_thread(judge, session.observed(), load_signatures()) if session.home else None
        findings = tuple(verdict.findings) if verdict else ()
        observations = session.observations(verdict).to_json()
        if failure is not None:
            return error_result(self.name, _leaf(failure), observations=observations, findings=findings)
        return ProbeResult(self.name, RunStatus.OK, observations=observations, findings=findings)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
