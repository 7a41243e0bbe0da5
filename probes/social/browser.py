"""One pinned, sealed Chromium per probe run, driven by Playwright.

The browser never talks to the network itself:

* Every request it makes is intercepted (``context.route("**/*")``). A GET or
  HEAD for an origin in the asset's scope (``Target.scope``: scheme, host and
  port, not the host name alone) is answered by posture through ``ctx.http``
  (pinned address, per-host budget, deadline, body cap), from a cache shared
  with the crawl, so a crawled page is not fetched twice and a site-wide
  script is fetched once. Anything else (another host or scheme, a method
  other than GET/HEAD: the probe is passive) is refused; a refused navigation
  is aborted with ERR_ABORTED so the page stays put instead of showing an
  error page. Redirects are followed by posture within the scope; one leaving
  it is refused like any other off-scope navigation.
* Name resolution is pinned as well: ``--host-resolver-rules`` maps the
  asset's host to its pinned address and every other name to NOTFOUND.
  localhost is deliberately *not* excluded: a scanned page must not reach
  services on the scanning machine.
* Connections Chromium opens outside intercepted requests (preconnect, a
  WebSocket or prefetch to an IP literal, which no resolver rule covers) are
  sent to a proxy whose name does not resolve, loopback included; WebSockets
  are also routed and closed without ever connecting.
* Chromium is Debian's (``/usr/bin/chromium`` by default) launched through
  Playwright's ``executable_path``; Playwright never downloads a browser.
  It runs as its own process group with a fresh profile directory; closing
  falls back to SIGKILL of that group, found by the profile directory on its
  command line, so a hung browser never outlives the probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from probes.base import (
    BudgetExhausted,
    ProbeFailure,
    ProtocolFailure,
    Target,
    ToolUnavailable,
)
from probes.net.http import REDIRECT_CODES, HttpExchange
from probes.net.scope import normalise_host, origin_of
from probes.social.crawl import ResponseCache
from probes.social.launch import Launch, discard, prepare, profile_parent, sandbox_failure
from probes.social.proc import kill_profile_processes
from vocab import PostureError, one_line

if TYPE_CHECKING:
    from playwright.async_api import (
        BrowserContext,
        Dialog,
        Frame,
        Page,
        Playwright,
        Request,
        Route,
        WebSocketRoute,
    )

DEFAULT_CHROMIUM = "/usr/bin/chromium"
BASE_ARGS = (
    "--headless=new",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-default-browser-check",
    # Every connection Chromium might open outside intercepted requests (preconnect, DNS
    # prefetch, a WebSocket to an IP literal) goes to a proxy whose name never resolves,
    # loopback included (<-loopback> drops Chromium's implicit bypass of it).
    "--proxy-server=http://no-proxy.posture.invalid:9",
    "--proxy-bypass-list=<-loopback>",
    "--no-pings",
    "--mute-audio",
)  # plus the sandbox and memory flags of probes.social.launch
FORWARDED_REQUEST_HEADERS = ("accept", "accept-language", "cookie", "referer")
DROPPED_RESPONSE_HEADERS = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}
)
MAX_LOGGED = 50
MAX_REDIRECTS = 5


def find_chromium(configured: str | None) -> str:
    if configured:
        return configured
    return shutil.which("chromium") or DEFAULT_CHROMIUM


def unavailable_reason(executable: str) -> str | None:
    """Why the browser cannot be used here, or None when it can (no process is started)."""
    if importlib.util.find_spec("playwright") is None:
        return "the playwright Python package is not installed"
    path = Path(executable)
    if not path.is_file():
        return f"no Chromium at {executable} (apt-get install chromium)"
    if not os.access(path, os.X_OK):
        return f"{executable} is not executable"
    return None


def resolver_rules(host: str, address: str) -> str:
    """Chromium host-resolver rules: the asset's host to its pinned address, nothing else resolves."""
    mapped = f"[{address}]" if ":" in address else address
    rules = [] if _is_ip(host) else [f"MAP {normalise_host(host)} {mapped}"]
    rules.append("MAP * ~NOTFOUND")
    return ", ".join(rules)


def chromium_args(host: str, address: str) -> list[str]:
    return [*BASE_ARGS, f"--host-resolver-rules={resolver_rules(host, address)}"]


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(normalise_host(host))
    except ValueError:
        return False
    return True


