"""The report's HTML printed to PDF by the Chromium posture already drives for the social probe.

Started the way the social probe starts it (:mod:`probes.social.launch`): through a
wrapper that drops root to ``nobody``, dies with posture and bounds memory, with
Chromium's own sandbox on (retried once without it only where the kernel refuses the
namespaces it needs). The page is offline: every request the HTML could make is
refused, so the PDF shows exactly the self-contained report. Chromium embeds the fonts
it used (subsets of Noto Sans CJK for the Chinese text), so the PDF reads the same on
a machine without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from typing import TYPE_CHECKING

from agent.errors import UsageError
from vocab import PostureError

if TYPE_CHECKING:
    from playwright.async_api import Route

PDF_TIMEOUT = 120.0  # seconds for launch + layout + print of a large report
_ARGS = (
    "--headless=new",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-default-browser-check",
    # The report needs no network: anything it might still open goes to a proxy that never resolves.
    "--proxy-server=http://no-proxy.posture.invalid:9",
    "--proxy-bypass-list=<-loopback>",
)


class PdfUnavailable(UsageError):
    """The PDF cannot be made here (no Chromium, no Playwright, Chromium failed): one line, exit 2."""


def render_pdf(html: str, chromium: str | None = None, *, timeout: float = PDF_TIMEOUT) -> bytes:
    """``html`` (a self-contained page) as A4 PDF bytes."""
    from probes.social.browser import find_chromium, unavailable_reason

    executable = find_chromium(chromium)
    why = unavailable_reason(executable)
    if why is not None:
        raise PdfUnavailable(f"report: cannot write PDF: {why}")
    try:
        return asyncio.run(_print(html, executable, timeout, sandbox=True))
    except _SandboxRefused:
        return asyncio.run(_print(html, executable, timeout, sandbox=False))


class _SandboxRefused(PostureError):
    """Chromium refused its sandbox here: print once more without it (internal control flow)."""


async def _refuse(route: Route) -> None:
    await route.abort("blockedbyclient")


async def _print(html: str, executable: str, timeout: float, *, sandbox: bool) -> bytes:
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    from probes.social.launch import discard, prepare, profile_parent, sandbox_failure
    from probes.social.proc import kill_profile_processes

    profile = tempfile.mkdtemp(prefix="posture-pdf-", dir=profile_parent())
    launch = None
    try:
        try:
            launch = await asyncio.to_thread(prepare, executable, profile, sandbox=sandbox)
        except (OSError, KeyError) as exc:
            raise PdfUnavailable(f"report: cannot write PDF: cannot prepare Chromium's launch: {exc}") from None
        try:
            async with asyncio.timeout(timeout), async_playwright() as pw:
                context = await pw.chromium.launch_persistent_context(
                    profile, executable_path=launch.executable, headless=True, chromium_sandbox=launch.sandbox,
                    args=[*_ARGS, *launch.flags()], service_workers="block", accept_downloads=False,
                    java_script_enabled=False, offline=True, locale="zh-TW", timeout=timeout * 1000,
                )
                try:
                    await context.route("**/*", _refuse)
                    page = await context.new_page()
                    await page.set_content(html, wait_until="load")
                    await page.emulate_media(media="print")
                    return await page.pdf(format="A4", print_background=True, prefer_css_page_size=True,
                                          outline=True, tagged=True)
                finally:
                    with contextlib.suppress(Exception):
                        await context.close()
        except TimeoutError:
            raise PdfUnavailable(f"report: cannot write PDF: Chromium did not finish within {timeout:g}s") from None
        except (PlaywrightError, OSError) as exc:
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            if sandbox and launch.sandbox and sandbox_failure(str(exc)):
                raise _SandboxRefused(message) from None
            raise PdfUnavailable(f"report: cannot write PDF: Chromium at {executable}: {message}") from None
    finally:
        kill_profile_processes(profile)
        await asyncio.to_thread(shutil.rmtree, profile, True)
        discard(launch)
