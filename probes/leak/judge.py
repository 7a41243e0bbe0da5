"""Judging what the leak probe's requests brought back: pure, no I/O.

Rules (issue 6):

* Content, not status, decides what leaks: PHP answers a fatal error with
  200. Status only says whether a page posture did not provoke is a normal
  page (2xx/3xx) or an error answer (4xx/5xx), below.
* Only posture's own responses, and only textual bodies, are read.
* A body signature that already matches the asset's normal page (the home
  page for the path and method provocations; for a parameter variant, the
  unmodified page it came from) was not caused by the provocation and is
  ignored: a blog post quoting a stack trace is not a leak of this site's
  internals. Only what can be content hides anything (stack traces, database
  errors, footers), and only on a page that answered 2xx/3xx.
* A page is judged as served too (home, reference and discovery pages): a
  framework debug page is never content, so it is reported whatever its
  status; a page that answered 4xx/5xx is an error answer, so all it shows is
  reported, and it hides nothing. Such findings are keyed by the page's kind
  (``baseline`` for the home page, ``reference``, ``discovery``) and their
  evidence says ``as_served``: a site whose every page is an error page is the
  most exposed, not the cleanest.
* Headers are not content. A version banner in any header counts, the home
  page's included; a header-only debug marker (Symfony's X-Debug-Token) counts
  too, once, under the first provocation kind that showed it.
* One response that is a framework debug page is reported as that page; the
  stack trace it contains is part of the same finding, not a second one.
  A database error on it still is a finding of its own (it also hints at
  injection). One response gives at most one finding per check: the first
  matching signature in file order (specific engines before generic ones).
* Keys: ``<provocation kind | page kind>:<signature id>`` and
  ``banner:<header name | footer>:<product>``: never the random path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from probes.base import JSON, Finding
from probes.leak.provoke import ProvocationKind, RequestRole
from probes.leak.signatures import (
    Hit,
    LeakCheck,
    Signature,
    SignatureSet,
    body_views,
    match_body,
    match_headers,
    product_slug,
)


@dataclass(frozen=True)
class Observed:
    """One of posture's requests and what came back (JSON-able parts only)."""

    role: RequestRole
    kind: ProvocationKind | None  # None for reference and discovery pages
    method: str
    path: str  # request target as sent
    url: str  # final URL (after in-host redirects)
    status: int
    content_type: str
    headers: tuple[tuple[str, str], ...]
    text: str
    textual: bool
    truncated: bool = False
    detail: Mapping[str, str] = field(default_factory=dict)
    #: provocations: the unmodified page this one varies (None: the home page);
    #: reference pages: the URL that was asked for
    reference_url: str | None = None
    redirected: bool = False

    def request_json(self) -> dict[str, JSON]:
        return {"method": self.method, "path": self.path, **self.detail}


@dataclass
class Verdict:
    findings: list[Finding]
    suppressed: dict[str, list[str]]  # signature id -> normal pages it already matched
    banners: list[dict[str, JSON]]


@dataclass
class _Collector:
    found: dict[str, Finding] = field(default_factory=dict)
    also: dict[str, list[str]] = field(default_factory=dict)
    banners: list[dict[str, JSON]] = field(default_factory=list)

    def add(self, key: str, hit: Hit, r: Observed) -> None:
        if key in self.found:
            self.also.setdefault(key, []).append(f"{r.method} {r.path}")
            return
        self.found[key] = _finding(key, hit, r)
        if hit.signature.check is LeakCheck.VERSION_BANNER:
            self.banners.append(
                {"where": hit.where, "product": hit.product, "version": hit.version, "signature": hit.signature.id}
            )

    def findings(self) -> list[Finding]:
        out = []
        for key, f in self.found.items():
            others = self.also.get(key)
            out.append(Finding(f.check_id, f.key, {**f.evidence, "also_matched": others[:10]}) if others else f)
        return out


#: What a normal page can show as content (documentation quotes traces and database errors; a
#: footer is part of a page). A framework debug page never is: it is reported wherever it shows.
_CONTENT_CHECKS = frozenset({LeakCheck.STACK_TRACE, LeakCheck.SQL_ERROR, LeakCheck.VERSION_BANNER})
_AS_SERVED = {
    RequestRole.HOME: "the home page",
    RequestRole.REFERENCE: "the page whose parameters are provoked",
    RequestRole.DISCOVERY: "a linked page",
}


def _is_normal_answer(r: Observed) -> bool:
    """A 2xx/3xx answer: the page as the site means it. A 4xx/5xx page is an error answer."""
    return 200 <= r.status < 400


