"""Probe ``leak``: provoke errors safely and judge what comes back (issue 6).

Regulation CC-19000 (十八): when a system errors, users see a short message
and a code, never the detailed error. This probe sends a small, fixed set of
harmless provocations (see :mod:`probes.leak.provoke`) and judges the answers
against signatures kept as data (see :mod:`probes.leak.judge`).

I/O happens here only, through ``ctx.http`` (pinned addresses, budgets,
per-request deadlines, 1 MiB body cap); the whole probe runs under
``ctx.limits.probe_deadline``. A provocation the server refuses outright
(reset, garbage) is recorded and the rest go on: how a server refuses is not a
leak. A provocation that gets no answer (timeout, connection refused, or a
gateway's own 502/503/504 standing in for the application) is recorded too,
but proves nothing: the run then ends as an error result naming what went
unanswered, carrying what was judged, so no finding it could not have seen is
taken as fixed (see :func:`unanswered_failure`). Losing the home page, the
budget or the scope ends the probe with an error result carrying whatever was
judged so far.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from probes.base import (
    JSON,
    ConnectFailure,
    DeadlineExceeded,
    ErrorKind,
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
#: A gateway's own answer (bad gateway, unavailable, gateway timeout): the application was not reached.
GATEWAY_STATUSES = frozenset({502, 503, 504})
PARAMETER_PAGE = "parameter page"  # a discovery or reference page the parameter provocations need


@dataclass(frozen=True)
class Unanswered:
    """A request the findings depend on that got no answer from the application."""

    what: str  # a provocation kind ("not_found"), or PARAMETER_PAGE
    why: str  # "timeout", "connect" or "HTTP 503"
    kind: ErrorKind


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
    unanswered: list[Unanswered] = field(default_factory=list)
    sent: int = 0  # provocations sent

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
        self.sent += 1
        try:
            got = await self.fetch(
                RequestRole.PROVOCATION, p.kind, p.method, p.url, raw_path=p.raw_path,
                follow=p.follow_redirects, detail=p.detail, reference_url=p.reference_url,
            )
        except ProtocolFailure:
            return  # a refusal (reset, garbage) is an answer, and not a leak; it is in the log
        except (DeadlineExceeded, ConnectFailure) as exc:
            # No answer proves nothing: what this provocation could show was not seen.
            self.unanswered.append(Unanswered(p.kind.value, exc.kind.value, exc.kind))
            return
        self.provocations[index] = got  # judged whatever its status: a debug page may come with any
        if got.status in GATEWAY_STATUSES:
            self.unanswered.append(Unanswered(p.kind.value, f"HTTP {got.status}", ErrorKind.PROTOCOL))

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
        except ProtocolFailure:
            return None
        except (DeadlineExceeded, ConnectFailure) as exc:
            # The parameter provocations hang on this page: without it they were not sent.
            self.unanswered.append(Unanswered(PARAMETER_PAGE, exc.kind.value, exc.kind))
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
        if failure is None:
            failure = unanswered_failure(session.unanswered, session.sent)
        if failure is not None:
            return error_result(self.name, _leaf(failure), observations=observations, findings=findings)
        return ProbeResult(self.name, RunStatus.OK, observations=observations, findings=findings)


def unanswered_failure(unanswered: list[Unanswered], sent: int) -> ProbeFailure | None:
    """The error for a run where requests its findings depend on went unanswered; None if none did.

    Every provocation kind can carry a finding (it is part of the finding's key), so one that got
    no answer leaves the run unable to say whether yesterday's finding of that kind is gone: the
    run is then not OK, and storage keeps what it could not see open. What was judged is kept.
    """
    if not unanswered:
        return None
    order = {kind.value: i for i, kind in enumerate(ProvocationKind)}  # plan order, for a stable message
    groups: dict[tuple[str, str], int] = {}
    for u in sorted(unanswered, key=lambda u: (order.get(u.what, len(order)), u.why)):
        groups[(u.what, u.why)] = groups.get((u.what, u.why), 0) + 1
    provocations = [f"{what} ({n}x, {why})" if n > 1 else f"{what} ({why})"
                    for (what, why), n in groups.items() if what != PARAMETER_PAGE]
    parts = []
    if provocations:
        count = sum(1 for u in unanswered if u.what != PARAMETER_PAGE)
        parts.append(f"{count} of {sent} provocations got no answer: {', '.join(provocations)}")
    pages = sorted({u.why for u in unanswered if u.what == PARAMETER_PAGE})
    if pages:
        parts.append(f"the page whose parameters are provoked got no answer ({', '.join(pages)}): "
                     "its provocations were not sent")
    message = "; ".join(parts) + "; the leaks they could show were not judged, so none is taken as fixed"
    kinds = {u.kind for u in unanswered}
    if ErrorKind.TIMEOUT in kinds:
        return DeadlineExceeded(message)
    if ErrorKind.CONNECT in kinds:
        return ConnectFailure(message)
    return ProtocolFailure(message)


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
