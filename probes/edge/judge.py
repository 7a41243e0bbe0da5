"""Pure judgement for the ``edge`` probe: which WAF and CDN stand in front of an asset.

Inputs are plain facts (responses already received, the CNAME chain already
resolved, the signature set); nothing here does I/O, so every rule is tested
table-driven without a network.

* Passive: every signature of the data file is matched against every response
  (headers, Set-Cookie names, Server) and against the CNAME chain. Block-page
  markers are only looked for in 4xx/5xx responses and in the attack response,
  and only where the page as normally served lacks them (the attack: baseline and
  control; an error page: a successful baseline or control), so a page that
  merely mentions a vendor does not name it.
* Active: the attack response is compared with the control response (same
  path, same parameter names, harmless values) and with the baseline. A block
  status the control did not get, a dropped connection, a new block-page marker
  or a changed Server header proves a WAF even when no vendor is known.
* A vendor is named when one of its matching signatures is conclusive;
  non-conclusive matches are kept as hints and never clear a finding.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from probes.base import JSON, Finding, Severity
from probes.edge.compare import other_block_page
from probes.edge.signatures import BlockWords, Role, Signal, Signature, SignatureSet, load_signatures

UNKNOWN_WAF = "unknown WAF"
# Statuses WAFs answer a blocked request with: 403/406/501 (ModSecurity, most appliances),
# 429, 418 and 999 (block codes of some WAFs in wafw00f's generic detection), 222 (Nemesida, wafw00f).
BLOCK_STATUSES = frozenset({222, 403, 406, 418, 429, 501, 999})
# A gateway's own error pages: the origin or a pooled backend failed, nothing was blocked.
GATEWAY_STATUSES = frozenset({502, 503, 504})
WAF_CHECK = "edge.waf.absent"
CDN_CHECK = "edge.cdn.absent"
# Declaration keys (asset config ``declared``) that cover each check.
DECLARATION_KEYS: Mapping[str, tuple[str, ...]] = {
    WAF_CHECK: ("waf",),
    CDN_CHECK: ("ddos", "cdn"),
}
COVERED_REASON = "covered by declared control"
_BODY_SCAN = 256 * 1024  # markers sit near the top of a block page
_EVIDENCE_TEXT = 160


class RequestKind(enum.StrEnum):
    BASELINE = "baseline"
    CONTROL = "control"
    ATTACK = "attack"
    DNS = "dns"


class Failure(enum.StrEnum):
    DROPPED = "dropped"  # reset, closed mid-exchange, garbage
    TIMEOUT = "timeout"  # no answer before the deadline
    REFUSED = "refused"  # could not connect at all


class Outcome(enum.StrEnum):
    NOT_RUN = "not_run"
    BLOCKED = "blocked"
    NOT_BLOCKED = "not_blocked"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Response:
    """What one request got: a response, or how it failed."""

    kind: RequestKind
    url: str
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()  # names lower-cased
    body: str = ""
    failure: Failure | None = None
    detail: str = ""

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def server(self) -> str | None:
        values = self.header_all("server")
        return ", ".join(values) if values else None

    def cookies(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for raw in self.header_all("set-cookie"):
            pair = raw.split(";", 1)[0]
            name, _, value = pair.partition("=")
            if name.strip():
                out.append((name.strip(), value.strip()))
        return out

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"kind": self.kind.value, "url": self.url}
        if self.failure is not None:
            out.update(failure=self.failure.value, detail=self.detail)
        else:
            out.update(status=self.status, server=self.server)
        return out


@dataclass(frozen=True)
class Match:
    signature: Signature
    request: RequestKind
    matched: str  # what was seen, shortened

    def to_json(self) -> dict[str, JSON]:
        s = self.signature
        return {
            "vendor": s.vendor,
            "role": s.role.value,
            "signal": s.signal.value,
            "conclusive": s.conclusive,
            "request": self.request.value,
            "matched": self.matched,
            "signature": s.pattern_text,
            "source": s.source,
        }


@dataclass(frozen=True)
class ActiveResult:
    outcome: Outcome
    reason: str
    changes: tuple[str, ...] = ()
    requests: tuple[Response, ...] = ()

    def to_json(self) -> dict[str, JSON]:
        return {
            "outcome": self.outcome.value,
            "reason": self.reason,
            "changes": list(self.changes),
            "requests": [r.to_json() for r in self.requests],
        }


@dataclass(frozen=True)
class EdgeVerdict:
    matches: tuple[Match, ...]
    active: ActiveResult
    cname_chain: tuple[str, ...] = ()
    baseline: Response | None = None

    def _vendors(self, want_waf: bool, conclusive: bool) -> list[str]:
        names = {
            m.signature.vendor
            for m in self.matches
            if m.signature.conclusive is conclusive
            and (m.signature.role.waf if want_waf else m.signature.role.cdn)
        }
        return sorted(names, key=str.lower)

    @property
    def waf_vendors(self) -> list[str]:
        """Vendors proven to be the WAF: a WAF-only marker, or a WAF-selling edge that blocked."""
        blocked = self.active.outcome is Outcome.BLOCKED
        names = {
            m.signature.vendor
            for m in self.matches
            if m.signature.conclusive and (m.signature.role.proves_waf or (blocked and m.signature.role.waf))
        }
        return sorted(names, key=str.lower)

    @property
    def waf_capable(self) -> list[str]:
        """Edges in front that sell a WAF, not proven to run one (nothing was blocked)."""
        return [v for v in self._vendors(True, True) if v not in self.waf_vendors]

    @property
    def proxies(self) -> list[str]:
        """Load balancers and access gateways in front: named, proving neither control."""
        names = {m.signature.vendor for m in self.matches if m.signature.role is Role.PROXY}
        return sorted(names, key=str.lower)

    @property
    def waf_note(self) -> str | None:
        """Why a WAF-selling edge in front does not clear the WAF finding."""
        capable = self.waf_capable
        if not capable or self.waf_present:
            return None
        edge = ", ".join(capable)
        if self.active.outcome is Outcome.NOT_BLOCKED:
            return (f"CDN {edge} in front; the attack request was not blocked "
                    "(the WAF may be off or in log-only mode)")
        return f"CDN {edge} in front; whether its WAF blocks attacks was not observed ({self.active.reason})"

    @property
    def cdn_vendors(self) -> list[str]:
        return self._vendors(False, True)

    @property
    def waf_hints(self) -> list[str]:
        return [v for v in self._vendors(True, False) if v not in self.waf_vendors]

    @property
    def cdn_hints(self) -> list[str]:
        return [v for v in self._vendors(False, False) if v not in self.cdn_vendors]

    @property
    def waf_present(self) -> bool:
        return bool(self.waf_vendors) or self.active.outcome is Outcome.BLOCKED

    @property
    def cdn_present(self) -> bool:
        return bool(self.cdn_vendors)

    @property
    def waf_names(self) -> list[str]:
        if self.waf_vendors:
            return self.waf_vendors
        return [UNKNOWN_WAF] if self.waf_present else []

    def _evidence(self, want_waf: bool) -> list[dict[str, JSON]]:
        return [
            m.to_json()
            for m in self.matches
            if (m.signature.role.waf if want_waf else m.signature.role.cdn)
        ]

    def waf_json(self) -> dict[str, JSON]:
        evidence = self._evidence(True)
        if self.active.outcome is Outcome.BLOCKED:
            evidence.append({"signal": "active", "request": "attack", "changes": list(self.active.changes)})
        out: dict[str, JSON] = {"vendors": list(self.waf_names), "hints": self.waf_hints, "evidence": evidence}
        if self.waf_note:
            out["note"] = self.waf_note
        return out

    def cdn_json(self) -> dict[str, JSON]:
        return {"vendors": self.cdn_vendors, "hints": self.cdn_hints, "evidence": self._evidence(False)}

    def proxy_json(self) -> dict[str, JSON]:
        evidence = [m.to_json() for m in self.matches if m.signature.role is Role.PROXY]
        return {"vendors": list(self.proxies), "evidence": evidence}

    def observed(self) -> dict[str, JSON]:
        """A short summary of what was seen, for findings' evidence."""
        out: dict[str, JSON] = {
            "waf": self.waf_names,
            "cdn": self.cdn_vendors,
            "proxies": list(self.proxies),
            "hints": sorted(set(self.waf_hints) | set(self.cdn_hints), key=str.lower),
            "cname_chain": list(self.cname_chain),
            "baseline": self.baseline.to_json() if self.baseline else None,
            "active": self.active.outcome.value,
            "active_reason": self.active.reason,
        }
        if self.waf_note:
            out["note"] = self.waf_note
        return out


