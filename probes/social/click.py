"""Judging one page's social links in the browser: load it once, click each link, watch, put it back.

For each social link element of the rendered DOM (so links written by
scripts count, and warnings attached by scripts act), the click is watched
for at most :data:`OBSERVE_WINDOW` seconds, and the first decisive sign wins:

1. a dialog (confirm/alert/prompt): warned, its type and text are the evidence;
2. a same-origin top-level navigation whose page carries a leave notice: warned (interstitial);
3. the top-level navigation to another host (refused by the route handler): not warned;
4. an element with leave-notice text becoming visible: warned (modal).

Then the page is put back without a reload where it can be: the dialog was
already dismissed, a refused navigation leaves the page as it was, popups are
closed, a modal gets Escape and then its cancel control; only a tab that
navigated (an interstitial) or a modal that will not close is loaded again
(from posture's cache, not the network).

A page may also try to leave the asset by itself (``location.href = ...``, a
meta refresh), refused like any other off-asset navigation. Once it has loaded
that changes nothing: it stays put and is judged. While it is still loading,
the script cut its loading short (the browser's copy stops where it ran, and
Playwright would wait for a load that never comes): :class:`PageLeft`, at
once, and the page's links keep their static verdicts. Either way
``BrowserRun.left_scope`` records where it went.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag

from probes.base import DeadlineExceeded, OutOfScope, ToolUnavailable
from probes.net.web import decode_html, is_html
from probes.social.browser import Browser, ClickEvents
from probes.social.js import AIM_JS, CLOSE_MODAL_JS, MARKERS_JS, REFRESH_JS, SCAN_JS, SNIPPET_JS, UNCOVER_JS
from probes.social.links import (
    Judgement,
    Method,
    Outcome,
    Seen,
    SocialData,
    SocialLink,
    classify_link,
)
from probes.social.static import page_notice
from vocab import PostureError, one_line

if TYPE_CHECKING:
    from playwright.async_api import Page

OBSERVE_WINDOW = 0.8  # seconds a click may take to show anything
DOM_CHECK_EVERY = 0.1  # seconds between looks for a modal while waiting
MAX_CLICKS_PER_PAGE = 60
REFRESH_WAIT = 2.0  # a meta refresh due within this many seconds of the load is waited for
LEFT_GRACE = 0.5  # seconds a load still gets once its page asked to leave (leaving as it loads races the report)
MAX_LEFT_SHOWN = 5  # pages named in the error of a run some of whose pages left while loading


class PageHung(PostureError):
    """The page stopped answering (an endless script, a stuck renderer)."""


class PageFailed(PostureError):
    """The page could not be loaded (the one-line reason is the message)."""


class PageLeft(PostureError):
    """The page's own script sent the tab off the asset while it loaded (refused): it was cut short."""

    def __init__(self, url: str, to: str) -> None:
        super().__init__(f"{url}: its script sent it to {to} while it loaded")
        self.url = url
        self.to = to


@dataclass
class BrowserRun:
    """What the browser judged so far (kept by the probe, so a deadline loses nothing)."""

    judgements: list[Judgement] = field(default_factory=list)
    pages_loaded: list[str] = field(default_factory=list)
    hung_pages: list[str] = field(default_factory=list)
    crashed_pages: list[str] = field(default_factory=list)  # the renderer crashed (out of memory, killed)
    page_errors: list[dict[str, str]] = field(default_factory=list)
    # Pages that tried to leave the asset by themselves: {page, to, how: script|refresh, judged: browser|static}
    left_scope: list[dict[str, str]] = field(default_factory=list)
    clicks: int = 0
    clicks_skipped: int = 0
    reloads: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "pages_loaded": len(self.pages_loaded),
            "clicks": self.clicks,
            "clicks_skipped": self.clicks_skipped,
            "reloads": self.reloads,
            "hung_pages": self.hung_pages,
            "crashed_pages": self.crashed_pages,
            "page_errors": self.page_errors[:20],
            "left_scope": self.left_scope[:30],
            "seconds": round(self.seconds, 2),
        }

    def left(self, page: str, to: str, how: str, judged: Method) -> None:
        """Record that ``page`` tried to leave for ``to`` (once per page, the latest judgement wins)."""
        self.left_scope = [x for x in self.left_scope if x["page"] != page]
        self.left_scope.append({"page": page, "to": to, "how": how, "judged": judged.value})

    def left_failure(self) -> OutOfScope | None:
        """The failure to report when pages left while loading (their links judged from the HTML only)."""
        cut = [x for x in self.left_scope if x["judged"] == Method.STATIC.value]
        if not cut:
            return None
        if len(cut) == 1:
            return OutOfScope(f"partial result: {cut[0]['page']} left the asset by script while it loaded "
                              f"(to {cut[0]['to']}); the browser does not follow it: its links were judged "
                              "from the HTML only")
        shown = ", ".join(f"{x['page']} (to {x['to']})" for x in cut[:MAX_LEFT_SHOWN])
        more = f" and {len(cut) - MAX_LEFT_SHOWN} more" if len(cut) > MAX_LEFT_SHOWN else ""
        return OutOfScope(f"partial result: {len(cut)} pages left the asset by script while they loaded; the "
                          f"browser does not follow them: their links were judged from the HTML only ({shown}{more})")


