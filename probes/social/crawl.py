"""Same-origin breadth-first crawl of a website asset, HTML only, through ``ctx.http``.

Pages are fetched in discovery order, a few at a time (the per-host gate in
:class:`~probes.net.http.HttpClient` bounds concurrency; its budget bounds the
total). A redirect is followed only within the host. Each page keeps the
exchange it came from, so the browser judge can be served the same bytes
instead of fetching the page again.

A page that could not be read (no answer, or an error status that says nothing about the
page: 5xx, 408, 429; any error status for the start page) is listed in ``unread``: the
links on it were not seen, and the probe says so instead of reporting the site clean.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin, urlsplit

from probes.base import BudgetExhausted, ErrorKind, ProbeContext, ProbeFailure, Target
from probes.net.http import HttpExchange
from probes.net.web import decode_html, is_html, same_origin
from vocab import one_line

# Not worth a request: the crawl wants pages, not documents or media.
SKIP_EXTENSIONS = frozenset(
    (
        ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".zip", ".rar", ".7z",
        ".gz", ".tgz", ".tar", ".exe", ".msi", ".dmg", ".apk", ".jpg", ".jpeg", ".png", ".gif", ".webp",
        ".svg", ".ico", ".bmp", ".tif", ".tiff", ".mp3", ".mp4", ".m4a", ".avi", ".mov", ".wmv", ".webm",
        ".ogg", ".css", ".js", ".json", ".xml", ".txt", ".csv", ".woff", ".woff2", ".ttf", ".eot",
    )
)
_REFRESH_URL = re.compile(r"""url\s*=\s*['"]?([^'";]+)""", re.IGNORECASE)
#: Statuses that say the page could not be served now (not that it is gone): its links were not seen.
UNSERVED = frozenset({408, 429})


@dataclass(frozen=True)
class Page:
    url: str  # final URL after in-host redirects, without fragment
    depth: int
    exchange: HttpExchange
    html: str


@dataclass(frozen=True)
class Unread:
    """A page the crawl asked for and could not read."""

    url: str
    why: str  # "HTTP 503", or the failure's one line
    kind: ErrorKind


@dataclass
class CrawlResult:
    pages: list[Page] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    skipped_non_html: int = 0
    off_host_redirects: list[str] = field(default_factory=list)
    budget_exhausted: bool = False
    requests: int = 0
    unread: list[Unread] = field(default_factory=list)
    #: Why the start page, though it answered, gave no page to judge (not HTML, redirected away).
    start_unjudged: str | None = None

    def to_json(self, max_pages: int, max_depth: int) -> dict[str, object]:
        return {
            "pages": len(self.pages),
            "max_pages": max_pages,
            "max_depth": max_depth,
            "requests": self.requests,
            "skipped_non_html": self.skipped_non_html,
            "off_host_redirects": self.off_host_redirects[:20],
            "errors": self.errors[:20],
            "budget_exhausted": self.budget_exhausted,
            "unread": [u.url for u in self.unread[:20]],
        }