# ---------------------------------------------------------------- matching


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EVIDENCE_TEXT else text[: _EVIDENCE_TEXT - 1] + "…"


def _body_counts(resp: Response) -> bool:
    return resp.kind is RequestKind.ATTACK or (resp.status is not None and resp.status >= 400)


def match_response(resp: Response, signatures: Sequence[Signature]) -> list[Match]:
    """Every signature that ``resp`` carries (none for a failed request)."""
    if resp.failure is not None:
        return []
    found: list[Match] = []
    cookies = resp.cookies()
    body = resp.body[:_BODY_SCAN] if _body_counts(resp) else ""
    for sig in signatures:
        seen = _seen(sig, resp, cookies, body)
        if seen is not None:
            found.append(Match(sig, resp.kind, _short(seen)))
    return found


def _seen(sig: Signature, resp: Response, cookies: list[tuple[str, str]], body: str) -> str | None:
    if sig.signal is Signal.HEADER and sig.name is not None:
        for k, v in resp.headers:
            if sig.name.fullmatch(k) and (sig.value is None or sig.value.search(v)):
                return f"{k}: {v}"
    elif sig.signal is Signal.COOKIE and sig.name is not None:
        for k, v in cookies:
            if sig.name.fullmatch(k) and (sig.value is None or sig.value.search(v)):
                return f"Set-Cookie {k}"
    elif sig.signal is Signal.SERVER and sig.value is not None:
        for v in resp.header_all("server"):
            if sig.value.search(v):
                return f"server: {v}"
    elif sig.signal is Signal.BODY and sig.value is not None and body:
        hit = sig.value.search(body)
        if hit:
            return f"{resp.status} body: {hit.group(0)}"
    return None


