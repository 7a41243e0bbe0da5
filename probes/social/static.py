"""Static judgement of social links: what the markup alone says (pure; no I/O).

README section (for the lead to copy)
=====================================

Social-media links (probe ``social``, check ``social.link.no_warning``, AUD-11)
-------------------------------------------------------------------------------
posture crawls each website asset breadth first (same origin, HTML only;
default 30 pages, depth 2) and collects every link to a social platform
(``probes/social/platforms.toml``: Facebook, Instagram, LINE, YouTube,
X/Twitter, LinkedIn, Threads, TikTok, Telegram, Weibo, Pinterest, Dcard, PTT,
Plurk, Discord, WhatsApp, WeChat, ...). A link is also social when it is a
same-origin redirector carrying a platform URL (``/go?url=https://fb.com/x``)
or an inline handler naming one (``onclick="window.open('https://line.me/..')"``).

Each link is judged: does a prompt stand between the click and the platform?

*Browser mode* (default when Chromium and Playwright are installed): Debian's
Chromium, driven by Playwright through its executable path (no browser is ever
downloaded), loads each crawled page once, lets its scripts run, then clicks
every social link in the rendered DOM: with a real mouse click where it shows
(through a cookie banner or sticky header covering it), from script where it
is hidden (a collapsed menu). Every request the browser makes is answered by
posture itself, through its pinned and budgeted HTTP client, when it is a GET
for the asset's host, and refused otherwise: the click never reaches the
platform and no off-host resource is loaded. Name resolution is pinned besides
(``--host-resolver-rules``: the asset's host to its pinned address, every other
name to NOTFOUND), connections outside requests go to a proxy that cannot
resolve, and WebSockets are closed unconnected.

A link is *warned* when the click shows a dialog (confirm/alert: its text is
the evidence), lands on a same-origin page carrying a leave notice
(interstitial), or makes an element with leave-notice text visible (custom
modal, in Traditional Chinese or English); it is *not warned* when the
browser's next step is the request to the platform (directly, in a new window,
or through a same-origin redirect). A click with no visible effect is
inconclusive, and the static verdict for that link stands. One browser serves
the whole run; a page that hangs (an endless script) is abandoned after
``page_timeout`` and the run ends as a ``timeout`` error that still carries
every verdict reached; a browser that will not start or dies is a ``tool``
error; nothing outlives the probe's deadline.

*Static mode* (``[assets.settings.social] browser = false``, or automatically
when the browser is not installed; recorded as ``observations.mode =
"static-only"`` with the reason) reads the HTML only:

| How the site does it                                   | Static verdict              | Right?         |
|--------------------------------------------------------|-----------------------------|----------------|
| plain ``<a href="https://facebook.com/..">``           | no warning (finding)        | yes            |
| inline ``onclick="return confirm('..')"`` / known call | warned                      | yes            |
| same-origin interstitial ``/leave?url=..`` with notice | warned (page fetched once)  | yes            |
| redirector answering 302 straight to the platform      | no warning (finding)        | yes            |
| link only on a subpage (within depth and page limits)  | no warning (finding)        | yes            |
| link in a hidden menu, button ``window.open(..)``      | no warning (finding)        | yes            |
| global script file adding ``confirm()`` to links       | no warning (finding)        | false positive |
| custom modal opened by a script-attached handler       | no warning (finding)        | false positive |
| link rendered by script, no warning                    | not seen, no finding        | missed         |

Script-attached warnings and script-rendered links are invisible to static
reading; only the browser sees them. Static findings say so in their evidence
(``method = "static"``, ``note``). Links inside ``<noscript>`` and
``<template>`` are not counted (a visitor with scripting on never sees them),
matching the browser.

Finding key: the link's normalised href (lower-case scheme and host, no
fragment, no trailing slash, tracking parameters such as ``utm_*`` and
``fbclid`` dropped), so a footer link on thirty pages is one finding; its
evidence lists the pages it appears on, those where it went out unwarned,
the platform, the method (browser or static) and what was seen.

Settings (``[assets.settings.social]``): ``max_pages`` (30), ``max_depth`` (2),
``browser`` (``"auto"`` | true | false; true makes a missing browser an error),
``chromium`` (executable, default ``/usr/bin/chromium``), ``page_timeout``
(seconds per page in the browser, 15), ``launch_timeout`` (20).

Requirements: ``apt-get install chromium`` and the ``playwright`` Python
package; ``playwright install`` is never run (posture drives the system
Chromium and no browser is downloaded).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from probes.net.http import HttpExchange
from probes.net.scope import same_host
from probes.social.links import (
    Judgement,
    Method,
    Outcome,
    Seen,
    SocialData,
    SocialLink,
    Via,
    classify_link,
    notice_in_code,
)

if TYPE_CHECKING:
    from selectolax.lexbor import LexborNode

# Subtrees a visitor with scripting on never sees.
_INERT = frozenset({"noscript", "template", "script", "style"})


@dataclass(frozen=True)
class Occurrence:
    """A social link element as found in a page's HTML."""

    page: str
    link: SocialLink
    ordinal: int  # how many elements with the same key came before it on the page


