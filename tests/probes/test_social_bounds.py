"""The browser is bounded: a page that allocates forever ends as a probe error, in bounded time and memory.

Real Chromium (Debian's) through Playwright, as the probe starts it: through
probes.social.launch's wrapper (unprivileged user when root, sandbox on, data-segment
cap, V8 heap cap, death with its parent).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from probes.base import ErrorKind, RunStatus
from tests.probes.test_social_browser import scan
from tests.support import social_site as site

pytestmark = pytest.mark.slow

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

ALLOCATORS = {
    "js-heap": "var keep = []; for (;;) { keep.push(new Array(1e6).fill(Math.random())); }",
    # Refused allocations are retried smaller, for ever: the page never gives up.
    "array-buffers": ("var keep = [], n = 64 << 20; for (;;) { try { var b = new Uint8Array(n); b.fill(7); "
                      "keep.push(b); } catch (e) { n = Math.max(4096, n >> 1); } }"),
    "strings": ("var keep = [], s = 'x'; for (;;) { try { s = s + s + Math.random(); keep.push(s); } "
                "catch (e) { s = 'x' + Math.random(); } }"),
}


class Watch:
    """The largest resident size of any Chromium process, and what the sandbox looked like."""

    def __init__(self) -> None:
        self.peak = 0
        self.sandboxed: set[bool] = set()
        self.users: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        own_ns = os.readlink("/proc/self/ns/user")
        while not self.stop.wait(0.05):
            for pid, cmd in site.chromium_descendants().items():
                try:
                    rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
                    # Only Chromium itself: the launch wrapper and setpriv run as root for the
                    # moment before setpriv drops to the browser's user and execs it.
                    if "chromium" in os.path.basename(os.readlink(f"/proc/{pid}/exe")):
                        self.users.add(os.stat(f"/proc/{pid}").st_uid)
                    if "--type=renderer" in cmd:
                        self.sandboxed.add(os.readlink(f"/proc/{pid}/ns/user") != own_ns)
                except OSError:
                    continue
                self.peak = max(self.peak, rss)

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.mark.parametrize("script", sorted(ALLOCATORS))
def test_a_page_that_allocates_forever_is_an_error_in_bounded_time_and_memory(script: str) -> None:
    routes = {
        "/": site.page('<a href="/hog">hog</a>', nav=False),
        "/hog": site.page(f"<script>{ALLOCATORS[script]}</script>", nav=False),
    }
    started = time.monotonic()
    with Watch() as watch:
        s = scan(routes, {"page_timeout": 20})
    seconds = time.monotonic() - started
    r = s.result
    assert r.status is RunStatus.ERROR and r.error is not None, r.observations.get("browser")
    assert r.error.kind in (ErrorKind.TOOL, ErrorKind.TIMEOUT), r.error
    # the renderer crashed or hung on /hog, or (a loaded machine) the probe's own deadline came first
    assert s.url("/hog") in r.error.message or "deadline" in r.error.message, r.error
    assert s.url("/") in r.observations["browser"].get("pages_static_only", []) or \
        r.observations["browser"]["pages_loaded"] >= 1
    assert seconds < 60
    assert watch.peak < 2300 << 20, f"a Chromium process reached {watch.peak >> 20} MiB"
    launch = r.observations["browser"]["launch"]
    assert launch["memory_bounded"] is True
    if os.geteuid() == 0:
        assert launch["user"] == "nobody" and watch.users and 0 not in watch.users, watch.users
    if launch["sandbox"] == "on":
        assert watch.sandboxed == {True}, "a renderer ran outside Chromium's namespace sandbox"


def test_the_browser_runs_sandboxed_and_unprivileged_on_an_ordinary_page() -> None:
    with Watch() as watch:
        s = scan(site.scenario_routes)
    r = s.result
    assert r.status is RunStatus.OK, r.error
    launch = r.observations["browser"]["launch"]
    assert launch["sandbox"] == "on", launch
    assert watch.sandboxed == {True}
    if os.geteuid() == 0:
        assert watch.users and 0 not in watch.users, watch.users
