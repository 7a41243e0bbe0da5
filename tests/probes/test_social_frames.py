"""Social links inside frames, and pages the browser cannot load: Debian's Chromium against real local servers.

A widget often puts its links in an ``<iframe>`` its script inserts, or in one given its
document by ``srcdoc``: the crawl never fetches such a frame as a page, so only the browser
sees those links, and it must look into every frame of the asset (never into one of
another origin, which the browser's request routing refuses). A page the browser cannot
load at all (here: served as a download) keeps its static verdicts, and the run says so
instead of passing for complete.
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
from tests.support.context import make_target, probe_context
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, Route, Running, Seen, http_server

pytestmark = pytest.mark.slow

HOST = "www.frames.test"
WIDGET = "https://www.facebook.com/frames.widget"  # in an iframe a script inserts, no warning
NESTED = "https://www.threads.net/@frames.nested"  # in a srcdoc frame inside that one, no warning
SRCDOC = "https://www.instagram.com/frames.srcdoc"  # in a srcdoc frame of the page, no warning
WARNED = "https://line.me/R/ti/p/@frames"  # in the same srcdoc frame, with an inline confirm()
BLANK = "https://x.com/frames_blank"  # in an about:blank frame a script fills; it navigates the frame itself
OFF_SCOPE = "https://www.youtube.com/@frames.outside"  # what the other origin's frame would show


@dataclass
class Scan:
    result: ProbeResult
    server: Running
    outside: list[Seen]
    off: str  # the other origin

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.server.port}{path}"

    @property
    def browser(self) -> dict[str, Any]:
        return dict(self.result.observations["browser"])

    @property
    def findings(self) -> dict[str, dict[str, Any]]:
        return {f.key: dict(f.evidence) for f in self.result.findings}

    @property
    def links(self) -> dict[str, dict[str, Any]]:
        return {x["key"]: x for x in self.result.observations["links"]}


def html(body: str, head: str = "") -> Reply:
    return Reply(200, f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>")


def srcdoc(markup: str) -> str:
    return markup.replace("&", "&amp;").replace('"', "&quot;")


def frame_routes(off: str) -> dict[str, Route]:
    """A home page whose social links all sit in frames; ``off`` is another origin it frames too."""
    # Handlers that act on a visitor's click only (event.isTrusted): the probe's click must be a
    # real one, landing in the frame through the scrolled page and every frame around it.
    inner = f'<a href="{NESTED}" target="_top" onclick="return event.isTrusted">Threads</a>'
    widget = html(f'<a href="{WIDGET}" target="_top">Facebook</a>'
                  f'<iframe srcdoc="{srcdoc(inner)}" width="300" height="60"></iframe>')
    own = (f'<a href="{SRCDOC}" target="_top">Instagram</a> '
           f'<a href="{WARNED}" target="_top" onclick="return event.isTrusted && confirm(\'您即將離開本網站\')">'
           'LINE</a>')
    script = f"""
      var w = document.createElement('iframe');
      w.src = '/widget.html'; w.width = 500; w.height = 200;
      document.getElementById('slot').appendChild(w);
      var b = document.createElement('iframe');
      b.width = 400; b.height = 60;
      document.getElementById('slot').appendChild(b);
      b.contentDocument.body.innerHTML = '<a href="{BLANK}">X</a>';
    """
    return {
        # The frames sit below the fold: a click in them needs the page scrolled first.
        "/": html('<h1>Example Securities</h1><div style="height: 1500px">news</div><div id="slot"></div>'
                  f'<script>{script}</script>'
                  f'<iframe srcdoc="{srcdoc(own)}" width="400" height="60"></iframe>'
                  f'<iframe src="{off}/ad.html" width="300" height="60"></iframe>'),
        "/widget.html": widget,
    }


def scan(routes: Callable[[str], dict[str, Route]]) -> Scan:
    with http_server({"*": Reply(200, f'<a href="{OFF_SCOPE}" target="_top">YouTube</a>')}) as outside:
        off = f"http://127.0.0.1:{outside.port}"
        with http_server(routes(off)) as srv:
            target = make_target(f"http://{HOST}:{srv.port}/")

            async def run() -> ProbeResult:
                async with probe_context(target) as ctx:
                    return await SocialProbe().run(target, ctx)

            result = asyncio.run(run())
            return Scan(result, srv, list(outside.seen), off)


@pytest.fixture(autouse=True)
def no_browser_left_behind() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 3
    while site.chromium_descendants() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert site.chromium_descendants() == {}


def test_links_in_frames_of_the_asset_are_scanned_and_clicked() -> None:
    s = scan(frame_routes)
    r = s.result
    assert r.status is RunStatus.OK, r.error
    assert r.observations["pages"] == [s.url("/")]  # the crawl never saw the widget: only the browser did
    f = s.findings
    assert set(f) == {WIDGET, NESTED, SRCDOC, BLANK}
    for key in (WIDGET, NESTED, SRCDOC):
        assert (f[key]["method"], f[key]["seen"]) == ("browser", "navigated"), key
        assert f[key]["detail"] == f"navigated directly to {key}", key
    # The about:blank frame's link navigates that frame, not the tab: leaving all the same.
    assert (f[BLANK]["method"], f[BLANK]["detail"]) == ("browser", f"navigated directly to {BLANK}")
    # Each finding names the frame it was found in.
    home = s.url("/")
    assert f[WIDGET]["frames"] == [{"page": home, "frame": s.url("/widget.html")}]
    assert f[NESTED]["frames"] == f[SRCDOC]["frames"] == [{"page": home, "frame": "about:srcdoc"}]
    assert f[BLANK]["frames"] == [{"page": home, "frame": "about:blank"}]
    warned = s.links[WARNED]
    assert (warned["verdict"], warned["method"], warned["seen"]) == ("warned", "browser", "dialog")
    assert warned["detail"] == "confirm: 您即將離開本網站"
    assert warned["frames"] == [{"page": home, "frame": "about:srcdoc"}]
    browser = s.browser
    assert browser["clicks"] == 5
    assert sorted(x["frame"] for x in browser["frames"]) == sorted(
        [s.url("/widget.html"), "about:srcdoc", "about:srcdoc", "about:blank"])
    # The other origin's frame was refused, never fetched, never looked into.
    assert s.outside == []
    assert OFF_SCOPE not in s.links
    blocked = {b["url"]: b["why"] for b in browser["traffic"]["blocked"]}
    assert blocked[f"{s.off}/ad.html"] == "off-host"


def test_page_the_browser_cannot_load_is_an_error_keeping_its_static_verdicts() -> None:
    def routes(off: str) -> dict[str, Route]:
        return {
            "/": html('<a href="/report">report</a> <a href="https://www.facebook.com/frames.home">Facebook</a>'),
            # HTML to the crawl, a download to the browser: the page never shows.
            "/report": Reply(200, "<!doctype html><html><body>"
                                  '<a href="https://www.instagram.com/frames.report">Instagram</a></body></html>',
                             headers={"Content-Disposition": 'attachment; filename="report.html"'}),
        }

    s = scan(routes)
    r = s.result
    report = s.url("/report")
    browser = s.browser
    assert browser["pages_loaded"] == 1
    assert [x["page"] for x in browser["failed_pages"]] == [report]
    why = browser["failed_pages"][0]["why"]
    assert "Download is starting" in why
    assert browser["pages_static_only"] == [report]
    # Every verdict is kept: the home page's from the browser, the failed page's from its HTML...
    f = s.findings
    assert f["https://www.facebook.com/frames.home"]["method"] == "browser"
    assert (f["https://www.instagram.com/frames.report"]["method"],
            f["https://www.instagram.com/frames.report"]["pages"]) == ("static", [report])
    # ...but the run is not ok: what the browser would have shown there was not looked at.
    assert r.status is RunStatus.ERROR and r.error is not None
    assert r.error.kind is ErrorKind.PROTOCOL
    assert r.error.message == (f"partial result: the browser could not load {report} ({why}); "
                               "its links were judged from the HTML only")


# ---------------------------------------------------------------- end to end, names from a real DNS server


ASSET = "127.0.14.1"
OTHER = "127.0.14.2"


def test_cli_scan_of_framed_links_and_a_page_that_will_not_load(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # frames.test frames other.test, which really answers (with a social link): a request that got
    # out, or a look into its frame, would show. dl.test links a page served as a download.
    dns = DnsServer({"frames.test": ASSET, "dl.test": ASSET, "other.test": OTHER}).start()
    try:
        with http_server({"*": Reply(200, f'<a href="{OFF_SCOPE}" target="_top">YouTube</a>')}, host=OTHER) as other:
            framed = frame_routes(f"http://other.test:{other.port}")
            download = Reply(200, '<a href="https://www.instagram.com/dl">Instagram</a>',
                             headers={"Content-Disposition": "attachment"})

            def home(seen: Seen) -> Reply:
                if seen.headers.get("host", "").startswith("dl.test"):
                    return html('<a href="/report">report</a>')
                reply = framed["/"]
                assert isinstance(reply, Reply)
                return reply

            with http_server({"/": home, "/widget.html": framed["/widget.html"], "/report": download},
                             host=ASSET) as srv:
                cfg = tmp_path / "posture.toml"
                cfg.write_text(f"""