def match_cnames(chain: Sequence[str], signatures: Sequence[Signature]) -> list[Match]:
    found: list[Match] = []
    for sig in signatures:
        if sig.signal is not Signal.CNAME:
            continue
        for name in chain:
            if sig.matches_cname(name):
                found.append(Match(sig, RequestKind.DNS, f"CNAME {name.rstrip('.').lower()}"))
                break
    return found


# ---------------------------------------------------------------- active comparison


def judge_active(
    baseline: Response,
    control: Response | None,
    attack: Response | None,
    signatures: Sequence[Signature],
    *,
    not_run_reason: str = "active probes are off for this asset",
    block_words: BlockWords | None = None,
) -> ActiveResult:
    """Did something block the attack request that let the control through?

    Blocks are found by comparing the attack response with the control's: a block
    status the control did not get, a vendor's block page, or another page (status or
    body unlike the control's) carrying block-page words, whatever its status (WAFs
    answer 200, 418 or 999 too). A gateway's 502/503/504 is not a block, and a Server
    header that changed alone is not one either (pooled backends differ).
    """
    if control is None or attack is None:
        return ActiveResult(Outcome.NOT_RUN, not_run_reason)
    sent = (control, attack)
    if control.failure is not None:
        return ActiveResult(
            Outcome.INCONCLUSIVE, f"control request failed ({control.failure}: {control.detail})", (), sent
        )
    if attack.failure is Failure.DROPPED:  # reset or closed mid-exchange: how WAFs in reset mode answer
        change = f"attack request: connection {attack.failure} ({attack.detail}); control got {control.status}"
        return ActiveResult(Outcome.BLOCKED, "the attack request was cut off", (change,), sent)
    if attack.failure is Failure.TIMEOUT:
        # Silence proves nothing: a WAF may drop the request, or the server (or the path to it) was
        # merely slow. No block was observed, so the missing-WAF finding stands, saying why.
        return ActiveResult(
            Outcome.INCONCLUSIVE,
            f"the attack request got no answer ({attack.detail}) while the control got {control.status}: "
            "a WAF dropping it silently cannot be told from a slow server",
            (), sent,
        )
    if attack.failure is not None:
        return ActiveResult(
            Outcome.INCONCLUSIVE, f"attack request failed ({attack.failure}: {attack.detail})", (), sent
        )
    changes: list[str] = []
    status_base = baseline.status if baseline.failure is None else None
    gateway = attack.status in GATEWAY_STATUSES and attack.status != control.status
    if attack.status in BLOCK_STATUSES and attack.status != control.status and attack.status != status_base:
        changes.append(f"attack request: status {control.status} -> {attack.status} (baseline {status_base})")
    bodies = [s for s in signatures if s.signal is Signal.BODY]
    before = _markers((baseline, control), bodies)
    for m in match_response(attack, bodies):
        if m.signature not in before:
            changes.append(f"attack request: block page of {m.signature.vendor} ({m.matched})")
    if not changes and not gateway:
        page = other_block_page((control.status, control.body), (attack.status, attack.body), block_words)
        if page:
            changes.append(page)
    if changes:
        if baseline.failure is None and control.server == baseline.server and attack.server != control.server:
            changes.append(f"attack request: Server {control.server!r} -> {attack.server!r}")
        return ActiveResult(Outcome.BLOCKED, "the attack request was blocked", tuple(changes), sent)
    if gateway:
        return ActiveResult(
            Outcome.NOT_BLOCKED,
            f"attack got a gateway error ({attack.status}, control {control.status}): an origin or "
            "load balancer failure, not a block",
            (),
            sent,
        )
    return ActiveResult(
        Outcome.NOT_BLOCKED,
        f"attack answered like the control (status {attack.status}, control {control.status})",
        (),
        sent,
    )