@dataclass(frozen=True)
class Found:
    index: int  # position among the candidates SCAN_JS lists
    link: SocialLink
    ordinal: int  # elements with the same key before it
    row: tuple[str | None, str | None, str | None]  # what SCAN_JS saw: href, onclick, target


@dataclass
class _Loaded:
    """A page as loaded in the tab: its social links and the leave-notice text already showing."""

    url: str
    found: list[Found]
    baseline: dict[str, int]
    dirty: bool = False  # the DOM may have been rebuilt since the scan
    reloads: int = 0  # times a click could only be undone by loading the page again
    left: list[tuple[str, str]] = field(default_factory=list)  # (to, how) it tried once loaded (refused)


async def judge_pages(
    browser: Browser,
    urls: list[str],
    data: SocialData,
    run: BrowserRun,
    *,
    page_timeout: float,
    max_hung: int = 2,
) -> None:
    """Judge every page in ``urls`` into ``run``; stops after ``max_hung`` pages hung.

    Pages not judged (hung, failed, not reached) are the caller's to judge otherwise.
    """
    started = time.monotonic()
    tab = await browser.new_tab()
    try:
        for url in urls:
            crashes = browser.page_crashes
            try:
                await _judge_page(browser, tab, url, data, run, page_timeout)
            except PageHung as exc:
                run.hung_pages.append(url)
                run.page_errors.append({"url": url, "error": str(exc)})
                tab = await _fresh_tab(browser, tab)
                if len(run.hung_pages) >= max_hung:
                    return
            except PageFailed as exc:
                run.page_errors.append({"url": url, "error": str(exc)})
            except PageLeft as exc:
                # Not a hang: the page left, as it would for a visitor; its links keep their static verdicts.
                run.left(url, exc.to, "script", Method.STATIC)
                if url in run.pages_loaded:  # it left on a reload after a click: not fully judged
                    run.pages_loaded.remove(url)
                tab = await _fresh_tab(browser, tab)  # its goto was abandoned mid-way
            if browser.page_crashes > crashes:  # never "ok": the page was not judged
                run.crashed_pages.append(url)
                run.page_errors.append({"url": url, "error": "the page's renderer crashed (out of memory or killed)"})
                tab = await _fresh_tab(browser, tab)
            if browser.crashed:
                raise ToolUnavailable(f"Chromium went away (crashed or killed) while judging {url}")
    finally:
        run.seconds = time.monotonic() - started


