"""Judging one page's social links in the browser: load it once, click each link, watch, put it back.

For each social link element of the rendered DOM (so links written by
scripts count, and warnings attached by scripts act), the click is watched
for at most :data:`OBSERVE_WINDOW` seconds, and the first decisive sign wins:

1. a dialog (confirm/alert/prompt): warned, its type and text are the evidence;
2. a same-origin top-level navigation whose page carries a leave notice: warned (interstitial);
3. the top-level navigation to another host (refused by the route handler): not warned;
4. an element with leave-notice text becoming visible: warned (modal).

Links in the page's frames of the asset (a widget's ``<iframe>`` inserted by
script, a ``srcdoc`` frame: :mod:`probes.social.frames`) are scanned and clicked
like the page's own; a navigation of the frame a clicked link is in counts like
the tab's, and the judgement names the frame.

Then the page is put back without a reload where it can be: the dialog was
already dismissed, a refused navigation leaves the page as it was, popups are
closed, a modal gets Escape and then its cancel control; only a tab (or frame)
that navigated (an interstitial) or a modal that will not close is loaded again
(from posture's cache, not the network).

A page that left the asset by script while it loaded (:class:`PageLeft`, see
:mod:`probes.social.load`) keeps its static verdicts, and
``BrowserRun.left_scope`` records where it went; so does a page the browser
could not load (:class:`PageFailed`), recorded in ``BrowserRun.failed_pages``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag

from probes.base import DeadlineExceeded, OutOfScope, ProtocolFailure, ToolUnavailable
from probes.net.web import decode_html, is_html
from probes.social.browser import Browser, ClickEvents
from probes.social.frames import (
    Markers,
    frame_label,
    marker_counts,
    new_markers,
    page_frames,
    page_point,
    safe_eval,
    settle_frames,
)
from probes.social.js import AIM_JS, CLICK_JS, CLOSE_MODAL_JS, SCAN_JS, SNIPPET_JS, UNCOVER_JS
from probes.social.links import (
    Judgement,
    Method,
    Outcome,
    Seen,
    SocialData,
    SocialLink,
    classify_link,
)
from probes.social.load import PageLeft, load_page
from probes.social.static import page_notice
from vocab import PostureError, one_line

if TYPE_CHECKING:
    from playwright.async_api import Frame, Page

OBSERVE_WINDOW = 0.8  # seconds a click may take to show anything
DOM_CHECK_EVERY = 0.1  # seconds between looks for a modal while waiting
MAX_CLICKS_PER_PAGE = 60
MAX_SHOWN = 5  # pages named in the error of a run some of whose pages were judged from their HTML only
MAX_FRAMES_LISTED = 30  # frames of the asset listed in the observations


class PageHung(PostureError):
    """The page stopped answering (an endless script, a stuck renderer)."""


class PageFailed(PostureError):
    """The page could not be loaded (the one-line reason is the message)."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"{url}: {why}")
        self.url = url
        self.why = why


@dataclass
class BrowserRun:
    """What the browser judged so far (kept by the probe, so a deadline loses nothing)."""

    judgements: list[Judgement] = field(default_factory=list)
    pages_loaded: list[str] = field(default_factory=list)
    hung_pages: list[str] = field(default_factory=list)
    crashed_pages: list[str] = field(default_factory=list)  # the renderer crashed (out of memory, killed)
    # Pages the browser could not load (not hung, not leaving the asset): {page, why}
    failed_pages: list[dict[str, str]] = field(default_factory=list)
    page_errors: list[dict[str, str]] = field(default_factory=list)
    # Pages that tried to leave the asset by themselves: {page, to, how: script|refresh, judged: browser|static}
    left_scope: list[dict[str, str]] = field(default_factory=list)
    frames: list[dict[str, str]] = field(default_factory=list)  # frames of the asset scanned: {page, frame}
    frames_left_out: int = 0  # frames of the asset over the per-page cap, not scanned
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
            "failed_pages": self.failed_pages[:30],
            "page_errors": self.page_errors[:20],
            "left_scope": self.left_scope[:30],
            "frames": self.frames[:MAX_FRAMES_LISTED],
            "frames_left_out": self.frames_left_out,
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
        shown = ", ".join(f"{x['page']} (to {x['to']})" for x in cut[:MAX_SHOWN])
        return OutOfScope(f"partial result: {len(cut)} pages left the asset by script while they loaded; the "
                          f"browser does not follow them: their links were judged from the HTML only "
                          f"({shown}{_more(len(cut))})")

    def failed_failure(self) -> ProtocolFailure | None:
        """The failure to report when the browser could not load pages (their links judged from the HTML only)."""
        failed = self.failed_pages
        if not failed:
            return None
        if len(failed) == 1:
            return ProtocolFailure(f"partial result: the browser could not load {failed[0]['page']} "
                                   f"({failed[0]['why']}); its links were judged from the HTML only")
        shown = ", ".join(f"{x['page']} ({x['why']})" for x in failed[:MAX_SHOWN])
        return ProtocolFailure(f"partial result: the browser could not load {len(failed)} pages; their links "
                               f"were judged from the HTML only ({shown}{_more(len(failed))})")


