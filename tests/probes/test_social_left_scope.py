"""A page that sends the browser off the asset by itself: refused, said so, never taken for a hang.

Debian's Chromium via Playwright against real local servers; a second server stands for the
place the page wants to go and must never see a request. A page whose script navigates the
top-level frame away while it loads (``location.href = ...``) cannot be judged in the browser:
posture stops waiting at once, its links keep their static verdicts, ``browser.left_scope``
says where it went, and the run is a ``scope`` error carrying every verdict (not ``ok``:
links the browser would have seen on that page were not looked at). A page that tries to
leave after it loaded (meta refresh, onload) stays put and is judged in the browser.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from probes.base import ErrorKind, ProbeResult, RunStatus
from probes.social.probe import SocialProbe
from tests.support import social_site as site
from tests.support.certs import Authority, write_pair
from tests.support.context import make_target, probe_context
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, Running, Seen, http_server, server_context

pytestmark = pytest.mark.slow

HOST = "www.left.test"
PAGE_TIMEOUT = 15.0  # the default [social] page_timeout: what a page taken for hung costs
FAST = PAGE_TIMEOUT / 3  # the browser's judging (launch aside) when nothing is waited for in vain


@dataclass
class Scan:
    result: ProbeResult
    server: Running
    outside: list[Seen]
    seconds: float
    off: str  # the outside server's origin

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.server.port}{path}"

    @property
    def browser(self) -> dict[str, Any]:
        return dict(self.result.observations["browser"])

    def assert_fast(self) -> None:
        # Judging time, launch aside: a launch alone takes seconds on a loaded machine.
        print(f"\nprobe {self.seconds:.1f}s, browser judging {self.browser['seconds']}s")
        assert self.browser["seconds"] < FAST

    @property
    def findings(self) -> dict[str, dict[str, Any]]:
        return {f.key: dict(f.evidence) for f in self.result.findings}

    @property
    def links(self) -> dict[str, dict[str, Any]]:
        return {x["key"]: x for x in self.result.observations["links"]}


def html(body: str, head: str = "") -> Reply:
    return Reply(200, f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>")


def scan(routes: Callable[[str], dict[str, Reply]]) -> Scan:
    with http_server({"*": Reply(200, "outside")}) as outside:
        off = f"http://127.0.0.1:{outside.port}"
        with http_server(dict(routes(off))) as srv:
            target = make_target(f"http://{HOST}:{srv.port}/", settings={"social": {"page_timeout": PAGE_TIMEOUT}})

            async def run() -> tuple[ProbeResult, float]:
                async with probe_context(target) as ctx:
                    started = time.monotonic()
                    result = await SocialProbe().run(target, ctx)
                    return result, time.monotonic() - started

            result, seconds = asyncio.run(run())
            return Scan(result, srv, list(outside.seen), seconds, off)


@pytest.fixture(autouse=True)
def no_browser_left_behind() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 3
    while site.chromium_descendants() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert site.chromium_descendants() == {}


def test_page_leaving_by_script_while_it_loads_is_judged_from_its_html_at_once() -> None:
    def routes(off: str) -> dict[str, Reply]:
        return {
            "/": html('<a href="/away">away</a> <a href="/early">early</a> '
                      '<a href="https://www.facebook.com/left.home">Facebook</a>'),
            # The script runs mid-body: the browser's copy of the page stops there.
            "/away": html(f'<a href="https://www.instagram.com/left.away">IG</a>'
                          f'<script>location.href = "{off}/landing";</script>'
                          '<a href="https://x.com/left_after">X</a>'),
            # In <head>: the browser never sees a single link of this page.
            "/early": html('<a href="https://line.me/R/ti/p/@left">LINE</a>',
                           head=f'<script>location.replace("{off}/early");</script>'),
        }

    s = scan(routes)
    assert s.outside == []  # nothing reached the place the pages wanted to go
    s.assert_fast()  # taken for hung, each page cost PAGE_TIMEOUT
    browser = s.browser
    assert browser["hung_pages"] == [] and browser["page_errors"] == []
    assert browser["left_scope"] == [
        {"page": s.url("/away"), "to": f"{s.off}/landing", "how": "script", "judged": "static"},
        {"page": s.url("/early"), "to": f"{s.off}/early", "how": "script", "judged": "static"},
    ]
    assert browser["pages_static_only"] == [s.url("/away"), s.url("/early")]
    assert browser["pages_loaded"] == 1  # the home page, judged in the browser
    blocked = {b["url"]: b["why"] for b in browser["traffic"]["blocked"]}
    assert blocked[f"{s.off}/landing"] == blocked[f"{s.off}/early"] == "off-host"
    # Every link of the pages that left is judged from their HTML, the one after the script too.
    f = s.findings
    assert f["https://www.facebook.com/left.home"]["method"] == "browser"
    for key, page in (("https://www.instagram.com/left.away", "/away"), ("https://x.com/left_after", "/away"),
                      ("https://line.me/R/ti/p/@left", "/early")):
        assert (f[key]["method"], f[key]["pages"]) == ("static", [s.url(page)]), key
    # Not ok: what the browser would have seen on those pages (links written by their scripts,
    # warnings their scripts attach) was not looked at, so nothing may be taken as fixed from them.
    r = s.result
    assert r.status is RunStatus.ERROR and r.error is not None
    assert r.error.kind is ErrorKind.SCOPE
    assert r.error.message == (
        "partial result: 2 pages left the asset by script while they loaded; the browser does not follow them: "
        f"their links were judged from the HTML only ({s.url('/away')} (to {s.off}/landing), "
        f"{s.url('/early')} (to {s.off}/early))")


def test_page_leaving_after_it_loaded_stays_and_is_judged_in_the_browser() -> None:
    def routes(off: str) -> dict[str, Reply]:
        return {
            "/": html('<a href="/refresh">refresh</a> <a href="/onload">onload</a>'),
            "/refresh": html('<a href="https://www.instagram.com/left.refresh">IG</a>',
                             head=f'<meta http-equiv="refresh" content="0; url={off}/refreshed">'),
            "/onload": html('<a href="https://x.com/left_onload">X</a>'
                            f'<script>window.onload = function () {{ location.href = "{off}/loaded"; }};</script>'),
        }

    s = scan(routes)
    assert s.outside == []
    s.assert_fast()
    r = s.result
    assert r.status is RunStatus.OK, r.error
    browser = s.browser
    assert browser["hung_pages"] == [] and browser["pages_static_only"] == []
    assert browser["left_scope"] == [
        {"page": s.url("/refresh"), "to": f"{s.off}/refreshed", "how": "refresh", "judged": "browser"},
        {"page": s.url("/onload"), "to": f"{s.off}/loaded", "how": "script", "judged": "browser"},
    ]
    # The refused navigation left each page as it was: its links were clicked.
    for key in ("https://www.instagram.com/left.refresh", "https://x.com/left_onload"):
        assert (s.findings[key]["method"], s.findings[key]["seen"]) == ("browser", "navigated"), key
        assert s.findings[key]["detail"] == f"navigated directly to {key}"


def test_click_that_sends_the_page_off_the_asset_by_script_is_a_verdict_at_once() -> None:
    def routes(off: str) -> dict[str, Reply]:
        return {
            "/": html(f'<a href="https://www.facebook.com/left.click" '
                      f'onclick="location.href = \'{off}/clicked\'; return false;">Facebook</a> '
                      # Through a same-origin page that leaves by script as it loads (no notice).
                      '<a href="https://line.me/R/ti/p/@hop" '
                      'onclick="location.href = \'/hop\'; return false;">LINE</a>'),
            "/hop": html(f'<script>location.href = "{off}/hopped";</script>'),
        }

    s = scan(routes)
    assert s.outside == []
    s.assert_fast()
    r = s.result
    assert r.status is RunStatus.OK, r.error
    browser = s.browser
    assert browser["hung_pages"] == [] and browser["page_errors"] == [] and browser["left_scope"] == []
    assert browser["clicks"] == 2
    f = s.findings
    assert (f["https://www.facebook.com/left.click"]["method"], f["https://www.facebook.com/left.click"]["detail"]) == (
        "browser", f"navigated directly to {s.off}/clicked")
    assert f["https://line.me/R/ti/p/@hop"]["detail"] == f"navigated directly to {s.off}/hopped via {s.url('/hop')}"


# ---------------------------------------------------------------- the auditor's case, end to end


ASSET = "127.0.13.1"
OTHER = "127.0.13.2"


def test_cli_scan_of_a_site_leaving_by_script(authority: Authority, ca_bundle: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # HTTPS, names from a real DNS server: js.test's home page leaves for other.test by script,
    # meta.test's by a meta refresh; other.test really answers, so a request that got out would show.
    leaf = authority.leaf("js.test", "meta.test", "other.test")
    cert, key = write_pair(tmp_path, "site", authority.chain_pem(leaf), leaf.key_pem)
    tls = server_context(cert, key)
    fb = '<a href="https://www.facebook.com/x">fb</a>'
    dns = DnsServer({"js.test": ASSET, "meta.test": ASSET, "other.test": OTHER}).start()
    try:
        with http_server({"*": Reply(200, "<html><body>other</body></html>")}, host=OTHER, tls=tls) as other:
            landing = f"https://other.test:{other.port}/landing"

            def home(seen: Seen) -> Reply:
                if seen.headers.get("host", "").startswith("meta.test"):
                    return html(fb, head=f'<meta http-equiv="refresh" content="0; url={landing}">')
                return html(f'<script>location.href="{landing}"</script>{fb}')

            with http_server({"/": home}, host=ASSET, tls=tls) as srv:
                cfg = tmp_path / "posture.toml"
                cfg.write_text(f"""
