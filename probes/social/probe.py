"""Probe ``social``: do links to social media warn the visitor before leaving? (AUD-11)

Crawl the website (``social_crawl``), find its social links and read what the
markup says (``social_static``), then, when Chromium is installed, click every
link in a sealed browser and watch what happens (``social_browser``,
``social_click``); ``social_report`` turns the verdicts into findings. See
``probes/social/static.py`` for the user-facing description and the limits of
static mode.

Passive: it only GETs pages of the asset (the browser's other requests are
refused before they leave).

A run is OK only when it saw every page it reached for: a start page that answered an
error status, or crawled pages that could not be read (no answer, 5xx), make an error
result carrying what was judged; a start page that answered but is not an HTML page of
the asset (another type, a redirect away) leaves nothing to judge: the run is skipped,
saying why. Either way no earlier finding is taken as fixed from pages never seen. So in
the browser: a page that hung, crashed its renderer, left the asset while it loaded or could
not be loaded at all keeps its static verdicts, and the run is an error naming it and why.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Any

from probes.base import (
    AssetKind,
    BudgetExhausted,
    ConnectFailure,
    DeadlineExceeded,
    ErrorKind,
    ProbeContext,
    ProbeFailure,
    ProbeResult,
    ProtocolFailure,
    RunStatus,
    Target,
    ToolUnavailable,
    error_result,
)
from probes.net.http import HttpExchange
from probes.net.web import decode_html, is_html
from probes.social.browser import Browser, find_chromium, unavailable_reason
from probes.social.click import BrowserRun, judge_pages
from probes.social.crawl import CrawlResult, ResponseCache, crawl
from probes.social.links import Judgement, load_social_data, social_destination_in_query
from probes.social.model import BrowserChoice, Observations
from probes.social.model import Settings as SocialSettings
from probes.social.report import CHECK_ID as SOCIAL_CHECK
from probes.social.report import merge, summarise
from probes.social.static import Occurrence, extract_occurrences, interstitial_url, judge_static
from vocab import one_line

MAX_INTERSTITIALS = 30


class Mode(enum.StrEnum):
    BROWSER = "browser"
    STATIC_ONLY = "static-only"


class Stage(enum.StrEnum):
    """Where a run is (named in a deadline error and in the observations)."""

    CRAWL = "crawl"
    STATIC = "static judgement"
    LAUNCH = "browser launch"
    BROWSER = "browser judgement"
    DONE = "done"


@dataclass
class _State:
    """Everything gathered so far, so that an error result still carries it."""

    settings: SocialSettings
    started: float = field(default_factory=time.monotonic)
    mode: Mode = Mode.BROWSER
    mode_reason: str | None = None
    stage: Stage = Stage.CRAWL
    crawl: CrawlResult | None = None
    static: list[Judgement] = field(default_factory=list)
    static_ready: bool = False
    run: BrowserRun | None = None
    browser_info: dict[str, Any] = field(default_factory=dict)
    interstitials_cut: bool = False  # the budget ran out while fetching interstitials
    interstitials: dict[str, str] = field(default_factory=dict)  # url -> status or error

    def judgements(self) -> tuple[list[Judgement], list[dict[str, str]]]:
        """What is judged so far: browser verdicts (static where it could not tell), or static ones."""
        if self.mode is Mode.BROWSER and self.run is not None:
            return merge(self.run.judgements, self.static, self.unjudged())
        if self.mode is Mode.STATIC_ONLY and self.static_ready:
            return list(self.static), []
        return [], []

    def unjudged(self) -> list[str]:
        """Crawled pages the browser did not judge (hung, failed, not reached): static verdicts stand."""
        if self.crawl is None or self.run is None:
            return []
        loaded = set(self.run.pages_loaded)
        return [p.url for p in self.crawl.pages if p.url not in loaded]

    def result(self, probe: str, error: BaseException | None = None, *, skipped: str | None = None) -> ProbeResult:
        judgements, disagreements = self.judgements()
        findings, links = summarise(judgements)
        crawled = self.crawl
        obs = Observations(
            mode=self.mode.value,
            settings=self.settings.observed_json(),
            data_version=load_social_data().version,
            mode_reason=self.mode_reason or None,
            crawl=crawled.to_json(self.settings.max_pages, self.settings.max_depth) if crawled is not None else None,
            pages=tuple(p.url for p in crawled.pages) if crawled is not None else None,
            links=tuple(links),
            interstitials=tuple(self.interstitials),
            browser=None if self.run is None else {**self.browser_info, **self.run.to_json(),
                                                   "pages_static_only": self.unjudged()},
            static_vs_browser=None if self.run is None else tuple(disagreements[:30]),
            stage=self.stage.value,
            seconds=round(time.monotonic() - self.started, 2),
        ).to_json()
        if error is not None:
            return error_result(probe, error, observations=obs, findings=findings)
        if skipped is not None:
            return ProbeResult(probe=probe, status=RunStatus.SKIPPED, observations=obs, skip_reason=skipped)
        return ProbeResult(probe=probe, status=RunStatus.OK, observations=obs, findings=findings)


class SocialProbe:
    name = "social"
    active = False
    checks = frozenset({SOCIAL_CHECK})

    def applies(self, target: Target) -> bool:
        return target.kind is AssetKind.WEBSITE and target.scheme in ("http", "https")

    async def run(self, target: Target, ctx: ProbeContext) -> ProbeResult:
        try:
            settings = SocialSettings.parse(target.probe_settings(self.name))
        except ValueError as exc:
            return error_result(self.name, exc)
        state = _State(settings)
        limit = ctx.limits.probe_deadline
        # Room to kill the browser and build the result inside the runner's own deadline.
        inner = max(1.0, limit - min(5.0, max(2.0, limit * 0.1)))
        try:
            async with asyncio.timeout(inner):
                await self._collect(target, ctx, state)
        except TimeoutError:
            late = DeadlineExceeded(f"social probe stopped at its {inner:g}s deadline during {state.stage}")
            return state.result(self.name, late)
        except ProbeFailure as exc:
            return state.result(self.name, exc)
        except Exception as exc:
            return state.result(self.name, _translate(exc))
        if state.run is not None and state.run.crashed_pages:
            crashed = ", ".join(state.run.crashed_pages)
            return state.result(self.name, ToolUnavailable(f"the browser's renderer crashed on {crashed} "
                                                           "(out of memory or killed)"))
        if state.run is not None and state.run.hung_pages:
            hung = ", ".join(state.run.hung_pages)
            return state.result(self.name, DeadlineExceeded(f"the browser hung on {hung}"))
        cut = budget_cut(state) or unread_failure(state)
        if cut is not None:
            # What was judged stands, but the site was not covered: a partial result, said so.
            return state.result(self.name, cut)
        left = state.run.left_failure() or state.run.failed_failure() if state.run is not None else None
        if left is not None:
            # A page left by script while it loaded, or the browser could not load it: judged from
            # its HTML only, not looked at in full.
            return state.result(self.name, left)
        if state.crawl is not None and not state.crawl.pages:
            why = state.crawl.start_unjudged or "it gave no page"
            return state.result(self.name, skipped=f"nothing to judge: the start page {target.url} answered, but {why}")
        return state.result(self.name)

    async def _collect(self, target: Target, ctx: ProbeContext, state: _State) -> None:
        settings = state.settings
        data = load_social_data()
        cache = ResponseCache(ctx)
        state.crawl = await crawl(
            target, ctx, max_pages=settings.max_pages, max_depth=settings.max_depth,
            skip=lambda url: social_destination_in_query(url, data) is not None,
        )
        occurrences: list[Occurrence] = []
        for page in state.crawl.pages:
            cache.put(page.exchange)
            occurrences.extend(extract_occurrences(page.url, page.html, data))
        state.stage = Stage.STATIC
        fetched = await self._interstitials(ctx, occurrences, cache, state)
        state.static = judge_static(occurrences, fetched, data)
        state.static_ready = True

        executable = find_chromium(settings.chromium)
        reason = "browser disabled by settings (browser = false)" if settings.browser is BrowserChoice.OFF \
            else unavailable_reason(executable)
        if reason is not None:
            state.mode, state.mode_reason = Mode.STATIC_ONLY, reason
            if settings.browser is BrowserChoice.ON:
                raise ToolUnavailable(reason)
            return
        if not state.crawl.pages:
            state.stage = Stage.DONE  # nothing to load: no browser needed
            return
        state.stage = Stage.LAUNCH
        state.browser_info = {"executable": executable}
        try:
            browser = Browser(target, cache, executable=executable, launch_timeout=settings.launch_timeout)
            await browser.launch()
        except ToolUnavailable as exc:
            state.mode, state.mode_reason = Mode.STATIC_ONLY, f"browser failed to start: {exc}"
            raise
        state.run = BrowserRun()
        failed = True
        try:
            state.browser_info["version"] = browser.version
            if browser.launcher is not None:  # who it runs as, its sandbox and memory bounds
                state.browser_info["launch"] = browser.launcher.to_json()
                if browser.sandbox_error:
                    state.browser_info["launch"]["sandbox_off_reason"] = browser.sandbox_error
            state.stage = Stage.BROWSER
            await judge_pages(browser, [p.url for p in state.crawl.pages], data, state.run,
                              page_timeout=settings.page_timeout)
            failed = False
        finally:
            await browser.close(graceful=not failed)
            state.browser_info["traffic"] = browser.traffic.to_json()
        state.stage = Stage.DONE

    async def _interstitials(
        self, ctx: ProbeContext, occurrences: list[Occurrence], cache: ResponseCache, state: _State
    ) -> dict[str, tuple[HttpExchange | str, str | None]]:
        """Fetch each same-origin redirector a link goes through, once."""
        urls = list(dict.fromkeys(u for o in occurrences if (u := interstitial_url(o))))[:MAX_INTERSTITIALS]

        async def one(url: str) -> tuple[HttpExchange | str, str | None]:
            try:
                ex = await ctx.http.request("GET", url, follow_redirects=True)
            except ProbeFailure as exc:
                state.interstitials[url] = one_line(exc)
                state.interstitials_cut |= isinstance(exc, BudgetExhausted)
                return one_line(exc), None
            state.interstitials[url] = f"HTTP {ex.status}"
            if not ex.redirects and ex.status < 300:
                cache.put(ex)
            return ex, decode_html(ex) if is_html(ex) else None

        got = await asyncio.gather(*(one(u) for u in urls))
        return dict(zip(urls, got, strict=True))


def budget_cut(state: _State) -> BudgetExhausted | None:
    """The failure to report when the request budget cut the crawl or the browser short."""
    crawl_cut = state.crawl is not None and state.crawl.budget_exhausted
    browser_cut = state.run is not None and bool(state.browser_info.get("traffic", {}).get("budget_exhausted"))
    if not (crawl_cut or state.interstitials_cut or browser_cut):
        return None
    pages = len(state.crawl.pages) if state.crawl is not None else 0
    where = "crawl" if crawl_cut else "interstitial fetches" if state.interstitials_cut else "browser"
    return BudgetExhausted(
        f"partial result: the request budget ran out during the {where} after {pages} page(s); "
        "pages not reached were not judged"
    )


def unread_failure(state: _State) -> ProbeFailure | None:
    """The failure to report when pages the crawl reached for could not be read; None if all were.

    Findings are keyed by link, not page: a link seen only on a page that failed today would
    otherwise vanish from the run and be taken as fixed.
    """
    crawled = state.crawl
    if crawled is None or not crawled.unread:
        return None
    first = crawled.unread[0]
    if not crawled.pages:
        message = f"the start page {first.url} answered {first.why}; no page judged"
    else:
        shown = "; ".join(f"{u.url}: {u.why}" for u in crawled.unread[:5])
        more = f"; and {len(crawled.unread) - 5} more" if len(crawled.unread) > 5 else ""
        message = (f"partial result: {len(crawled.unread)} of {len(crawled.unread) + len(crawled.pages)} pages "
                   f"could not be read ({shown}{more}); links on them were not judged")
    failure = {ErrorKind.TIMEOUT: DeadlineExceeded, ErrorKind.CONNECT: ConnectFailure}.get(first.kind, ProtocolFailure)
    return failure(message)


def _translate(exc: Exception) -> BaseException:
    """A Playwright error that got this far is the browser failing: a tool error. Anything else is a bug."""
    try:
        from playwright.async_api import Error as PlaywrightError
    except ImportError:
        return exc
    if isinstance(exc, PlaywrightError):
        return ToolUnavailable(f"browser failed: {one_line(exc, named=False, first_line=True, limit=None)}")
    return exc
