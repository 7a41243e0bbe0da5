"""The leak probe's normal pages judged as served: a page that is itself an error page is a finding,
and hides nothing; only a 2xx/3xx page's content (a quoted trace, a quoted database error) is normal.

Real local HTTP servers (tests.support.servers) on 127.0.6.61, then the rules on the judge alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from probes.base import ProbeResult, RunStatus
from probes.leak.judge import Observed, judge
from probes.leak.probe import LeakProbe
from probes.leak.provoke import ProvocationKind, RequestRole
from probes.leak.signatures import load_signatures
from tests.probes.leak_recorded import load_recorded
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, Running, Seen, http_server

HOST = "127.0.6.61"
SPRING = load_recorded("spring_whitelabel_trace.http")  # a 500 Whitelabel page with a Java trace
LINKS = '<a href="/products?id=7">Product 7</a> <a href="/about">About</a>'
MYSQL = ("You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version "
         "for the right syntax to use near '' at line 1")
JAVA_TRACE = """java.lang.NullPointerException: Cannot invoke "Order.id()" because "order" is null
\tat tw.fixture.broker.web.OrderController.show(OrderController.java:51)
\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)
\tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658)"""
# Documentation that quotes a stack trace: content when it is served as a page, a leak when it is an error.
DOC = ("<html><body><h1>Reading a Java stack trace</h1><p>Our engineering notes: the first frame names the "
       f"failing method.</p><pre>{JAVA_TRACE}</pre>{LINKS}</body></html>")
TRACEBACK = ('Traceback (most recent call last):\n  File "/srv/shop/views.py", line 41, in product\n'
             "    return Product.get(int(request.args['id']))\nValueError: invalid literal for int()\n")
TOOLBAR = ('<div id="sfwdta1b2c3" class="sf-toolbar sf-display-none"></div>'
           "<script>Sfjs.loadToolbar('a1b2c3');</script>")


def site(home: Reply, *, product: Reply | None = None, variant: Reply | None = None,
         other: Reply | None = None) -> dict[str, Callable[[Seen], Reply]]:
    """Home at /, /products?id=7 and its variants, and ``other`` for every other request."""
    rest = other or Reply(404, "<html><body><h1>Not found</h1><p>Error code 404.</p></body></html>")

    def route(seen: Seen) -> Reply:
        path, _, query = seen.path.partition("?")
        if path == "/products":
            if query == "id=7":
                return product or Reply(200, "<html><body><p>Product 7: a bond fund.</p></body></html>")
            return variant or Reply(400, "<html><body><p>Invalid product.</p></body></html>")
        if path == "/" and seen.method == "GET":
            return home
        return rest

    return {"*": route}


@contextmanager
def serving(routes: Mapping[str, Callable[[Seen], Reply]]) -> Iterator[Running]:
    with http_server(routes, host=HOST) as srv:
        yield srv


async def scan(srv: Running) -> ProbeResult:
    target = make_target(srv.url, (srv.host,))
    async with probe_context(target) as ctx:
        result = await LeakProbe().run(target, ctx)
    assert result.status is RunStatus.OK, result.error
    return result


def leaks(result: ProbeResult) -> dict[str, Mapping[str, object]]:
    return {f.key: f.evidence for f in result.findings if f.check_id != "leak.version_banner"}


# ------------------------------------------------------------------ real servers


async def test_a_site_answering_everything_with_a_spring_trace_is_found_from_its_home_page() -> None:
    with serving(site(SPRING.reply(), other=SPRING.reply())) as srv:
        result = await scan(srv)
    found = leaks(result)
    assert set(found) == {"baseline:spring.whitelabel_trace", "not_found:spring.whitelabel_trace",
                          "bad_encoding:spring.whitelabel_trace", "bad_method:spring.whitelabel_trace"}
    home = found["baseline:spring.whitelabel_trace"]
    assert (home["provocation"], home["request"], home["status"]) == ("baseline", {"method": "GET", "path": "/"}, 500)
    assert home["as_served"] == "the home page"
    assert "Whitelabel Error Page" in str(home["excerpt"])
    assert "as_served" not in found["not_found:spring.whitelabel_trace"]
    assert result.observations["suppressed_by_normal_page"] == {}  # an error page is nobody's normal page


async def test_a_database_error_on_the_home_page_does_not_hide_the_one_a_parameter_provokes() -> None:
    home = Reply(200, f"<html><body><h1>Fixture Securities</h1><div class='news'>{MYSQL}</div>{LINKS}</body></html>")
    variant = Reply(200, f"<html><body><p>{MYSQL}</p></body></html>")
    with serving(site(home, variant=variant)) as srv:
        result = await scan(srv)
    found = leaks(result)
    # /products?id=7 shows no database error: its variants are compared with it, not with the home page
    assert set(found) == {"param_quote:mysql.error", "param_type:mysql.error"}
    assert found["param_quote:mysql.error"]["request"] == {"method": "GET", "path": "/products?id=7%27",
                                                           "parameter": "id"}
    assert result.observations["suppressed_by_normal_page"] == {"mysql.error": ["home"]}


async def test_a_database_error_on_a_home_page_that_answers_500_is_found_as_served() -> None:
    home = Reply(500, f"<html><body><h1>Fixture Securities</h1><p>{MYSQL}</p>{LINKS}</body></html>")
    with serving(site(home)) as srv:
        result = await scan(srv)
    found = leaks(result)
    assert set(found) == {"baseline:mysql.error"}
    assert (found["baseline:mysql.error"]["status"], found["baseline:mysql.error"]["as_served"]) == (
        500, "the home page")


async def test_a_page_quoting_a_stack_trace_is_content_only_when_it_answers_normally() -> None:
    not_found = Reply(404, f"<html><body><h1>Not found</h1><aside>{DOC}</aside></body></html>")
    expected = {
        # documentation: the trace is content, on the home page and on the 404 page that shows it too
        200: (set(), True),
        # the same page as an error answer: the home page and every page showing it again are leaks
        500: ({f"{kind}:java.stack_trace" for kind in ("baseline", "not_found", "bad_encoding", "bad_method")}, False),
    }
    for status, (keys, hides) in expected.items():
        with serving(site(Reply(status, DOC), other=not_found)) as srv:
            result = await scan(srv)
        assert set(leaks(result)) == keys, status
        suppressed = result.observations["suppressed_by_normal_page"]
        assert (suppressed.get("java.stack_trace") == ["home"]) is hides and bool(suppressed) is hides, status


async def test_a_debug_toolbar_on_every_page_is_found_though_the_home_page_answers_200() -> None:
    home = Reply(200, f"<html><body><h1>Fixture Securities</h1>{LINKS}{TOOLBAR}</body></html>")
    other = Reply(404, f"<html><body><h1>Not found</h1>{TOOLBAR}</body></html>")
    toolbar = Reply(400, f"<html><body><p>Invalid product.</p>{TOOLBAR}</body></html>")
    product = Reply(200, f"<html><body><p>Product 7</p>{TOOLBAR}</body></html>")
    with serving(site(home, product=product, variant=toolbar, other=other)) as srv:
        result = await scan(srv)
    found = leaks(result)
    assert set(found) == {f"{kind}:symfony.toolbar" for kind in (
        "baseline", "not_found", "bad_encoding", "bad_method", "param_quote", "param_type", "reference")}
    assert (found["baseline:symfony.toolbar"]["status"], found["baseline:symfony.toolbar"]["as_served"]) == (
        200, "the home page")
    assert result.observations["suppressed_by_normal_page"] == {}


async def test_a_parameter_page_that_is_itself_an_error_page_is_found_with_its_variants() -> None:
    trace = Reply(500, f"<html><body><pre>{TRACEBACK}</pre></body></html>")
    home = Reply(200, f"<html><body><h1>Fixture Securities</h1>{LINKS}</body></html>")
    with serving(site(home, product=trace, variant=trace)) as srv:
        result = await scan(srv)
    found = leaks(result)
    assert set(found) == {"reference:python.traceback", "param_quote:python.traceback",
                          "param_type:python.traceback"}
    ref = found["reference:python.traceback"]
    assert (ref["provocation"], ref["request"], ref["status"]) == (
        "reference", {"method": "GET", "path": "/products?id=7"}, 500)
    assert ref["as_served"] == "the page whose parameters are provoked"


# ------------------------------------------------------------------ the rules, on the judge alone

SIGS = load_signatures()
BLOG = f"<article><h2>What our old error page looked like</h2><pre>{TRACEBACK}</pre></article>"
DJANGO_DEBUG = ("<table class='meta'><tr><th>Django Version:</th><td>5.2</td></tr><tr><th>Exception Type:</th>"
                f"<td>ValueError</td></tr></table><pre>{TRACEBACK}</pre>")


def page(role: RequestRole, status: int, body: str, *, kind: ProvocationKind | None = None, path: str = "/",
         reference_url: str | None = None) -> Observed:
    return Observed(role, kind, "GET", path, "http://b.test" + path, status, "text/html", (), body, True,
                    reference_url=reference_url)


def home(status: int, body: str) -> Observed:
    return page(RequestRole.HOME, status, body, kind=ProvocationKind.BASELINE)


def not_found(body: str, status: int = 404) -> Observed:
    return page(RequestRole.PROVOCATION, status, body, kind=ProvocationKind.NOT_FOUND, path="/posture-0a1b")


HOME_RULES: list[tuple[str, Observed, Observed, set[str], dict[str, list[str]]]] = [
    ("blog on a 200 home page", home(200, BLOG), not_found(BLOG), set(), {"python.traceback": ["home"]}),
    ("trace on a 500 home page", home(500, BLOG), not_found(BLOG),
     {"baseline:python.traceback", "not_found:python.traceback"}, {}),
    ("trace on a 404 home page", home(404, BLOG), not_found(BLOG),
     {"baseline:python.traceback", "not_found:python.traceback"}, {}),
    ("debug page on a 200 home page", home(200, DJANGO_DEBUG), not_found(DJANGO_DEBUG, 500),
     {"baseline:django.technical_500", "not_found:django.technical_500"}, {"python.traceback": ["home"]}),
    ("database error on a 200 home page", home(200, f"<p>{MYSQL}</p>"), not_found(f"<p>{MYSQL}</p>"),
     set(), {"mysql.error": ["home"]}),
    ("database error on a 503 home page", home(503, f"<p>{MYSQL}</p>"), not_found(f"<p>{MYSQL}</p>"),
     {"baseline:mysql.error", "not_found:mysql.error"}, {}),
]


def test_the_home_page_hides_only_content_and_only_when_it_answered_normally() -> None:
    for why, home_page, provoked, keys, suppressed in HOME_RULES:
        verdict = judge([home_page, provoked], SIGS)
        assert {f.key for f in verdict.findings} == keys, why
        assert verdict.suppressed == suppressed, why
        for f in verdict.findings:
            served = f.key.startswith("baseline:")
            assert (f.evidence.get("as_served") == "the home page") is served, why
            assert f.evidence["provocation"] == ("baseline" if served else "not_found"), why


def test_a_parameter_variant_is_compared_with_its_own_page_not_the_home_page() -> None:
    ref_url = "http://b.test/news?id=3"
    quoted = page(RequestRole.PROVOCATION, 200, f"<p>{MYSQL}</p>", kind=ProvocationKind.PARAM_QUOTE,
                  path="/news?id=3%27", reference_url=ref_url)
    ref = page(RequestRole.REFERENCE, 200, "<p>News 3</p>", path="/news?id=3", reference_url=ref_url)
    verdict = judge([home(200, f"<p>{MYSQL}</p>"), not_found(f"<p>{MYSQL}</p>"), quoted, ref], SIGS)
    assert {f.key for f in verdict.findings} == {"param_quote:mysql.error"}


def test_a_discovery_page_that_is_an_error_page_is_found_as_served() -> None:
    linked = page(RequestRole.DISCOVERY, 500, f"<pre>{TRACEBACK}</pre>", path="/about",
                  reference_url="http://b.test/about")
    verdict = judge([home(200, "<p>Welcome</p>"), not_found("<p>Not found</p>"), linked], SIGS)
    [f] = verdict.findings
    assert (f.key, f.evidence["as_served"], f.evidence["request"]) == (
        "discovery:python.traceback", "a linked page", {"method": "GET", "path": "/about"})