def _as_attack(resp: Response) -> Response:
    # Compare bodies on equal terms: the control's body is scanned as the attack's is.
    return Response(RequestKind.ATTACK, resp.url, resp.status, resp.headers, resp.body, resp.failure)


def _markers(pages: Sequence[Response], bodies: Sequence[Signature]) -> frozenset[Signature]:
    """Block-page markers in ``pages``, each body scanned as the attack's is (whatever its status)."""
    return frozenset(m.signature for page in pages for m in match_response(_as_attack(page), bodies))


# ---------------------------------------------------------------- verdict and findings


def detect(
    baseline: Response,
    extras: Sequence[Response],
    cname_chain: Sequence[str],
    signatures: SignatureSet | None = None,
    *,
    not_run_reason: str = "active probes are off for this asset",
) -> EdgeVerdict:
    sig_set = signatures or load_signatures()
    sigs = sig_set.signatures
    control = next((r for r in extras if r.kind is RequestKind.CONTROL), None)
    attack = next((r for r in extras if r.kind is RequestKind.ATTACK), None)
    # The page as normally served: a block-page marker it carries is the site's own text.
    normal = [r for r in (baseline, control) if r is not None]
    bodies = sig_set.of(Signal.BODY)
    answered = _markers(normal, bodies)  # what a harmless request gets, whatever the status
    served = _markers([r for r in normal if r.status is not None and r.status < 400], bodies)
    seen: dict[Signature, Match] = {}
    for resp in (baseline, *extras):
        usual = answered if resp.kind is RequestKind.ATTACK else served
        for m in match_response(resp, sigs):
            if m.signature.signal is Signal.BODY and m.signature in usual:
                continue  # a mention on the normal page, not the answer to the provocation
            seen.setdefault(m.signature, m)  # first request that showed it
    for m in match_cnames(cname_chain, sigs):
        seen.setdefault(m.signature, m)
    active = judge_active(baseline, control, attack, sigs, not_run_reason=not_run_reason,
                          block_words=sig_set.block_words)
    return EdgeVerdict(tuple(seen.values()), active, tuple(cname_chain), baseline)


def declaration_for(check_id: str, declared: Mapping[str, str]) -> str | None:
    for key in DECLARATION_KEYS.get(check_id, ()):
        text = declared.get(key)
        if text and text.strip():
            return text.strip()
    return None


def edge_findings(verdict: EdgeVerdict, host: str, declared: Mapping[str, str]) -> tuple[Finding, ...]:
    """edge.waf.absent / edge.cdn.absent (key: the host), lowered when declared."""
    missing = [c for c, present in ((WAF_CHECK, verdict.waf_present), (CDN_CHECK, verdict.cdn_present))
               if not present]
    out: list[Finding] = []
    for check_id in missing:
        observed = verdict.observed()
        text = declaration_for(check_id, declared)
        if text is None:
            out.append(Finding(check_id, host, {"covered_by_declaration": False, "observed": observed}))
        else:
            evidence = {"covered_by_declaration": True, "declared": text, "observed": observed}
            out.append(Finding(check_id, host, evidence, Severity.INFO, COVERED_REASON))
    return tuple(out)
