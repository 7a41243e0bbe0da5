"""Probe ``edge``: which WAF and which CDN (or DDoS-absorbing edge) front an asset.

Signals, judged in :mod:`probes.edge.judge` against ``probes/edge/signatures.toml``:

* passive, always: one ordinary GET of the asset's URL (in-host redirects
  followed), whose headers, cookies, Server header and, on an error page,
  block-page markers are matched; and the CNAME chain the agent resolved.
* active, only when ``target.active``: exactly two extra requests, sent one
  after the other to the page the baseline ended on:

  1. a *control*: the same path with ``posture_xss``, ``posture_sqli`` and
     ``posture_lfi`` parameters holding random letters and digits as long as the
     attack's;
  2. an *attack*: the same three parameters holding an obviously hostile but
     harmless script tag, SQL tautology and path traversal.

  Harmless by construction: GET only, no body, no cookie; every hostile value sits
  in a parameter no application reads (the ``posture_`` prefix), so nothing can
  reach a real query, file name or page; the values are the classic strings every
  WAF rule set blocks and nothing more (no stacked query, no command, no write).

  Why one control and one attack rather than two attacks: many origins answer
  404, 405 or 403 to any unknown query, and comparing an attack only with the
  plain baseline would call that a WAF. The control has the attack's shape
  (path, parameter names, lengths) but nothing hostile in it, so the only
  difference between the two is the payload; one attack request carrying all
  three payload classes is enough to trip any WAF in blocking mode. The control
  goes first so an attack that gets this client banned cannot spoil it.

A block (a block status the control did not get, a dropped connection, a
vendor's block page, or a page unlike the control's that speaks of blocking,
whatever its status) proves a WAF even when the vendor is unknown; a gateway's
502/503/504 does not, nor does a Server header that changed alone. A CDN that
also sells a WAF (Cloudflare, Imperva, Akamai...) proves a WAF only by blocking.
The probe is not ``active`` itself: its passive part runs on every web asset,
and it gates its own two extra requests on ``target.active``.
"""

from __future__ import annotations

import asyncio
import secrets
import string
from dataclasses import replace
from urllib.parse import quote, urlsplit, urlunsplit

from probes.base import (
    BudgetExhausted,
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
from probes.edge.judge import (
    CDN_CHECK,
    WAF_CHECK,
    EdgeVerdict,
    Failure,
    RequestKind,
    Response,
    detect,
    edge_findings,
)
from probes.edge.model import Observations
from probes.edge.signatures import load_signatures
from probes.net.http import HttpExchange
from probes.net.web import http_url
from vocab import one_line

BODY_CAP = 256 * 1024
# Obviously hostile, harmless: parameters no application reads (posture_ prefix), holding
# the strings every WAF rule set blocks. README "WAF and CDN detection" quotes this request.
ATTACK_PARAMS: tuple[tuple[str, str], ...] = (
    ("posture_xss", "<script>alert('posture')</script>"),
    ("posture_sqli", "posture' OR '1'='1' --"),
    ("posture_lfi", "../../../../etc/passwd"),
)
_ALPHABET = string.ascii_lowercase + string.digits
# Each request on its own connection: a reset then belongs to the request that
# caused it, never to a keep-alive connection the server happened to close.
FRESH_CONNECTION = {"connection": "close"}


def attack_query() -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in ATTACK_PARAMS)


def control_query() -> str:
    """Same parameter names and value lengths as the attack, random harmless values."""
    return "&".join(
        f"{k}={''.join(secrets.choice(_ALPHABET) for _ in range(len(v)))}" for k, v in ATTACK_PARAMS
    )


def with_query(url: str, query: str) -> bytes:
    """Request target (path and query) for ``url`` with ``query`` appended, byte for byte."""
    parts = urlsplit(url)
    path = parts.path or "/"
    joined = f"{parts.query}&{query}" if parts.query else query
    return f"{path}?{joined}".encode("ascii")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