@dataclass
class Traffic:
    """Every request the browser made, as the route handler decided it."""

    requested: Counter[str] = field(default_factory=Counter)  # host -> requests the browser made
    served: Counter[str] = field(default_factory=Counter)  # host -> requests answered (by ctx.http)
    fetched: int = 0  # of those, fetched through ctx.http (the rest came from the cache)
    blocked: dict[str, str] = field(default_factory=dict)  # url -> why (first MAX_LOGGED)
    blocked_count: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # url -> fetch error (first MAX_LOGGED)
    budget_exhausted: bool = False

    def block(self, url: str, why: str) -> None:
        self.blocked_count += 1
        if len(self.blocked) < MAX_LOGGED:
            self.blocked.setdefault(url, why)

    def to_json(self) -> dict[str, Any]:
        return {
            "requested": sum(self.requested.values()),
            "requested_hosts": sorted(self.requested),
            "served": sum(self.served.values()),
            "served_hosts": sorted(self.served),
            "fetched": self.fetched,
            "blocked_count": self.blocked_count,
            "blocked": [{"url": u, "why": w} for u, w in self.blocked.items()],
            "failed": [{"url": u, "error": e} for u, e in self.failed.items()],
            "budget_exhausted": self.budget_exhausted,
        }


@dataclass
class ClickEvents:
    """What happened after one click, or while one page loaded (filled by the route and dialog handlers)."""

    dialogs: list[tuple[str, str]] = field(default_factory=list)  # (type, message)
    off_host: list[str] = field(default_factory=list)  # refused top-level navigations (the tab stays put)
    same_origin: list[tuple[str, HttpExchange]] = field(default_factory=list)  # served navigations
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set on every addition
    # Frames whose navigations count like the tab's: the frame a clicked link is in, and those around it.
    frames: tuple[Frame, ...] = ()
    in_frames: int = 0  # of same_origin, navigations of one of those frames (the tab itself stayed)


class _SandboxUnavailable(PostureError):
    """Chromium could not set up its sandbox here (no user namespaces); the message is one line."""