def page_links(html: str, base_url: str) -> list[str]:
    """Absolute URLs of the pages a document leads to: <a>/<area> hrefs, frames, meta refresh."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    base = base_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = urljoin(base_url, (base_node.attributes.get("href") or "").strip())
    out: list[str] = []
    for node in tree.css("a[href], area[href], frame[src], iframe[src], meta[http-equiv]"):
        attrs = node.attributes
        if node.tag == "meta":
            if (attrs.get("http-equiv") or "").lower() != "refresh":
                continue
            m = _REFRESH_URL.search(attrs.get("content") or "")
            raw = m.group(1).strip() if m else ""
        else:
            raw = (attrs.get("href") if node.tag in ("a", "area") else attrs.get("src")) or ""
        raw = raw.strip()
        if not raw or raw.lower().startswith(("javascript:", "mailto:", "tel:", "data:", "#")):
            continue
        try:
            out.append(urldefrag(urljoin(base, raw))[0])
        except ValueError:
            continue
    return list(dict.fromkeys(out))


def worth_fetching(url: str) -> bool:
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return dot < path.rfind("/") or path[dot:] not in SKIP_EXTENSIONS


async def crawl(
    target: Target,
    ctx: ProbeContext,
    *,
    max_pages: int,
    max_depth: int,
    skip: Callable[[str], bool] = lambda url: False,
) -> CrawlResult:
    """Fetch up to ``max_pages`` same-origin HTML pages, breadth first from ``target.url``.

    ``skip`` names URLs not worth a visit (the probe passes redirectors that
    carry a social URL: they are judged as links, not read as pages). The
    origin is the start page's, after any in-host redirect (http -> https).

    Raises the fetch failure of the start page (nothing can be judged without
    it); later failures are recorded in the result (``errors``, and ``unread``
    unless the budget ran out) and the crawl goes on.
    """
    origin = target.origin
    result = CrawlResult()
    start = urldefrag(target.url)[0]
    queued: set[str] = {start}
    done: set[str] = set()
    frontier: list[tuple[str, int]] = [(start, 0)]
    batch_size = max(1, ctx.limits.per_host_concurrency)
    while frontier and len(result.pages) < max_pages and not result.budget_exhausted:
        batch, frontier = frontier[:batch_size], frontier[batch_size:]
        fetched = await asyncio.gather(*(_fetch(ctx, url) for url, _ in batch), return_exceptions=True)
        for (url, depth), got in zip(batch, fetched, strict=True):
            if isinstance(got, BaseException):
                if url == start:
                    raise got
                if isinstance(got, BudgetExhausted):
                    result.budget_exhausted = True
                elif not isinstance(got, ProbeFailure):
                    raise got
                else:
                    result.unread.append(Unread(url, one_line(got), got.kind))
                result.errors.append({"url": url, "error": one_line(got)})
                continue
            result.requests += 1 + len(got.redirects)
            final = urldefrag(got.url)[0]
            if got.status in (301, 302, 303, 307, 308) and got.location:
                result.off_host_redirects.append(f"{url} -> {got.location}")
                if depth == 0:
                    result.start_unjudged = f"it redirects to {got.location}, outside the asset"
                continue
            if final in done or len(result.pages) >= max_pages:
                continue
            done.add(final)
            if got.status >= 400:  # before the type: an error page's type says nothing of the page's
                result.errors.append({"url": final, "error": f"HTTP {got.status}"})
                if depth == 0 or got.status >= 500 or got.status in UNSERVED:
                    result.unread.append(Unread(final, f"HTTP {got.status}", ErrorKind.PROTOCOL))
                continue
            if not is_html(got):
                result.skipped_non_html += 1
                if depth == 0:
                    result.start_unjudged = f"it is {got.content_type or 'untyped'}, not HTML"
                continue
            html = decode_html(got)
            if depth == 0:
                origin = final  # http:// asset answering from https://: the site is where it landed
            result.pages.append(Page(final, depth, got, html))
            if depth >= max_depth:
                continue
            for link in page_links(html, final):
                if link not in queued and same_origin(link, origin) and worth_fetching(link) and not skip(link):
                    queued.add(link)
                    frontier.append((link, depth + 1))
    return result


async def _fetch(ctx: ProbeContext, url: str) -> HttpExchange:
    return await ctx.http.request("GET", url, follow_redirects=True, headers={"accept": "text/html,*/*;q=0.8"})


class ResponseCache:
    """GET responses by URL, shared by the crawl, the static judge and the browser."""

    def __init__(self, ctx: ProbeContext) -> None:
        self._ctx = ctx
        self._done: dict[str, HttpExchange] = {}
        self._pending: dict[str, asyncio.Future[HttpExchange]] = {}

    def put(self, ex: HttpExchange) -> None:
        self._done.setdefault(ex.url, ex)

    def get(self, url: str) -> HttpExchange | None:
        return self._done.get(url)

    async def fetch(self, url: str, headers: dict[str, str] | None = None) -> tuple[HttpExchange, bool]:
        """(exchange, fetched now). Concurrent calls for one URL share one request."""
        if url in self._done:
            return self._done[url], False
        pending = self._pending.get(url)
        if pending is not None:
            return await asyncio.shield(pending), False
        fut: asyncio.Future[HttpExchange] = asyncio.get_running_loop().create_future()
        self._pending[url] = fut
        try:
            ex = await self._ctx.http.request("GET", url, headers=headers)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # consumed: a waiter may never come
            raise
        finally:
            self._pending.pop(url, None)
        self._done[url] = ex
        fut.set_result(ex)
        return ex, True
