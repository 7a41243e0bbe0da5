"""The frames of a page in the browser: which hold the asset's content, and how to look and click into them.

A social link may sit in a frame rather than in the page itself: an ``<iframe>``
a widget script inserts, one given its document by ``srcdoc``, an ``about:blank``
frame a script writes into. Such a link is as much the page's as any other, so
the browser judge scans, watches and clicks within every frame of the asset:

* an http(s) frame whose origin is in the asset's scope (its document was served
  by posture, like every request the browser makes);
* a frame without a document of its own (``about:srcdoc``, ``about:blank``, a
  ``blob:`` URL of an origin in scope) inside one of those: its content was
  written by the asset's page.

A frame of any other origin never loaded anything (the browser's request routing
refused it) and is not looked into, nor is anything below it. At most
:data:`MAX_FRAMES` frames besides the page's own are scanned.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from probes.social.js import FRAME_POINT_JS, MARKERS_JS
from probes.social.links import SocialData

if TYPE_CHECKING:
    from playwright.async_api import Frame, Page

MAX_FRAMES = 20  # frames scanned per page besides the page's own
FRAME_LOAD_WAIT = 2.0  # seconds a frame still loading gets before it is scanned as it is

#: Leave-notice phrases shown in each frame: frame -> marker -> times shown.
Markers = dict["Frame", dict[str, int]]


def frame_in_scope(url: str, serves: Callable[[str], bool]) -> bool:
    """Whether a frame at ``url``, inside a frame of the asset, shows the asset's content.

    ``serves`` says whether the browser is served a URL (its origin is in scope).
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme == "about":
        return parts.path.lower() in ("blank", "srcdoc")  # written by its parent (or its creator)
    if scheme == "blob":
        return serves(url.strip()[len("blob:"):])  # blob:https://host/uuid: made by a page of that origin
    return scheme in ("http", "https") and serves(url)


def page_frames(tab: Page, serves: Callable[[str], bool]) -> tuple[list[Frame], int]:
    """(the page's main frame then its frames of the asset, depth first; frames left out over the cap)."""
    main = tab.main_frame
    out: list[Frame] = [main]
    left_out = 0
    stack = list(reversed(main.child_frames))
    while stack:
        frame = stack.pop()
        if frame.is_detached() or not frame_in_scope(frame.url, serves):
            continue
        if len(out) > MAX_FRAMES:
            left_out += 1
            continue
        out.append(frame)
        stack.extend(reversed(frame.child_frames))
    return out, left_out


def frame_label(frame: Frame) -> str | None:
    """What a judgement records of the frame a link was found in: its URL; None for the page itself."""
    return None if frame.parent_frame is None else frame.url


async def settle_frames(frames: list[Frame]) -> None:
    """Give frames still loading (a widget inserted by script) up to :data:`FRAME_LOAD_WAIT` to finish."""
    from playwright.async_api import Error as PlaywrightError

    async def one(frame: Frame) -> None:
        with contextlib.suppress(PlaywrightError):  # a timeout, or a frame gone meanwhile
            await frame.wait_for_load_state("load", timeout=FRAME_LOAD_WAIT * 1000)

    await asyncio.gather(*(one(f) for f in frames if f.parent_frame is not None))


async def page_point(frame: Frame, x: float, y: float) -> tuple[float, float] | None:
    """Where a point of ``frame``'s viewport is in the page's viewport (for a real mouse click).

    None when the frame does not show there (covered, scrolled out of view, gone).
    """
    from playwright.async_api import Error as PlaywrightError

    while (parent := frame.parent_frame) is not None:
        try:
            owner = await frame.frame_element()
        except PlaywrightError:
            return None
        try:
            got = await owner.evaluate(FRAME_POINT_JS, [x, y])
        except PlaywrightError:
            return None
        finally:
            with contextlib.suppress(PlaywrightError):
                await owner.dispose()
        if not (isinstance(got, list) and len(got) == 2 and all(isinstance(v, int | float) for v in got)):
            return None
        x, y = float(got[0]), float(got[1])
        frame = parent
    return x, y


async def safe_eval(where: Page | Frame, script: str, arg: Any) -> Any:
    """Evaluate, treating a page or frame that is navigating away (or gone) as showing nothing."""
    from playwright.async_api import Error as PlaywrightError

    try:
        return await where.evaluate(script, arg)
    except PlaywrightError:
        return None


async def marker_counts(frames: list[Frame], data: SocialData) -> Markers:
    """The leave-notice phrases each frame shows now, and how often."""
    got = await asyncio.gather(*(safe_eval(f, MARKERS_JS, list(data.markers)) for f in frames))
    return {f: {str(k): int(v) for k, v in counts.items()}
            for f, counts in zip(frames, got, strict=True) if isinstance(counts, dict)}


def new_markers(before: Markers, after: Markers) -> list[tuple[Frame, str]]:
    """(frame, marker) of markers shown more often than before the click, longest first."""
    shown = [(f, m) for f, counts in after.items() for m, n in counts.items() if n > before.get(f, {}).get(m, 0)]
    return sorted(shown, key=lambda fm: len(fm[1]), reverse=True)
