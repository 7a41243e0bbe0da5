"""Loading one page in the browser tab and letting it settle, or seeing it leave the asset as it loads.

A page may try to leave the asset by itself (``location.href = ...``, a meta
refresh), refused like any other off-asset navigation. Once it has loaded that
changes nothing: it stays put and is judged. While it is still loading, the
script cut its loading short (the browser's copy stops where it ran, and
Playwright would wait for a load that never comes): :class:`PageLeft`, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from probes.social.browser import Browser, ClickEvents
from probes.social.frames import safe_eval
from probes.social.js import REFRESH_JS
from vocab import PostureError

if TYPE_CHECKING:
    from playwright.async_api import Page

REFRESH_WAIT = 2.0  # a meta refresh due within this many seconds of the load is waited for
LEFT_GRACE = 0.5  # seconds a load still gets once its page asked to leave (leaving as it loads races the report)


class PageLeft(PostureError):
    """The page's own script sent the tab off the asset while it loaded (refused): it was cut short."""

    def __init__(self, url: str, to: str) -> None:
        super().__init__(f"{url}: its script sent it to {to} while it loaded")
        self.url = url
        self.to = to


async def load_page(browser: Browser, tab: Page, url: str, timeout: float) -> list[tuple[str, str]]:
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
            await safe_eval(tab, REFRESH_JS, None))
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