def judge(responses: Sequence[Observed], signatures: SignatureSet) -> Verdict:
    """Findings from the responses of one scan, taken in plan order (home page first)."""
    body_sigs = [s for s in signatures.signatures if s.on_body]
    header_sigs = [s for s in signatures.signatures if not s.on_body]
    judged = [(r, _body_hits(r, body_sigs)) for r in responses]
    # What normal pages show as content: None is the home page, else a reference page's URL.
    normal: dict[str | None, set[str]] = {}
    for page, hits in judged:
        if page.role in (RequestRole.HOME, RequestRole.REFERENCE) and _is_normal_answer(page):
            where = None if page.role is RequestRole.HOME else page.reference_url or page.url
            normal[where] = {h.signature.id for h in hits if h.signature.check in _CONTENT_CHECKS}

    out = _Collector()
    header_marks: set[str] = set()  # header-only debug signatures already reported
    for r, hits in judged:
        if r.role in (RequestRole.HOME, RequestRole.PROVOCATION):
            _judge_headers(out, header_marks, r, header_sigs)
        if r.role is RequestRole.PROVOCATION:
            # A parameter variant is compared with its own unmodified page, the others with the home page.
            shown = normal.get(r.reference_url, set())
            _report(out, r, [h for h in hits if h.signature.id not in shown])
        elif r.role in _AS_SERVED:
            # An error answer is reported whole; a normal one only for what is never content.
            _report(out, r, hits if not _is_normal_answer(r) else [
                h for h in hits if h.signature.check not in _CONTENT_CHECKS])

    suppressed: dict[str, list[str]] = {}
    for url, ids in normal.items():
        for sid in sorted(ids):
            suppressed.setdefault(sid, []).append(url or "home")
    return Verdict(out.findings(), suppressed, out.banners)


def _judge_headers(out: _Collector, header_marks: set[str], r: Observed, header_sigs: Sequence[Signature]) -> None:
    for sig in header_sigs:
        for hit in match_headers(sig, r.headers):
            if sig.check is LeakCheck.VERSION_BANNER:
                out.add(f"banner:{hit.where}:{product_slug(hit.product or '')}", hit, r)
            elif sig.id not in header_marks:
                header_marks.add(sig.id)
                out.add(f"{_origin(r)}:{sig.id}", hit, r)


def _report(out: _Collector, r: Observed, hits: Sequence[Hit]) -> None:
    """The body findings of one response, keyed by its provocation (or page) kind."""
    prefix = _origin(r)
    debug_page = any(h.signature.check is LeakCheck.DEBUG_PAGE for h in hits)
    seen_checks: set[LeakCheck] = set()
    for hit in hits:
        check = hit.signature.check
        if check is LeakCheck.VERSION_BANNER:
            out.add(f"banner:footer:{product_slug(hit.product or '')}", hit, r)
        elif debug_page and check is LeakCheck.STACK_TRACE:
            continue  # the debug page finding already carries its trace
        elif check not in seen_checks:  # one error, one finding per check: the first (most specific)
            seen_checks.add(check)
            out.add(f"{prefix}:{hit.signature.id}", hit, r)


def _origin(r: Observed) -> str:
    """The provocation kind, or for a page posture did not provoke, its role."""
    return r.kind.value if r.kind else r.role.value


def _body_hits(r: Observed, sigs: Sequence[Signature]) -> list[Hit]:
    if not r.textual or not r.text:
        return []
    views = body_views(r.text, r.content_type)
    return [h for h in (match_body(s, views) for s in sigs) if h is not None]


def _finding(key: str, hit: Hit, r: Observed) -> Finding:
    sig = hit.signature
    evidence: dict[str, JSON] = {
        "provocation": _origin(r),
        "request": r.request_json(),
        "status": r.status,
        "content_type": r.content_type,
        "signature": sig.id,
        "framework": sig.framework,
        "excerpt": hit.excerpt,
    }
    if r.role in _AS_SERVED and hit.where in ("body", "footer"):
        evidence["as_served"] = _AS_SERVED[r.role]  # not provoked: the page as the site serves it
    if r.redirected:
        evidence["final_url"] = r.url
    if r.truncated:
        evidence["truncated"] = True
    if sig.check is LeakCheck.VERSION_BANNER:
        evidence.update({"where": hit.where, "product": hit.product, "version": hit.version})
    return Finding(check_id=sig.check.value, key=key, evidence=evidence)