[agent]
resolver = "{dns.address}"
allow_addresses = ["127.0.0.0/8"]
processes = 1

[social]
browser = true

[[assets]]
name = "frames"
url = "http://frames.test:{srv.port}/"

[[assets]]
name = "dl"
url = "http://dl.test:{srv.port}/"
""")
                rc = main(["--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'posture.db'}",
                           "scan", "--probe", "social", "--format", "json"])
                out, err = capsys.readouterr()
            assert other.seen == []
    finally:
        dns.stop()
    scans = {s["target"]: s for s in json.loads(out)["scans"]}
    framed_scan, dl = scans[f"http://frames.test:{srv.port}/"], scans[f"http://dl.test:{srv.port}/"]

    social = framed_scan["observations"]["social"]
    assert framed_scan["status"] == "partial", framed_scan["errors"]  # ok; the other probes were not asked for
    assert {(x["key"], x["verdict"], x["method"]) for x in social["links"]} == {
        (WIDGET, "no_warning", "browser"), (NESTED, "no_warning", "browser"), (SRCDOC, "no_warning", "browser"),
        (BLANK, "no_warning", "browser"), (WARNED, "warned", "browser")}

    report = f"http://dl.test:{srv.port}/report"
    errors = [e for e in dl["errors"] if e["probe"] == "social"]
    assert [e["kind"] for e in errors] == ["protocol"], dl["errors"]
    assert errors[0]["error"].startswith(f"partial result: the browser could not load {report} (")
    assert [(x["key"], x["method"]) for x in dl["observations"]["social"]["links"]] == [
        ("https://www.instagram.com/dl", "static")]
    assert dl["status"] == "failed" and rc == 1, err
