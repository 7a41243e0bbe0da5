"""From per-element judgements to per-link verdicts and findings (pure).

A link is one normalised href (the finding key), wherever it appears: a
footer link on thirty pages is one finding whose evidence lists the pages.
It is a finding when any of its elements, on any page, went to the platform
without a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from probes.base import Finding
from probes.social.links import Judgement, Method, Outcome, unique

CHECK_ID = "social.link.no_warning"
STATIC_NOTE = (
    "judged from the HTML only: warnings attached by script files and links written by scripts are not visible"
)


def merge(
    browser: Iterable[Judgement],
    static: Iterable[Judgement],
    unjudged_pages: Iterable[str],
) -> tuple[list[Judgement], list[dict[str, str]]]:
    """Browser verdicts, with the static verdict standing where the browser could not tell.

    * an inconclusive click falls back to the static verdict of the same
      element (same page, key and ordinal; the page's own elements only, not
      those of its frames, which its HTML does not hold), the browser's note kept;
    * pages the browser could not judge (hung, failed) keep their static verdicts.

    Returns (judgements, disagreements between static and browser).
    """
    static_list = list(static)
    by_element = {(j.page, j.link.key, j.ordinal): j for j in static_list}
    unjudged = set(unjudged_pages)
    out: list[Judgement] = []
    disagreements: list[dict[str, str]] = []
    for b in browser:
        s = by_element.get((b.page, b.link.key, b.ordinal)) if b.frame is None else None
        if b.outcome is Outcome.INCONCLUSIVE and s is not None:
            out.append(Judgement(s.page, s.link, Method.STATIC, s.outcome, s.seen,
                                 f"{s.detail} (browser: {b.detail})", s.ordinal))
            continue
        out.append(b)
        if s is not None and s.outcome is not b.outcome:
            disagreements.append({"page": b.page, "key": b.link.key, "static": s.outcome.value,
                                  "browser": b.outcome.value, "browser_saw": b.detail})
    out.extend(j for j in static_list if j.page in unjudged)
    return out, disagreements


def summarise(judgements: Iterable[Judgement]) -> tuple[tuple[Finding, ...], list[dict[str, Any]]]:
    """(findings, one summary per distinct link for the observations)."""
    by_key: dict[str, list[Judgement]] = {}
    for j in judgements:
        by_key.setdefault(j.link.key, []).append(j)
    findings: list[Finding] = []
    links: list[dict[str, Any]] = []
    for key, js in by_key.items():
        bad = [j for j in js if j.outcome is Outcome.NO_WARNING]
        warned = [j for j in js if j.outcome is Outcome.WARNED]
        verdict = Outcome.NO_WARNING if bad else Outcome.WARNED if warned else Outcome.INCONCLUSIVE
        lead = (bad or warned or js)[0]
        pages = sorted(unique(j.page for j in js))
        framed = [{"page": page, "frame": frame} for page, frame in _in_frames(js)]
        links.append({
            "key": key,
            "platform": lead.link.platform,
            "verdict": verdict.value,
            "method": lead.method.value,
            "seen": lead.seen.value,
            "detail": lead.detail,
            "pages": pages,
            **({"frames": framed} if framed else {}),
        })
        if not bad:
            continue
        evidence: dict[str, Any] = {
            "href": lead.link.href,
            "platform": lead.link.platform,
            "method": lead.method.value,
            "seen": lead.seen.value,
            "detail": lead.detail,
            "pages": pages,
            "pages_without_warning": sorted(unique(j.page for j in bad)),
        }
        if lead.link.destination != lead.link.href:
            evidence["destination"] = lead.link.destination
        if warned:
            evidence["pages_with_warning"] = sorted(unique(j.page for j in warned))
        if framed:
            evidence["frames"] = framed  # where it was found inside a frame of a page
        if lead.method is Method.STATIC:
            evidence["note"] = STATIC_NOTE
        findings.append(Finding(check_id=CHECK_ID, key=key, evidence=evidence))
    findings.sort(key=lambda f: f.key)
    links.sort(key=lambda x: x["key"])
    return tuple(findings), links


def _in_frames(judgements: Iterable[Judgement]) -> list[tuple[str, str]]:
    """(page, frame) of each judgement made inside a frame of its page, once each, sorted."""
    return sorted({(j.page, j.frame) for j in judgements if j.frame is not None})