def _more(n: int) -> str:
    return f" and {n - MAX_SHOWN} more" if n > MAX_SHOWN else ""


@dataclass(frozen=True)
class Found:
    frame: Frame  # the frame it is in (the page's main frame, or a frame of the asset)
    index: int  # position among the candidates SCAN_JS lists in that frame
    link: SocialLink
    ordinal: int  # elements with the same key before it on the page (its frames after the page itself)
    row: tuple[str | None, str | None, str | None]  # what SCAN_JS saw: href, onclick, target


@dataclass
class _Loaded:
    """A page as loaded in the tab: its social links and the leave-notice text already showing."""

    url: str
    found: list[Found]
    baseline: Markers
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
                # Never "ok": what its scripts show (links, warnings) was not looked at.
                run.failed_pages.append({"page": url, "why": exc.why})
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
            frames, left_out = page_frames(tab, browser.serves)
    except TimeoutError:
        raise PageHung(f"{url} did not settle within {page_timeout:g}s") from None
    except PlaywrightError as exc:
        raise PageFailed(url, _first_line(exc)) from None
    run.pages_loaded.append(url)
    run.frames.extend({"page": url, "frame": f.url} for f in frames[1:])
    run.frames_left_out += left_out
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
                                f"click failed: {_first_line(exc)}", item.ordinal, frame_label(item.frame))
            with contextlib.suppress(PlaywrightError, TimeoutError):
                async with asyncio.timeout(page_timeout):
                    page = await _open(browser, tab, url, data, page_timeout)
        run.clicks += 1
        run.judgements.append(verdict)
    run.reloads += page.reloads


async def _open(browser: Browser, tab: Page, url: str, data: SocialData, timeout: float) -> _Loaded:
    left = await load_page(browser, tab, url, timeout)
    found = await _scan(browser, tab, url, data)
    return _Loaded(url, found, await _markers(browser, tab, data), left=left)


async def _scan(browser: Browser, tab: Page, page_url: str, data: SocialData) -> list[Found]:
    """The social links of the page and of its frames of the asset, the page's own first."""
    frames, _ = page_frames(tab, browser.serves)
    if len(frames) > 1:
        await settle_frames(frames)
        frames, _ = page_frames(tab, browser.serves)  # one may have loaded another document meanwhile
    found: list[Found] = []
    counts: dict[str, int] = {}
    for frame in frames:
        # The page's own scan failing is the page failing; a frame's, a frame gone meanwhile.
        got = await frame.evaluate(SCAN_JS) if frame is tab.main_frame else await safe_eval(frame, SCAN_JS, None)
        rows: list[list[str | None]] = got if isinstance(got, list) else []
        for i, (href, onclick, target) in enumerate(rows):
            link = classify_link(page_url, href, onclick, target, data)
            if link is None:
                continue
            n = counts.get(link.key, 0)
            counts[link.key] = n + 1
            found.append(Found(frame, i, link, n, (href, onclick, target)))
    return found


async def _markers(browser: Browser, tab: Page, data: SocialData) -> Markers:
    return await marker_counts(page_frames(tab, browser.serves)[0], data)


async def _click_one(
    browser: Browser, tab: Page, page: _Loaded, item: Found, data: SocialData, page_timeout: float
) -> Judgement:
    current = _find(page.found, item)

    def verdict(outcome: Outcome, seen: Seen, detail: str) -> Judgement:
        where = frame_label((current or item).frame)
        return Judgement(page.url, item.link, Method.BROWSER, outcome, seen, detail, item.ordinal, where)

    if page.dirty:
        page.found = await _scan(browser, tab, page.url, data)
        page.baseline = await _markers(browser, tab, data)
        page.dirty = False
    events = ClickEvents()
    browser.events = events
    try:
        current = _find(page.found, item)
        aim = await _aim(events, current) if current is not None else {"stale": True}
        if aim.get("stale"):
            # The DOM changed under us (a script, a modal): find the element again.
            page.found = await _scan(browser, tab, page.url, data)
            current = _find(page.found, item)
            aim = await _aim(events, current) if current is not None else {}
        if current is None:
            return verdict(Outcome.INCONCLUSIVE, Seen.ERROR, "the link was gone when its turn came")
        x, y = aim.get("x"), aim.get("y")
        if isinstance(x, int | float) and isinstance(y, int | float):
            await tab.mouse.click(x, y)  # a real, trusted click (popups allowed, handlers see isTrusted)
        outcome, seen, detail, modal = await _observe(browser, tab, events, page.baseline, data)
        if aim.get("covered"):
            await safe_eval(current.frame, UNCOVER_JS, None)
    finally:
        browser.events = None
    restored = await _restore(browser, tab, page.url, modal, events, page.baseline, data, page_timeout)
    page.dirty = restored is not Restore.KEPT
    page.reloads += restored is Restore.RELOADED
    return verdict(outcome, seen, detail)


