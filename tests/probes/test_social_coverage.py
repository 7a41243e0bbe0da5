"""The social probe speaks only for pages it saw: against real local HTTP servers, static mode.

A run that could not read the start page, or some crawled pages, is an error carrying what
was judged; a start page that answers but is no HTML page of the asset leaves nothing to
judge and the run is skipped, saying why. None of them is OK: storage would otherwise take
the links of pages never seen as fixed.
"""

from __future__ import annotations

import threading

from probes.base import ErrorKind, Limits, ProbeResult, RunStatus
from probes.social.probe import SocialProbe
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, Route, Running, Seen, http_server

HOST = "www.coverage.test"
FACEBOOK = "https://www.facebook.com/coverage"


def page(*links: str) -> Reply:
    return Reply(200, "<html><body>" + "".join(f'<a href="{h}">x</a>' for h in links) + "</body></html>")


async def scan(srv: Running, limits: Limits | None = None) -> ProbeResult:
    target = make_target(f"http://{HOST}:{srv.port}/", settings={"social": {"browser": False}})
    async with probe_context(target, limits=limits) as ctx:
        return await SocialProbe().run(target, ctx)


async def test_a_start_page_answering_503_is_an_error_judging_nothing() -> None:
    with http_server({"*": Reply(503, "<h1>Service Unavailable</h1>")}) as srv:
        result = await scan(srv)
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.PROTOCOL
    assert result.error.message == f"the start page http://{HOST}:{srv.port}/ answered HTTP 503; no page judged"
    assert result.findings == ()
    assert result.observations["crawl"]["pages"] == 0


async def test_a_start_page_that_is_not_html_leaves_nothing_to_judge() -> None:
    with http_server({"/": Reply(200, '{"status": "ok"}', content_type="application/json")}) as srv:
        result = await scan(srv)
    assert result.status is RunStatus.SKIPPED
    assert result.skip_reason == (f"nothing to judge: the start page http://{HOST}:{srv.port}/ answered, "
                                  "but it is application/json, not HTML")


async def test_a_start_page_that_redirects_away_leaves_nothing_to_judge() -> None:
    with http_server({"/": Reply(302, "", headers={"Location": "https://www.elsewhere.test/"})}) as srv:
        result = await scan(srv)
    assert result.status is RunStatus.SKIPPED
    assert "redirects to https://www.elsewhere.test/, outside the asset" in (result.skip_reason or "")


async def test_pages_that_could_not_be_read_make_an_error_that_keeps_what_was_judged() -> None:
    release = threading.Event()

    def slow(seen: Seen) -> Reply:
        release.wait(30)  # answered only after the client gave up
        return page()

    routes: dict[str, Route] = {
        "/": page("/news", "/down", "/slow", "/gone", f"{FACEBOOK}/home"),
        "/news": page(FACEBOOK),
        "/down": Reply(500, "<h1>Internal Server Error</h1>"),
        "/slow": slow,
        "/gone": Reply(404, "<h1>Not Found</h1>"),  # a missing page is an answer: nothing on it to see
    }
    try:
        with http_server(routes) as srv:
            result = await scan(srv, Limits(connect_timeout=2.0, request_deadline=3.0, probe_deadline=30.0))
    finally:
        release.set()
    base = f"http://{HOST}:{srv.port}"
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.message.startswith("partial result: 2 of 4 pages could not be read (")
    assert f"{base}/down: HTTP 500" in result.error.message
    assert f"{base}/slow: GET {base}/slow took longer than 3s" in result.error.message
    assert result.error.kind is ErrorKind.PROTOCOL  # the first page that failed, in crawl order
    assert {f.key for f in result.findings} == {FACEBOOK, f"{FACEBOOK}/home"}  # judged pages still count
    assert sorted(result.observations["crawl"]["unread"]) == [f"{base}/down", f"{base}/slow"]