class Browser:
    """Chromium for one probe run. ``async with Browser(...) as b``; everything bounded."""

    def __init__(
        self,
        target: Target,
        cache: ResponseCache,
        *,
        executable: str,
        launch_timeout: float,
    ) -> None:
        if not target.addresses:
            raise ToolUnavailable(f"{target.host} has no pinned address for the browser")
        self.target = target
        self.cache = cache
        self.executable = executable
        self.launch_timeout = launch_timeout
        self.traffic = Traffic()
        self.events: ClickEvents | None = None  # set while a click is observed or a page loads
        self.inflight = 0
        self.last_activity = time.monotonic()
        self.version = ""
        self.crashed = False  # the browser went away without being asked to
        self.page_crashes = 0  # renderers that crashed (out of memory, killed): each a page error
        self.launcher: Launch | None = None  # how Chromium was started (user, sandbox, memory bounds)
        self.sandbox_error: str | None = None  # why Chromium's sandbox could not be used, when it could not
        self._closing = False
        self._handlers: set[asyncio.Task[Any]] = set()  # route handlers still fetching
        self._pw: Playwright | None = None
        self._context: BrowserContext | None = None
        self._profile = ""

    @property
    def context(self) -> BrowserContext:
        assert self._context is not None, "browser not launched"
        return self._context

    async def __aenter__(self) -> Browser:
        await self.launch()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # Leaving on an error or a deadline: the browser may be what hangs, so no polite close.
        await self.close(graceful=exc_type is None)

    def _page_crashed(self, *_: object) -> None:
        self.page_crashes += 1

    def _closed(self, *_: object) -> None:
        if not self._closing:
            self.crashed = True

    async def launch(self) -> None:
        """Start Chromium sandboxed; once more without its sandbox only where the sandbox cannot start."""
        try:
            await self._launch(sandbox=True)
        except _SandboxUnavailable as exc:
            self._closing = False
            self.sandbox_error = str(exc)
            await self._launch(sandbox=False)

    async def _launch(self, *, sandbox: bool) -> None:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright

        self._profile = tempfile.mkdtemp(prefix="posture-social-", dir=profile_parent())
        try:
            self.launcher = await asyncio.to_thread(prepare, self.executable, self._profile, sandbox=sandbox)
        except (OSError, KeyError) as exc:
            await self.close(graceful=False)
            raise ToolUnavailable(f"cannot prepare Chromium's launch: {exc}") from None
        try:
            async with asyncio.timeout(self.launch_timeout):
                self._pw = await async_playwright().start()
                self._context = await self._pw.chromium.launch_persistent_context(
                    self._profile,
                    executable_path=self.launcher.executable,
                    headless=True,
                    chromium_sandbox=self.launcher.sandbox,  # Playwright's default adds --no-sandbox
                    args=[*chromium_args(self.target.host, self.target.addresses[0]), *self.launcher.flags()],
                    service_workers="block",
                    accept_downloads=False,
                    locale="zh-TW",
                    viewport={"width": 1280, "height": 900},
                    timeout=self.launch_timeout * 1000,
                )
                await self._context.route("**/*", self._route)
                await self._context.route_web_socket("**/*", self._websocket)
                self._context.on("dialog", self._dialog)
                self._context.on("close", self._closed)
                browser = self._context.browser
                self.version = browser.version if browser is not None else ""
        except TimeoutError:
            await self.close(graceful=False)
            raise ToolUnavailable(
                f"Chromium at {self.executable} did not start within {self.launch_timeout:g}s"
            ) from None
        except (PlaywrightError, OSError) as exc:
            await self.close(graceful=False)
            if sandbox and self.launcher.sandbox and sandbox_failure(str(exc)):
                raise _SandboxUnavailable(_first_line(exc)) from None
            raise ToolUnavailable(f"cannot launch Chromium at {self.executable}: {_first_line(exc)}") from None
        except BaseException:
            await self.close(graceful=False)  # cancelled mid-launch: leave no browser behind
            raise

    async def close(self, *, graceful: bool = True) -> None:
        """Close the browser; kill its process group if it does not go quietly."""
        self._closing = True
        for task in list(self._handlers):
            task.cancel()  # a fetch for a page nobody will show any more
        context, self._context = self._context, None
        pw, self._pw = self._pw, None
        if context is not None and graceful:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(3):
                    await context.close()
        if self._profile:
            kill_profile_processes(self._profile)
        if pw is not None:
            try:
                async with asyncio.timeout(3):
                    await pw.stop()
            except Exception:
                _kill_driver(pw)
        if self._profile:
            kill_profile_processes(self._profile)
            await asyncio.to_thread(shutil.rmtree, self._profile, True)
            self._profile = ""
        discard(self.launcher)

    async def new_tab(self) -> Page:
        """A tab opened after the routes were installed (WebSocket routing needs that)."""
        tab = await self.context.new_page()
        tab.on("crash", self._page_crashed)
        for old in self.extra_tabs(tab):
            with contextlib.suppress(Exception):
                await old.close()
        return tab

    def extra_tabs(self, keep: Page) -> list[Page]:
        return [p for p in self.context.pages if p is not keep]

    async def settle(self, *, quiet: float = 0.05, limit: float = 1.5) -> None:
        """Wait until no intercepted request has been in flight for ``quiet`` seconds (at most ``limit``)."""
        start = time.monotonic()
        await asyncio.sleep(0.03)  # let scripts run timers set at load
        while time.monotonic() - start < limit:
            if self.inflight == 0 and time.monotonic() - self.last_activity >= quiet:
                return
            await asyncio.sleep(0.025)

    def serves(self, url: str) -> bool:
        """Whether the browser is served ``url`` (a GET of an origin in the asset's scope)."""
        return self._allowed(url) is None

    def _allowed(self, url: str) -> str | None:
        """Why a URL may not be served to the browser, or None."""
        try:
            parts = urlsplit(url)
            host = normalise_host(parts.hostname or "")
        except ValueError:
            return "unparsable URL"
        if parts.scheme not in ("http", "https"):
            return f"scheme {parts.scheme}"
        if host != normalise_host(self.target.host) and origin_of(url) not in self.target.scope:
            return "off-host"
        if origin_of(url) not in self.target.scope:
            return "off-origin (another port or scheme of the host)"
        return None

    async def _route(self, route: Route, request: Request) -> None:
        self.inflight += 1
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await self._handle(route, request)
        except Exception:
            # A closed page or context: nothing left to answer.
            with contextlib.suppress(Exception):
                await route.abort("failed")
        finally:
            self.inflight -= 1
            self.last_activity = time.monotonic()
            if task is not None:
                self._handlers.discard(task)

    async def _handle(self, route: Route, request: Request) -> None:
        url = request.url
        self.traffic.requested[_host(url)] += 1
        main = _is_main_frame(request)
        # A navigation of the tab, or of the frame a clicked link is in: the click's effect.
        top_level = request.is_navigation_request() and (main or self._watched(request))
        why = self._allowed(url)
        if why is None and request.method not in ("GET", "HEAD"):
            why = f"method {request.method} (the probe is passive)"
        if why is not None:
            self.traffic.block(url, why)
            if top_level and self.events is not None:
                self.events.off_host.append(url)
                self.events.changed.set()
            await route.abort("aborted" if request.is_navigation_request() else "blockedbyclient")
            return
        headers: dict[str, str] = {}
        if self.cache.get(url) is None:  # the raw headers cost a round trip: only for a real fetch
            headers = {k: v for k, v in (await request.all_headers()).items() if k in FORWARDED_REQUEST_HEADERS}
        try:
            ex, fetched = await self.cache.fetch(url, headers)
            hops = 0
            # Chromium does not follow a redirect answered by route.fulfill (it shows an error
            # page), so posture follows in-host redirects itself and stops at an off-host one.
            while ex.status in REDIRECT_CODES and ex.location and hops < MAX_REDIRECTS:
                if self._allowed(ex.location) is not None:
                    self.traffic.block(ex.location, f"off-host redirect from {url}")
                    if top_level and self.events is not None:
                        self.events.off_host.append(f"{ex.location} (redirected by {url})")
                        self.events.changed.set()
                    await route.abort("aborted" if request.is_navigation_request() else "blockedbyclient")
                    return
                ex, again = await self.cache.fetch(ex.location, headers)
                fetched, hops = fetched or again, hops + 1
            if ex.status in REDIRECT_CODES:
                raise ProtocolFailure(f"more than {MAX_REDIRECTS} redirects from {url}")
        except ProbeFailure as exc:
            if isinstance(exc, BudgetExhausted):
                self.traffic.budget_exhausted = True
            if len(self.traffic.failed) < MAX_LOGGED:
                self.traffic.failed.setdefault(url, one_line(exc))
            await route.abort("failed")
            return
        self.traffic.served[_host(ex.url)] += 1
        self.traffic.fetched += int(fetched)
        if top_level and self.events is not None:
            self.events.same_origin.append((url, ex))
            self.events.in_frames += not main
            self.events.changed.set()
        await route.fulfill(status=ex.status, headers=_response_headers(ex), body=ex.body)

    def _watched(self, request: Request) -> bool:
        if self.events is None or not self.events.frames:
            return False
        try:
            return request.frame in self.events.frames
        except Exception:
            return False  # no frame (a service worker's request)

    async def _websocket(self, ws: WebSocketRoute) -> None:
        # Never connected to any server: the page gets a socket that closes.
        self.traffic.requested[_host(ws.url)] += 1
        self.traffic.block(ws.url, "websocket")
        with contextlib.suppress(Exception):
            await ws.close(code=1008, reason="blocked by posture")

    async def _dialog(self, dialog: Dialog) -> None:
        with contextlib.suppress(Exception):
            if dialog.type == "beforeunload":
                # Not a leave notice (Chromium's own "Leave site?"): let the navigation go on.
                await dialog.accept()
                return
            if self.events is not None:
                self.events.dialogs.append((dialog.type, dialog.message))
                self.events.changed.set()
            await dialog.dismiss()


def _host(url: str) -> str:
    try:
        return normalise_host(urlsplit(url).hostname or "") or urlsplit(url).scheme
    except ValueError:
        return "unparsable"


def _is_main_frame(request: Request) -> bool:
    try:
        return request.frame.parent_frame is None
    except Exception:
        return True  # a popup's first navigation may not have its frame yet


def _response_headers(ex: HttpExchange) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in ex.headers:
        if name in DROPPED_RESPONSE_HEADERS:
            continue
        sep = "\n" if name == "set-cookie" else ", "
        out[name] = f"{out[name]}{sep}{value}" if name in out else value
    return out


def _first_line(exc: BaseException) -> str:
    return one_line(exc, named=False, first_line=True)


def _kill_driver(pw: Playwright) -> None:
    """Last resort when the Playwright driver does not stop: kill the node process we started."""
    proc = getattr(getattr(getattr(getattr(pw, "_impl_obj", None), "_connection", None), "_transport", None),
                   "_proc", None)
    pid = getattr(proc, "pid", None)
    if isinstance(pid, int):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