def to_response(kind: RequestKind, ex: HttpExchange) -> Response:
    return Response(
        kind=kind,
        url=ex.url,
        status=ex.status,
        headers=ex.headers,
        body=ex.text if ex.is_textual else "",
    )


_FAILURES: tuple[tuple[type[ProbeFailure], Failure], ...] = (
    (DeadlineExceeded, Failure.TIMEOUT),
    (ConnectFailure, Failure.REFUSED),
    (ProtocolFailure, Failure.DROPPED),  # reset, closed early, garbage instead of HTTP
)


def failed(kind: RequestKind, url: str, exc: ProbeFailure) -> Response | None:
    """How a request failed, or None when the failure says nothing about the asset."""
    for cls, why in _FAILURES:
        if isinstance(exc, cls):
            return Response(kind=kind, url=url, failure=why, detail=one_line(exc))
    return None


class EdgeProbe:
    name = "edge"
    checks = frozenset({WAF_CHECK, CDN_CHECK})
    active = False  # passive part always runs; the two extra requests check target.active
    active_part = True  # ...so a run without them (quiet hours) is only part of a complete scan

    def applies(self, target: Target) -> bool:
        return target.is_web

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        gathered = Observations(cname_chain=tuple(target.cname_chain), declared=dict(target.declared))
        try:
            async with asyncio.timeout(ctx.limits.probe_deadline):
                url = http_url(target)
                ex = await ctx.http.request(
                    "GET", url, headers=FRESH_CONNECTION, follow_redirects=True, max_body=BODY_CAP
                )
                baseline = to_response(RequestKind.BASELINE, ex)
                gathered = replace(gathered, baseline=baseline.to_json())
                extras, not_run = await self._active(target, ctx, ex.url)
                budget_cut = not_run if not_run.startswith("not sent:") else None
        except TimeoutError:
            exc = DeadlineExceeded(f"edge probe took longer than {ctx.limits.probe_deadline:g}s")
            return error_result(self.name, exc, observations=gathered.to_json())
        except ProbeFailure as exc:
            return error_result(self.name, exc, observations=gathered.to_json())
        verdict = detect(baseline, extras, target.cname_chain, load_signatures(), not_run_reason=not_run)
        observations = self._observations(verdict, gathered).to_json()
        findings = edge_findings(verdict, target.host, target.declared)
        if budget_cut is not None:
            # The passive part stands, but the active check was not made: a partial result, said so.
            return error_result(self.name, BudgetExhausted(f"partial result: active check {budget_cut}"),
                                observations=observations, findings=findings)
        return ProbeResult(probe=self.name, status=RunStatus.OK, observations=observations, findings=findings)

    async def _active(self, target: Target, ctx: ProbeContext, url: str) -> tuple[list[Response], str]:
        if not target.active:
            return [], "active probes are off for this asset"
        extras: list[Response] = []
        for kind, query in ((RequestKind.CONTROL, control_query()), (RequestKind.ATTACK, attack_query())):
            raw = with_query(url, query)
            try:
                ex = await ctx.http.request(
                    "GET", url, headers=FRESH_CONNECTION, raw_path=raw, max_body=BODY_CAP
                )
            except BudgetExhausted as exc:
                # Other probes spent the host's budget: no verdict, but the passive part stands.
                return [], f"not sent: {one_line(exc)}"
            except ProbeFailure as exc:
                failure = failed(kind, origin_of(url) + raw.decode("ascii"), exc)
                if failure is None:
                    raise  # out of scope and the like: the probe's error, not the asset's answer
                extras.append(failure)
                continue
            extras.append(to_response(kind, ex))
        return extras, ""

    @staticmethod
    def _observations(verdict: EdgeVerdict, gathered: Observations) -> Observations:
        return replace(gathered, waf=verdict.waf_json(), cdn=verdict.cdn_json(), proxy=verdict.proxy_json(),
                       active=verdict.active.to_json(), signatures_version=load_signatures().version)
