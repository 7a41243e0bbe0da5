"""The social probe end to end against local sites: Debian's Chromium via Playwright, and static mode.

Every site is a real HTTP server on 127.0.0.1 reached under a made-up name
pinned to it; a second local server stands for "the outside" and must never
see a request.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import ssl
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from probes.base import ErrorKind, Limits, ProbeResult, RunStatus
from probes.social.links import normalise_href
from probes.social.probe import SocialProbe
from tests.support import social_site as site
from tests.support.certs import Authority, write_pair
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, Running, Seen, http_server, server_context

pytestmark = pytest.mark.slow


@dataclass
class Scan:
    result: ProbeResult
    server: Running
    outside: list[Seen]
    seconds: float
    http_requests: dict[str, int]  # host -> requests posture's HTTP client sent (the only way out)

    def url(self, path: str) -> str:
        return f"{self.server.scheme}://{site.HOST}:{self.server.port}{path}"

    def key(self, href: str) -> str:
        return normalise_href(href if href.startswith("http") else self.url(href))

    @property
    def findings(self) -> dict[str, dict[str, Any]]:
        return {f.key: dict(f.evidence) for f in self.result.findings}

    @property
    def links(self) -> dict[str, dict[str, Any]]:
        return {x["key"]: x for x in self.result.observations["links"]}


def scan(
    routes: Any,
    settings: dict[str, Any] | None = None,
    limits: Limits | None = None,
    tls: ssl.SSLContext | None = None,
) -> Scan:
    with http_server({"*": Reply(200, "outside")}) as outside:
        routes = routes(f"http://127.0.0.1:{outside.port}") if callable(routes) else routes
        with http_server(routes, tls=tls) as srv:
            scheme = "https" if tls else "http"
            target = make_target(f"{scheme}://{site.HOST}:{srv.port}/", settings={"social": settings or {}})

            async def run() -> tuple[ProbeResult, float, dict[str, int]]:
                async with probe_context(target, limits=limits) as ctx:
                    started = time.monotonic()
                    result = await SocialProbe().run(target, ctx)
                    return result, time.monotonic() - started, dict(ctx.http.pins.requests)

            result, seconds, requests = asyncio.run(run())
            return Scan(result, srv, list(outside.seen), seconds, requests)


@pytest.fixture(scope="module")
def browser_scan() -> Scan:
    return scan(site.scenario_routes)


@pytest.fixture(scope="module")
def static_scan() -> Scan:
    return scan(site.scenario_routes, {"browser": False})


@pytest.fixture(autouse=True)
def no_browser_left_behind() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 3
    while site.chromium_descendants() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert site.chromium_descendants() == {}


# ---------------------------------------------------------------- browser mode


def test_browser_mode_judges_every_scenario(browser_scan: Scan) -> None:
    s = browser_scan
    assert s.result.status is RunStatus.OK, s.result.error
    assert s.result.observations["mode"] == "browser"
    assert set(s.findings) == {
        s.key(site.PLAIN), s.key(site.RENDERED), s.key(site.SUBPAGE), s.key(site.REDIRECT), s.key(site.POPUP),
        s.key(site.HIDDEN), s.key(site.COVERED)}
    links = s.links
    confirm = links[s.key(site.CONFIRM)]
    assert (confirm["verdict"], confirm["method"], confirm["seen"]) == ("warned", "browser", "dialog")
    assert confirm["detail"] == "confirm: 您即將離開本網站，前往 LINE 官方帳號"
    interstitial = links[s.key(site.INTERSTITIAL)]
    assert (interstitial["verdict"], interstitial["seen"]) == ("warned", "interstitial")
    assert interstitial["detail"].startswith(s.url(site.INTERSTITIAL)) and "您即將離開本網站" in interstitial["detail"]
    global_script = links[s.key(site.GLOBAL)]
    assert (global_script["verdict"], global_script["seen"]) == ("warned", "dialog")
    assert global_script["detail"] == "confirm: You are leaving our website for a third-party site. Continue?"
    modal = links[s.key(site.MODAL)]
    assert (modal["verdict"], modal["method"], modal["seen"]) == ("warned", "browser", "modal")
    assert "您即將離開本網站" in modal["detail"]
    known = links[s.key(site.KNOWN)]
    assert (known["verdict"], known["seen"]) == ("warned", "dialog")
    assert known["detail"].startswith("confirm: 即將連結至外部網站")


def test_browser_findings_evidence(browser_scan: Scan) -> None:
    s = browser_scan
    f = s.findings
    plain = f[s.key(site.PLAIN)]
    every_page = sorted(s.url(p) for p in ["/", *site.NAV, "/about/team"])
    assert plain["pages"] == every_page  # one finding for the footer link on every page
    assert plain["pages_with_warning"] == [s.url("/global")]  # the site script warns there
    assert plain["pages_without_warning"] == [p for p in every_page if p != s.url("/global")]
    assert (plain["platform"], plain["method"], plain["seen"]) == ("Facebook", "browser", "navigated")
    assert plain["detail"] == f"navigated directly to {site.PLAIN}"
    rendered = f[s.key(site.RENDERED)]
    assert (rendered["pages"], rendered["method"]) == ([s.url("/rendered")], "browser")
    assert f[s.key(site.SUBPAGE)]["pages"] == [s.url("/about/team")]
    redirect = f[s.key(site.REDIRECT)]
    assert redirect["destination"] == "https://www.tiktok.com/@posture"
    assert redirect["detail"].startswith("navigated directly to https://www.tiktok.com/@posture (redirected by")
    assert f[s.key(site.POPUP)]["platform"] == "LinkedIn"
    # A link in a collapsed menu (clicked from script) and a button under a cookie banner
    # (clicked through it with a real click, so its window.open is not blocked as a popup).
    assert f[s.key(site.HIDDEN)]["detail"] == f"navigated directly to {site.HIDDEN}"
    assert f[s.key(site.COVERED)]["detail"] == f"navigated directly to {site.COVERED}"
    assert f[s.key(site.COVERED)]["method"] == "browser"


def test_no_request_leaves_the_asset(browser_scan: Scan) -> None:
    s = browser_scan
    browser = s.result.observations["browser"]
    traffic = browser["traffic"]
    # The browser asked for the asset, the outside server and the platforms...
    assert {site.HOST, "127.0.0.1", "www.facebook.com", "t.me"} <= set(traffic["requested_hosts"])
    # ...but only the asset's requests were answered, all through posture's pinned client,
    # and the other local server (images, scripts, frames, fetch, WebSocket) saw nothing.
    assert traffic["served_hosts"] == [site.HOST]
    assert set(s.http_requests) == {site.HOST}
    assert s.outside == []
    blocked = {b["url"]: b["why"] for b in traffic["blocked"]}
    for path in ("/pixel.png", "/track.js", "/frame", "/beacon"):
        assert any(u.endswith(path) and u.startswith("http://127.0.0.1:") for u in blocked), path
    assert any(u.startswith("ws://127.0.0.1:") and why == "websocket" for u, why in blocked.items())
    for href in (site.PLAIN, site.RENDERED, site.SUBPAGE, site.POPUP, "https://www.facebook.com/tr?id=1"):
        assert blocked[href] == "off-host"
    assert blocked["https://www.tiktok.com/@posture"].startswith("off-host redirect from")
    # Only GETs reached the server; the crawl fetched each page once and the browser reused them.
    assert {x.method for x in s.server.seen} == {"GET"}
    assert traffic["fetched"] <= 4  # the two scripts, plus the redirector, cache misses only
    assert browser["pages_loaded"] == len(s.result.observations["pages"]) == 12


def test_pages_are_restored_without_reloading(browser_scan: Scan) -> None:
    browser = browser_scan.result.observations["browser"]
    # 12 pages, 23 clicks; only the interstitial click navigated the tab, so only it needed a reload
    # (the modal was closed by its cancel button, dialogs dismissed, off-host navigations refused).
    assert browser["clicks"] == 23
    assert browser["reloads"] == 1
    assert browser["hung_pages"] == [] and browser["page_errors"] == []


def test_https_site(authority: Authority, tmp_path: Path) -> None:
    # Real broker sites are HTTPS: the crawl speaks TLS to the pinned address; the browser is
    # served the same bytes, so it needs no certificate of its own (and verifies none).
    leaf = authority.leaf(site.HOST)
    cert, key = write_pair(tmp_path, "site", authority.chain_pem(leaf), leaf.key_pem)
    routes = {"/": site.page(f'<a href="{site.CONFIRM}" onclick="return confirm(\'您即將離開本網站\')">LINE</a>',
                             nav=False)}
    s = scan(routes, tls=server_context(cert, key))
    assert s.result.status is RunStatus.OK, s.result.error
    assert s.url("/").startswith("https://")
    assert set(s.findings) == {s.key(site.PLAIN)}
    assert s.links[s.key(site.CONFIRM)]["seen"] == "dialog"
    assert s.findings[s.key(site.PLAIN)]["pages"] == [s.url("/")]


# ---------------------------------------------------------------- static mode and its limits


def test_static_mode_shows_its_documented_limits(static_scan: Scan) -> None:
    s = static_scan
    assert s.result.status is RunStatus.OK
    assert s.result.observations["mode"] == "static-only"
    assert s.result.observations["mode_reason"] == "browser disabled by settings (browser = false)"
    assert "browser" not in s.result.observations
    # Right: plain, subpage, 302 redirector, popup, hidden and covered links are findings.
    # Wrong, as documented: the script-attached confirm (GLOBAL) and modal (MODAL) are invisible,
    # so those links are false positives; the script-rendered link (RENDERED) is not seen at all.
    assert set(s.findings) == {
        s.key(site.PLAIN), s.key(site.SUBPAGE), s.key(site.REDIRECT), s.key(site.POPUP), s.key(site.HIDDEN),
        s.key(site.COVERED), s.key(site.GLOBAL), s.key(site.MODAL)}
    assert s.key(site.RENDERED) not in s.links
    links = s.links
    assert (links[s.key(site.CONFIRM)]["verdict"], links[s.key(site.CONFIRM)]["seen"]) == ("warned", "inline_handler")
    assert links[s.key(site.KNOWN)]["detail"].startswith("inline handler calls leaveSite()")
    assert (links[s.key(site.INTERSTITIAL)]["verdict"], links[s.key(site.INTERSTITIAL)]["seen"]) == (
        "warned", "interstitial")
    for evidence in s.findings.values():
        assert evidence["method"] == "static" and "not visible" in evidence["note"]
    assert s.findings[s.key(site.PLAIN)]["pages_without_warning"] == s.findings[s.key(site.PLAIN)]["pages"]
    assert s.findings[s.key(site.REDIRECT)]["detail"].endswith("redirects straight to https://www.tiktok.com/@posture")
    assert s.outside == []


def test_both_modes_agree_on_keys(browser_scan: Scan, static_scan: Scan) -> None:
    shared = set(browser_scan.links) & {k.replace(f":{static_scan.server.port}", f":{browser_scan.server.port}")
                                        for k in static_scan.links}
    assert len(shared) == 11  # every link both can see, under the same key (RENDERED is browser-only)


# ---------------------------------------------------------------- speed


def test_thirty_page_site_within_a_minute() -> None:
    s = scan(site.bench_routes(30), limits=Limits(connect_timeout=2, request_deadline=5, probe_deadline=90))
    print(f"\nsocial probe, 30-page site: {s.seconds:.1f}s "
          f"(browser {s.result.observations['browser']['seconds']}s, "
          f"{s.result.observations['browser']['clicks']} clicks)")
    assert s.result.status is RunStatus.OK, s.result.error
    assert s.seconds < 60
    assert s.result.observations["crawl"]["pages"] == 30
    assert s.result.observations["browser"]["clicks"] == 180
    assert s.result.observations["browser"]["reloads"] == 0
    assert set(s.findings) == {"https://www.facebook.com/bench", "https://www.youtube.com/@bench", "https://x.com/bench"}
    assert all(len(e["pages"]) == 30 for e in s.findings.values())
    warned = {k for k, x in s.links.items() if x["verdict"] == "warned"}
    assert warned == {"https://line.me/R/ti/p/@bench", "https://www.instagram.com/bench",
                      "https://www.linkedin.com/company/bench"}


# ---------------------------------------------------------------- a browser that misbehaves


def test_hung_page_is_a_typed_error_keeping_what_was_judged() -> None:
    s = scan(site.hang_routes(), {"page_timeout": 3})
    r = s.result
    assert r.status is RunStatus.ERROR and r.error is not None
    assert r.error.kind is ErrorKind.TIMEOUT
    assert r.error.message == f"the browser hung on {s.url('/spin')}"
    assert r.observations["browser"]["hung_pages"] == [s.url("/spin")]
    assert r.observations["browser"]["pages_static_only"] == [s.url("/spin")]
    # The home page was judged in the browser before /spin hung; /spin's own links fall back to static.
    plain = s.findings[s.key(site.PLAIN)]
    assert plain["method"] == "browser" and plain["pages_without_warning"] == [s.url("/"), s.url("/spin")]
    assert s.seconds < 25


def test_browser_that_hangs_is_stopped_at_the_probe_deadline() -> None:
    limits = Limits(connect_timeout=2, request_deadline=5, probe_deadline=10)
    s = scan(site.hang_routes(), {"page_timeout": 60}, limits=limits)
    r = s.result
    assert r.error is not None and r.error.kind is ErrorKind.TIMEOUT
    assert r.error.message.startswith("social probe stopped at its 8s deadline")
    assert s.seconds < limits.probe_deadline
    assert r.observations["mode"] == "browser"


def test_browser_that_crashes_is_a_tool_error() -> None:
    requested = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        # Kill Chromium's whole process group while it waits for a slow script.
        if requested.wait(60):
            for pid in site.chromium_descendants():
                try:  # a helper process may exit between the listing and here
                    if os.getpgid(pid) == pid:
                        os.killpg(pid, signal.SIGKILL)
                        killed.append(pid)
                except ProcessLookupError:
                    continue

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    s = scan(site.slow_script_routes(5, requested))
    thread.join(5)
    assert killed
    r = s.result
    assert r.error is not None and r.error.kind is ErrorKind.TOOL
    assert "Chromium went away" in r.error.message
    assert s.seconds < 20


def fake_chromium(tmp_path: Path, script: str) -> str:
    # Where the unprivileged user the browser runs as (when tests run as root) can reach it.
    directory = Path(tempfile.mkdtemp(prefix="posture-fake-chromium-"))
    atexit.register(shutil.rmtree, directory, True)
    directory.chmod(0o755)
    path = directory / "chromium"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return str(path)


def test_missing_browser_falls_back_to_static(tmp_path: Path) -> None:
    s = scan(site.scenario_routes, {"chromium": str(tmp_path / "nowhere")})
    assert s.result.status is RunStatus.OK
    assert s.result.observations["mode"] == "static-only"
    assert s.result.observations["mode_reason"].startswith(f"no Chromium at {tmp_path / 'nowhere'}")
    assert s.key(site.GLOBAL) in s.findings  # static verdicts, limits and all


def test_required_browser_missing_is_a_tool_error(tmp_path: Path) -> None:
    s = scan(site.scenario_routes, {"chromium": str(tmp_path / "nowhere"), "browser": True})
    assert s.result.error is not None and s.result.error.kind is ErrorKind.TOOL


@pytest.mark.parametrize(("script", "why"), [("exit 3", "cannot launch Chromium"),
                                              ("exec sleep 987", "did not start within 2s")])
def test_browser_that_cannot_start_is_a_tool_error(tmp_path: Path, script: str, why: str) -> None:
    exe = fake_chromium(tmp_path, script)
    s = scan(site.scenario_routes, {"chromium": exe, "launch_timeout": 2})
    r = s.result
    assert r.error is not None and r.error.kind is ErrorKind.TOOL and why in r.error.message
    assert r.observations["mode"] == "static-only"
    assert r.observations["mode_reason"].startswith("browser failed to start")
    assert s.key(site.PLAIN) in s.findings  # what static reading found is kept
    assert s.seconds < 15
    assert not [c for c in site.descendants().values() if "sleep 987" in c]