def _elements(root: LexborNode) -> Iterator[LexborNode]:
    """Element nodes under ``root`` in document order, not descending into inert subtrees."""
    stack: list[LexborNode] = [root]
    while stack:
        current = stack.pop()
        if current is not root:
            yield current
        children: list[LexborNode] = []
        child = current.child
        while child is not None:
            if child.is_element_node and child.tag not in _INERT:
                children.append(child)
            child = child.next
        stack.extend(reversed(children))


def extract_occurrences(page_url: str, html: str, data: SocialData) -> list[Occurrence]:
    """Every social link element of a page, in document order."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    base = page_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = urljoin(page_url, (base_node.attributes.get("href") or "").strip())
    out: list[Occurrence] = []
    counts: dict[str, int] = {}
    root = tree.root
    if root is None:
        return out
    for node in _elements(root):
        attrs = node.attributes
        tag = node.tag
        href = attrs.get("href") if tag in ("a", "area") else None
        onclick = attrs.get("onclick")
        if href is None and onclick is None:
            continue
        link = classify_link(base, href, onclick, attrs.get("target"), data)
        if link is None:
            continue
        n = counts.get(link.key, 0)
        counts[link.key] = n + 1
        out.append(Occurrence(page_url, link, n))
    return out


def interstitial_url(occ: Occurrence) -> str | None:
    """The same-origin page to fetch to judge this link, if it is a redirector."""
    return occ.link.href if occ.link.via is Via.REDIRECTOR else None


def judge_markup(occ: Occurrence, data: SocialData) -> Judgement | None:
    """The verdict the element's own markup gives, or None when an interstitial must be read."""
    why = notice_in_code(occ.link.code, data)
    if why:
        return _judgement(occ, Outcome.WARNED, Seen.INLINE_HANDLER, f"inline handler {why}: {occ.link.code[:200]}")
    if occ.link.via is Via.REDIRECTOR:
        return None
    what = "inline handler without a notice" if occ.link.code else "plain link, no notice in the markup"
    return _judgement(occ, Outcome.NO_WARNING, Seen.NOTHING, what)


def page_notice(html: str, data: SocialData) -> str | None:
    """The leave-notice phrase a page shows (visible text first, then its inline scripts)."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    scripts = " ".join(node.text(deep=True) for node in tree.css("script"))
    tree.strip_tags(["script", "style", "noscript", "template"])
    body = tree.body
    visible = body.text(separator=" ") if body is not None else ""
    hits = data.find_markers(visible)
    if hits:
        return hits[0]
    # A redirector whose script shows the notice in a dialog before moving on.
    in_scripts = data.find_markers(scripts)
    if in_scripts and data.notice_call.search(scripts):
        return in_scripts[0]
    return None


def judge_interstitial(
    occ: Occurrence, got: HttpExchange | str, html: str | None, data: SocialData
) -> Judgement:
    """Verdict from the fetched interstitial (``got`` is the exchange, or why it failed)."""
    url = occ.link.href
    if isinstance(got, str):
        return _judgement(occ, Outcome.INCONCLUSIVE, Seen.ERROR, f"interstitial {url} unreachable: {got}")
    if got.status in (301, 302, 303, 307, 308) and got.location and not same_host(got.location, url):
        if data.platform_of(got.location):
            return _judgement(occ, Outcome.NO_WARNING, Seen.NAVIGATED,
                              f"{url} redirects straight to {got.location}")
        return _judgement(occ, Outcome.INCONCLUSIVE, Seen.ERROR, f"{url} redirects to {got.location}")
    if got.status >= 400 or html is None:
        return _judgement(occ, Outcome.INCONCLUSIVE, Seen.ERROR, f"interstitial {url} answered HTTP {got.status}")
    marker = page_notice(html, data)
    if marker:
        return _judgement(occ, Outcome.WARNED, Seen.INTERSTITIAL, f"{got.url} says {marker!r}")
    return _judgement(occ, Outcome.NO_WARNING, Seen.NOTHING, f"interstitial {got.url} carries no leave notice")


def judge_static(
    occurrences: list[Occurrence],
    interstitials: Mapping[str, tuple[HttpExchange | str, str | None]],
    data: SocialData,
) -> list[Judgement]:
    """Static verdicts for every occurrence; ``interstitials`` maps URL -> (exchange or error, html)."""
    out: list[Judgement] = []
    for occ in occurrences:
        verdict = judge_markup(occ, data)
        if verdict is None:
            got, html = interstitials.get(occ.link.href, ("not fetched", None))
            verdict = judge_interstitial(occ, got, html, data)
        out.append(verdict)
    return out


def _judgement(occ: Occurrence, outcome: Outcome, seen: Seen, detail: str) -> Judgement:
    return Judgement(occ.page, occ.link, Method.STATIC, outcome, seen, detail, occ.ordinal)