async def _fresh_tab(browser: Browser, old: Page) -> Page:
    """Throw away a tab whose renderer hung (closing it kills the renderer) and open another."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(3):
            await old.close(run_before_unload=False)
    try:
        async with asyncio.timeout(5):
            return await browser.new_tab()
    except TimeoutError:
        raise DeadlineExceeded("the browser hung: no new tab within 5s after a page hung") from None


async def _judge_page(
    browser: Browser, tab: Page, url: str, data: SocialData, run: BrowserRun, page_timeout: float
) -> None:
    from playwright.async_api import Error as PlaywrightError

    try:
        async with asyncio.timeout(page_timeout):
            page = await _open(browser, tab, url, data, page_timeout)
    except TimeoutError:
        raise PageHung(f"{url} did not settle within {page_timeout:g}s") from None
    except PlaywrightError as exc:
        raise PageFailed(f"{url}: {_first_line(exc)}") from None
    run.pages_loaded.append(url)
    for to, how in page.left[:1]:
        run.left(url, to, how, Method.BROWSER)  # it stayed put: judged all the same
    todo = page.found[:MAX_CLICKS_PER_PAGE]
    run.clicks_skipped += len(page.found) - len(todo)
    click_deadline = max(5.0, page_timeout / 2)
    for item in todo:
        try:
            async with asyncio.timeout(click_deadline):
                verdict = await _click_one(browser, tab, page, item, data, page_timeout)
        except TimeoutError:
            raise PageHung(f"{url}: clicking {item.link.href} did not finish within {click_deadline:g}s") from None
        except PlaywrightError as exc:
            verdict = Judgement(url, item.link, Method.BROWSER, Outcome.INCONCLUSIVE, Seen.ERROR,
                                f"click failed: {_first_line(exc)}", item.ordinal)
            with contextlib.suppress(PlaywrightError, TimeoutError):
                async with asyncio.timeout(page_timeout):
                    page = await _open(browser, tab, url, data, page_timeout)
        run.clicks += 1
        run.judgements.append(verdict)
    run.reloads += page.reloads


async def _open(browser: Browser, tab: Page, url: str, data: SocialData, timeout: float) -> _Loaded:
    left = await _load(browser, tab, url, timeout)
    return _Loaded(url, await _scan(tab, url, data), await _marker_counts(tab, data), left=left)


async def _load(browser: Browser, tab: Page, url: str, timeout: float) -> list[tuple[str, str]]:
    """Load ``url`` and let it settle; returns (to, how) where it tried to go once loaded (refused: it stayed).

    Raises :class:`PageLeft` at once when it tried while still loading. A meta refresh due
    within :data:`REFRESH_WAIT` is waited for: fired mid-click, it would pass for the click's effect.
    """
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    events = ClickEvents()
    browser.events = events  # the route handler reports a refused navigation of the tab here
    try:
        for attempt in (1, 2):
            try:
                goto = tab.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
                if await _unless_left(goto, events, LEFT_GRACE):
                    raise PageLeft(url, events.off_host[0])
                break
            except PlaywrightTimeout:
                raise TimeoutError from None
            except PlaywrightError as exc:
                # A navigation the page started itself (a late click effect) cut ours short: once more.
                if attempt == 2 or "interrupted by another navigation" not in str(exc):
                    raise
        with contextlib.suppress(PlaywrightTimeout):
            # Not for a page that asked to leave: as far as Playwright knows, it never loads.
            await _unless_left(tab.wait_for_load_state("load", timeout=min(timeout / 3, 5.0) * 1000), events, 0)
        await browser.settle()
        served = browser.cache.get(url)  # no meta refresh to look for in a page without the word
        refreshes = [] if served is not None and b"refresh" not in served.body.lower() else _refreshes(
            await _safe_eval(tab, REFRESH_JS, None))
        due = [delay for delay, _ in refreshes if delay <= REFRESH_WAIT]
        if due and not events.off_host:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_navigated(events, len(events.same_origin)), timeout=min(due) + LEFT_GRACE)
            await browser.settle()
    finally:
        browser.events = None
    refreshed = {to for _, to in refreshes}
    return [(to, "refresh" if to in refreshed else "script") for to in events.off_host]


def _refreshes(got: Any) -> list[tuple[float, str]]:
    """(delay, absolute URL) of each meta refresh REFRESH_JS found."""
    rows = got if isinstance(got, list) else []
    return [(float(r[0]), r[1]) for r in rows
            if isinstance(r, list) and len(r) == 2 and isinstance(r[0], int | float) and isinstance(r[1], str)]


async def _unless_left(step: Awaitable[Any], events: ClickEvents, grace: float) -> bool:
    """Await ``step`` unless the page asks to leave the asset first: then True, ``step`` abandoned.

    A step still running ``grace`` seconds after the page asked is abandoned (Playwright aborts
    the call); its error, if any, is raised.
    """
    task = asyncio.ensure_future(step)
    asked = asyncio.ensure_future(_navigated(events))
    try:
        await asyncio.wait({task, asked}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=grace)
        if task.done():
            task.result()
            return False
        return True
    finally:
        asked.cancel()
        if not task.done():
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # nobody waits for it


async def _navigated(events: ClickEvents, served: int | None = None) -> None:
    """Until the page asks to leave the asset (refused) or, ``served`` given, navigates within it."""
    while not events.off_host and (served is None or len(events.same_origin) == served):
        events.changed.clear()
        await events.changed.wait()


async def _scan(tab: Page, page_url: str, data: SocialData) -> list[Found]:
    rows: list[list[str | None]] = await tab.evaluate(SCAN_JS)
    found: list[Found] = []
    counts: dict[str, int] = {}
    for i, (href, onclick, target) in enumerate(rows):
        link = classify_link(page_url, href, onclick, target, data)
        if link is None:
            continue
        n = counts.get(link.key, 0)
        counts[link.key] = n + 1
        found.append(Found(i, link, n, (href, onclick, target)))
    return found


async def _click_one(
    browser: Browser, tab: Page, page: _Loaded, item: Found, data: SocialData, page_timeout: float
) -> Judgement:
    def verdict(outcome: Outcome, seen: Seen, detail: str) -> Judgement:
        return Judgement(page.url, item.link, Method.BROWSER, outcome, seen, detail, item.ordinal)

    if page.dirty:
        page.found = await _scan(tab, page.url, data)
        page.baseline = await _marker_counts(tab, data)
        page.dirty = False
    events = ClickEvents()
    browser.events = events
    try:
        current = _find(page.found, item)
        aim = await _aim(tab, current) if current is not None else {"stale": True}
        if aim.get("stale"):
            # The DOM changed under us (a script, a modal): find the element again.
            page.found = await _scan(tab, page.url, data)
            current = _find(page.found, item)
            aim = await _aim(tab, current) if current is not None else {}
        if current is None:
            return verdict(Outcome.INCONCLUSIVE, Seen.ERROR, "the link was gone when its turn came")
        x, y = aim.get("x"), aim.get("y")
        if isinstance(x, int | float) and isinstance(y, int | float):
            await tab.mouse.click(x, y)  # a real, trusted click (popups allowed, handlers see isTrusted)
        outcome, seen, detail, modal = await _observe(tab, events, page.baseline, data)
        if aim.get("covered"):
            await _safe_eval(tab, UNCOVER_JS, None)
    finally:
        browser.events = None
    restored = await _restore(browser, tab, page.url, modal, bool(events.same_origin), page.baseline, data,
                              page_timeout)
    page.dirty = restored is not Restore.KEPT
    page.reloads += restored is Restore.RELOADED
    return verdict(outcome, seen, detail)


def _find(found: list[Found], item: Found) -> Found | None:
    return next((f for f in found if (f.link.key, f.ordinal) == (item.link.key, item.ordinal)), None)


async def _aim(tab: Page, item: Found) -> dict[str, Any]:
    got = await tab.evaluate(AIM_JS, [item.index, list(item.row)])
    return got if isinstance(got, dict) else {}


async def _observe(
    tab: Page, events: ClickEvents, baseline: dict[str, int], data: SocialData
) -> tuple[Outcome, Seen, str, str | None]:
    """(outcome, seen, detail, marker of a modal to close)."""
    end = time.monotonic() + OBSERVE_WINDOW
    checked = 0
    while True:
        if events.dialogs:
            kind, message = events.dialogs[0]
            return Outcome.WARNED, Seen.DIALOG, f"{kind}: {message}"[:500], None
        for url, ex in events.same_origin[checked:]:
            checked += 1
            marker = page_notice(decode_html(ex), data) if is_html(ex) else None
            if marker:
                return Outcome.WARNED, Seen.INTERSTITIAL, f"{url} says {marker!r}", None
        if events.off_host:
            via = f" via {events.same_origin[0][0]}" if events.same_origin else ""
            return Outcome.NO_WARNING, Seen.NAVIGATED, f"navigated directly to {events.off_host[0]}{via}", None
        left = end - time.monotonic()
        if left > 0:
            # Woken at once by the route or dialog handler; otherwise look for a modal now and then.
            events.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(events.changed.wait(), timeout=min(left, DOM_CHECK_EVERY))
            if events.changed.is_set():
                continue
        new = _new_markers(baseline, await _marker_counts(tab, data))
        if new:
            if events.same_origin:
                return Outcome.WARNED, Seen.INTERSTITIAL, f"{tab.url} shows {new[0]!r}", None
            text = await _safe_eval(tab, SNIPPET_JS, new[0])
            return Outcome.WARNED, Seen.MODAL, str(text or new[0])[:300], new[0]
        if left <= 0:
            break
    if events.same_origin:
        return Outcome.INCONCLUSIVE, Seen.NOTHING, f"landed on {events.same_origin[-1][0]} without a leave notice", None
    return Outcome.INCONCLUSIVE, Seen.NOTHING, "the click had no visible effect", None


class Restore(enum.Enum):
    KEPT = "kept"  # nothing to undo (dialog dismissed, navigation refused)
    MODAL_CLOSED = "modal closed"  # the DOM changed: scan again
    RELOADED = "reloaded"


async def _restore(
    browser: Browser,
    tab: Page,
    page_url: str,
    modal: str | None,
    went_same_origin: bool,
    baseline: dict[str, int],
    data: SocialData,
    page_timeout: float,
) -> Restore:
    """Put the page back as it was before the click, reloading only when nothing else does."""
    popups = browser.extra_tabs(tab)
    for extra in popups:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await extra.close(run_before_unload=False)
    # A same-origin navigation without a popup happened in our tab, committed or not yet.
    navigated = went_same_origin and not popups
    if navigated or urldefrag(tab.url)[0] != urldefrag(page_url)[0]:
        from playwright.async_api import Error as PlaywrightError

        if navigated:
            # Let it commit first: a load started before would be cut short by it.
            with contextlib.suppress(PlaywrightError):
                await tab.wait_for_url(lambda u: urldefrag(u)[0] != urldefrag(page_url)[0],
                                       wait_until="commit", timeout=2000)
        # Load our page again rather than going back, which could land one page too far.
        await _load(browser, tab, page_url, page_timeout)
        return Restore.RELOADED
    if modal is None:
        return Restore.KEPT
    if await _modal_closed(tab, baseline, data):
        return Restore.MODAL_CLOSED
    await tab.keyboard.press("Escape")
    if await _modal_closed(tab, baseline, data):
        return Restore.MODAL_CLOSED
    await _safe_eval(tab, CLOSE_MODAL_JS, [modal, list(data.dismiss_labels)])
    if await _modal_closed(tab, baseline, data):
        return Restore.MODAL_CLOSED
    await _load(browser, tab, page_url, page_timeout)
    return Restore.RELOADED


async def _modal_closed(tab: Page, baseline: dict[str, int], data: SocialData) -> bool:
    await asyncio.sleep(0.1)  # let a closing animation start
    return not _new_markers(baseline, await _marker_counts(tab, data))


async def _marker_counts(tab: Page, data: SocialData) -> dict[str, int]:
    got = await _safe_eval(tab, MARKERS_JS, list(data.markers))
    return {str(k): int(v) for k, v in got.items()} if isinstance(got, dict) else {}


def _new_markers(before: dict[str, int], after: dict[str, int]) -> list[str]:
    """Markers shown more often than before the click, longest first."""
    return sorted((m for m, n in after.items() if n > before.get(m, 0)), key=len, reverse=True)


async def _safe_eval(tab: Page, script: str, arg: Any) -> Any:
    """Evaluate, treating a page that is navigating away as showing nothing."""
    from playwright.async_api import Error as PlaywrightError

    try:
        return await tab.evaluate(script, arg)
    except PlaywrightError:
        return None


def _first_line(exc: BaseException) -> str:
    return one_line(exc, named=False, first_line=True)
