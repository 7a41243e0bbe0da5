"""The social probe's crawl: same-origin, breadth first, HTML only, bounded, against real local servers."""

from __future__ import annotations

import pytest

from probes.base import ConnectFailure, Limits
from probes.net.http import HttpExchange
from probes.net.web import decode_html
from probes.social.crawl import crawl, page_links, worth_fetching
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, closed_port, http_server

HOST = "www.crawl.test"


def html(*links: str, extra: str = "") -> Reply:
    return Reply(200, "<html><body>" + "".join(f'<a href="{h}">x</a>' for h in links) + extra + "</body></html>")


async def test_breadth_first_within_depth_and_origin() -> None:
    with http_server({"*": Reply(200, "<a href='/leak'>no</a>")}) as other, http_server({
        "/": html("/a", "/b#frag", f"http://127.0.0.1:{other.port}/", "https://www.crawl.test/other-scheme",
                  "mailto:ir@crawl.test", "javascript:void(0)"),
        "/a": html("/a/deep", "/"),
        "/b": html("/b/deep"),
        "/a/deep": html("/a/deeper"),
        "/b/deep": html(),
        "/a/deeper": html(),
    }) as srv:
        target = make_target(f"http://{HOST}:{srv.port}/")
        async with probe_context(target) as ctx:
            result = await crawl(target, ctx, max_pages=30, max_depth=2)
    base = f"http://{HOST}:{srv.port}"
    assert [(p.url, p.depth) for p in result.pages] == [
        (f"{base}/", 0), (f"{base}/a", 1), (f"{base}/b", 1), (f"{base}/a/deep", 2), (f"{base}/b/deep", 2)]
    assert other.seen == []  # another origin is never fetched
    assert sorted(s.path for s in srv.seen) == ["/", "/a", "/a/deep", "/b", "/b/deep"]
    assert all(s.method == "GET" for s in srv.seen)


async def test_page_limit_and_skip_predicate() -> None:
    routes = {"/": html(*(f"/p{i}" for i in range(10)), "/go?url=https://www.facebook.com/x")}
    routes.update({f"/p{i}": html() for i in range(10)})
    with http_server(routes) as srv:
        target = make_target(f"http://{HOST}:{srv.port}/")
        async with probe_context(target) as ctx:
            result = await crawl(target, ctx, max_pages=3, max_depth=2, skip=lambda u: "/go?" in u)
    assert [p.url.rsplit("/", 1)[1] for p in result.pages] == ["", "p0", "p1"]
    assert "/go?url=https://www.facebook.com/x" not in [s.path for s in srv.seen]


async def test_only_html_is_kept_and_binaries_are_not_fetched() -> None:
    with http_server({
        "/": html("/report.pdf", "/feed", "/missing", "/moved"),
        "/report.pdf": Reply(200, b"%PDF", content_type="application/pdf"),
        "/feed": Reply(200, "not html", content_type="text/plain"),
        "/moved": Reply(301, "", headers={"Location": "https://elsewhere.test/"}),
    }) as srv:
        target = make_target(f"http://{HOST}:{srv.port}/")
        async with probe_context(target) as ctx:
            result = await crawl(target, ctx, max_pages=30, max_depth=2)
    assert [p.url for p in result.pages] == [f"http://{HOST}:{srv.port}/"]
    assert "/report.pdf" not in [s.path for s in srv.seen]
    assert result.skipped_non_html == 1
    assert result.errors == [{"url": f"http://{HOST}:{srv.port}/missing", "error": "HTTP 404"}]
    assert result.off_host_redirects == [f"http://{HOST}:{srv.port}/moved -> https://elsewhere.test/"]


async def test_frames_and_meta_refresh_are_followed_and_redirects_in_host() -> None:
    with http_server({
        "/": Reply(200, '<meta http-equiv="refresh" content="0; url=/home">'),
        "/home": Reply(302, "", headers={"Location": "/home/"}),
        "/home/": Reply(200, '<frameset><frame src="menu.html"><frame src="main.html"></frameset>'),
        "/home/menu.html": html(),
        "/home/main.html": html(),
    }) as srv:
        target = make_target(f"http://{HOST}:{srv.port}/")
        async with probe_context(target) as ctx:
            result = await crawl(target, ctx, max_pages=30, max_depth=3)
    assert [p.url.split(str(srv.port))[1] for p in result.pages] == [
        "/", "/home/", "/home/menu.html", "/home/main.html"]


async def test_budget_stops_the_crawl() -> None:
    routes = {"/": html(*(f"/p{i}" for i in range(10)))}
    routes.update({f"/p{i}": html() for i in range(10)})
    with http_server(routes) as srv:
        target = make_target(f"http://{HOST}:{srv.port}/")
        async with probe_context(target, limits=Limits(host_budget=4, per_host_concurrency=2)) as ctx:
            result = await crawl(target, ctx, max_pages=30, max_depth=2)
    assert result.budget_exhausted
    assert len(result.pages) == 4
    assert len(srv.seen) == 4


async def test_unreachable_start_page_raises() -> None:
    target = make_target(f"http://{HOST}:{closed_port()}/")
    async with probe_context(target) as ctx:
        with pytest.raises(ConnectFailure):
            await crawl(target, ctx, max_pages=30, max_depth=2)


def test_page_links() -> None:
    doc = """<html><head><base href="/tw/"></head><body>
      <a href="news.html#x">n</a><area href="/map"><iframe src="//www.crawl.test/ad"></iframe>
      <a href="tel:123">t</a><a href="#top">top</a><a href=" news.html ">dup</a></body></html>"""
    assert page_links(doc, "https://www.crawl.test/index.html") == [
        "https://www.crawl.test/tw/news.html", "https://www.crawl.test/map", "https://www.crawl.test/ad"]


@pytest.mark.parametrize(
    ("url", "worth"),
    [("https://a.test/", True), ("https://a.test/news", True), ("https://a.test/x.aspx?id=1", True),
     ("https://a.test/v1.2/page", True), ("https://a.test/f.PDF", False), ("https://a.test/logo.png", False)],
)
def test_worth_fetching(url: str, worth: bool) -> None:
    assert worth_fetching(url) is worth


def test_decode_html_uses_meta_charset_when_the_header_has_none() -> None:
    body = '<meta charset="big5"><p>您即將離開本網站</p>'.encode("big5")
    ex = HttpExchange("GET", "https://a.test/", "/", "127.0.0.1", 200, "OK", "HTTP/1.1",
                      (("content-type", "text/html"),), body, False, 0.0)
    assert "您即將離開本網站" in decode_html(ex)
    body = "<p>外部網站</p>".encode("big5")
    declared = HttpExchange("GET", "https://a.test/", "/", "127.0.0.1", 200, "OK", "HTTP/1.1",
                            (("content-type", "text/html; charset=big5"),), body, False, 0.0)
    assert "外部網站" in decode_html(declared)


async def test_origin_is_where_the_start_page_landed() -> None:
    # An http:// asset that redirects to its https:// twin is crawled there (here: another port).
    with http_server({"/": html("/a"), "/a": html()}) as landed:
        routes = {"/": Reply(301, "", headers={"Location": f"http://{HOST}:{landed.port}/"})}
        with http_server(routes) as start:
            target = make_target(f"http://{HOST}:{start.port}/")
            async with probe_context(target) as ctx:
                result = await crawl(target, ctx, max_pages=30, max_depth=2)
    assert [p.url for p in result.pages] == [f"http://{HOST}:{landed.port}/", f"http://{HOST}:{landed.port}/a"]