def _find(found: list[Found], item: Found) -> Found | None:
    return next((f for f in found if (f.link.key, f.ordinal) == (item.link.key, item.ordinal)), None)


def _around(frame: Frame) -> tuple[Frame, ...]:
    """The frame a link is in and the frames around it (the tab's own navigations count anyway)."""
    out: list[Frame] = []
    at: Frame | None = frame
    while at is not None and at.parent_frame is not None:
        out.append(at)
        at = at.parent_frame
    return tuple(out)


async def _aim(events: ClickEvents, item: Found) -> dict[str, Any]:
    """AIM_JS's answer for ``item``, its point in the page's viewport for one in a frame.

    From here on, a navigation of the frame it is in counts as the click's (AIM_JS may click it).
    """
    events.frames = _around(item.frame)
    if item.frame.parent_frame is None:
        got = await item.frame.evaluate(AIM_JS, [item.index, list(item.row)])
        return got if isinstance(got, dict) else {}
    got = await safe_eval(item.frame, AIM_JS, [item.index, list(item.row)])
    if not isinstance(got, dict):
        return {"stale": True}  # the frame went away
    x, y = got.get("x"), got.get("y")
    if not (isinstance(x, int | float) and isinstance(y, int | float)):
        return got
    point = await page_point(item.frame, x, y)
    if point is not None:
        return {**got, "x": point[0], "y": point[1]}
    # The frame does not show at that point (covered, out of view): clicked from script instead.
    await safe_eval(item.frame, UNCOVER_JS, None)
    clicked = await safe_eval(item.frame, CLICK_JS, [item.index, list(item.row)])
    return {"scripted": True} if clicked is True else {"stale": True}


async def _observe(
    browser: Browser, tab: Page, events: ClickEvents, baseline: Markers, data: SocialData
) -> tuple[Outcome, Seen, str, tuple[Frame, str] | None]:
    """(outcome, seen, detail, frame and marker of a modal to close)."""
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
        new = new_markers(baseline, await _markers(browser, tab, data))
        if new:
            frame, marker = new[0]
            if events.same_origin:
                return Outcome.WARNED, Seen.INTERSTITIAL, f"{frame.url} shows {marker!r}", None
            text = await safe_eval(frame, SNIPPET_JS, marker)
            return Outcome.WARNED, Seen.MODAL, str(text or marker)[:300], new[0]
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
    modal: tuple[Frame, str] | None,
    events: ClickEvents,
    baseline: Markers,
    data: SocialData,
    page_timeout: float,
) -> Restore:
    """Put the page back as it was before the click, reloading only when nothing else does."""
    popups = browser.extra_tabs(tab)
    for extra in popups:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                await extra.close(run_before_unload=False)
    # A same-origin navigation without a popup happened in our tab (or a frame of it), committed or not yet.
    navigated = bool(events.same_origin) and not popups
    if navigated or urldefrag(tab.url)[0] != urldefrag(page_url)[0]:
        from playwright.async_api import Error as PlaywrightError

        if navigated and len(events.same_origin) > events.in_frames:
            # Let it commit first: a load started before would be cut short by it.
            with contextlib.suppress(PlaywrightError):
                await tab.wait_for_url(lambda u: urldefrag(u)[0] != urldefrag(page_url)[0],
                                       wait_until="commit", timeout=2000)
        # Load our page again rather than going back, which could land one page too far.
        await load_page(browser, tab, page_url, page_timeout)
        return Restore.RELOADED
    if modal is None:
        return Restore.KEPT
    if await _modal_closed(browser, tab, baseline, data):
        return Restore.MODAL_CLOSED
    await tab.keyboard.press("Escape")
    if await _modal_closed(browser, tab, baseline, data):
        return Restore.MODAL_CLOSED
    frame, marker = modal
    await safe_eval(frame, CLOSE_MODAL_JS, [marker, list(data.dismiss_labels)])
    if await _modal_closed(browser, tab, baseline, data):
        return Restore.MODAL_CLOSED
    await load_page(browser, tab, page_url, page_timeout)
    return Restore.RELOADED


async def _modal_closed(browser: Browser, tab: Page, baseline: Markers, data: SocialData) -> bool:
    await asyncio.sleep(0.1)  # let a closing animation start
    return not new_markers(baseline, await _markers(browser, tab, data))


def _first_line(exc: BaseException) -> str:
    return one_line(exc, named=False, first_line=True)