[agent]
resolver = "{dns.address}"
allow_addresses = ["127.0.0.0/8"]
ca_bundle = "{ca_bundle}"
processes = 1

[social]
browser = true

[[assets]]
name = "js"
url = "https://js.test:{srv.port}/"

[[assets]]
name = "meta"
url = "https://meta.test:{srv.port}/"
""")
                started = time.monotonic()
                rc = main(["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'posture.db'}",
                           "scan", "--probe", "social", "--format", "json"])
                seconds = time.monotonic() - started
                out, err = capsys.readouterr()
            assert other.seen == []
    finally:
        dns.stop()
    print(f"\ntwo assets, social only: {seconds:.1f}s")
    scans = {s["target"]: s for s in json.loads(out)["scans"]}
    js, meta = scans[f"https://js.test:{srv.port}/"], scans[f"https://meta.test:{srv.port}/"]

    social = js["observations"]["social"]
    browser = social["browser"]
    assert browser["hung_pages"] == [] and browser["page_errors"] == []
    assert browser["seconds"] < FAST  # the old hang alone cost PAGE_TIMEOUT
    assert browser["left_scope"] == [{"page": f"https://js.test:{srv.port}/", "to": landing, "how": "script",
                                      "judged": "static"}]
    assert browser["traffic"]["blocked"] == [{"url": landing, "why": "off-host"}]
    assert [(x["key"], x["method"]) for x in social["links"]] == [("https://www.facebook.com/x", "static")]
    errors = [e for e in js["errors"] if e["probe"] == "social"]
    assert [e["kind"] for e in errors] == ["scope"], js["errors"]
    assert errors[0]["error"] == (f"partial result: https://js.test:{srv.port}/ left the asset by script while it "
                                  f"loaded (to {landing}); the browser does not follow it: its links were judged "
                                  "from the HTML only")
    # social was the only probe asked for and it could not look at everything: not complete.
    assert js["status"] == "failed" and rc == 1, err

    meta_browser = meta["observations"]["social"]["browser"]
    assert meta["status"] == "partial"  # ok, and the other probes were not asked for
    assert meta_browser["left_scope"] == [{"page": f"https://meta.test:{srv.port}/", "to": landing,
                                           "how": "refresh", "judged": "browser"}]
    assert [(x["key"], x["method"]) for x in meta["observations"]["social"]["links"]] == [
        ("https://www.facebook.com/x", "browser")]
