"""The leak probe against real frameworks and against recorded pages of stacks that cannot run here.

Real: Django, Flask/Werkzeug, PHP's built-in server and Express, each from its own
package, each in debug and in production mode, all started once for this module in
parallel (tests/support/frameworks.py). Debug mode must give the finding; production
mode must give no debug, stack-trace or SQL finding.

Recorded: ASP.NET/IIS, Tomcat, Spring Boot, Laravel, Symfony and Rails pages from
tests/probes/recorded (RECORDED SAMPLES written in the shape of each framework's public
template; see that directory's README), served by a local http_server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from probes.base import ProbeResult, RunStatus
from probes.leak.probe import LeakProbe
from probes.leak.provoke import MAX_REQUESTS, UNSUPPORTED_METHOD
from tests.probes.leak_recorded import load_recorded
from tests.support.context import make_target, probe_context
from tests.support.frameworks import Framework, Mode, Server, running
from tests.support.servers import Reply, Route, Seen, http_server


async def scan(url: str, host: str) -> ProbeResult:
    target = make_target(url, (host,))
    async with probe_context(target) as ctx:
        return await LeakProbe().run(target, ctx)


def leak_keys(result: ProbeResult) -> set[str]:
    return {f.key for f in result.findings if f.check_id != "leak.version_banner"}


def banner_keys(result: ProbeResult) -> set[str]:
    return {f.key for f in result.findings if f.check_id == "leak.version_banner"}


# ------------------------------------------------------------------ real frameworks

SPECS = [(fw, mode) for fw in Framework for mode in Mode]


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[Framework, Mode], ProbeResult]]:
    """Every framework in both modes, started at once and scanned at once."""
    logs = tmp_path_factory.mktemp("framework-logs")
    with running(SPECS, logs) as servers:

        async def all_scans() -> list[ProbeResult]:
            return await asyncio.gather(*(scan(s.url, s.host) for s in servers))

        results = asyncio.run(all_scans())
        by_spec = {(s.framework, s.mode): r for s, r in zip(servers, results, strict=True)}
        _check_alive(servers)
        yield by_spec


def _check_alive(servers: list[Server]) -> None:
    for s in servers:
        assert s.proc is not None and s.proc.poll() is None, f"{s.framework}/{s.mode} died: {s.log_tail()}"


EXPECTED_DEBUG: dict[Framework, set[str]] = {
    Framework.DJANGO: {
        "not_found:django.technical_404",
        "bad_encoding:django.technical_404",
        "param_quote:django.technical_500",
        "param_quote:sqlite.error",  # a real SQLite syntax error, through Django's own cursor
        "param_type:django.technical_500",
    },
    Framework.FLASK: {"param_quote:werkzeug.debugger", "param_type:werkzeug.debugger"},
    Framework.PHP: {"param_quote:php.error_with_path", "param_type:php.error_with_path"},
    Framework.EXPRESS: {"param_quote:node.stack_trace", "param_type:node.stack_trace"},
}
EXPECTED_BANNERS: dict[Framework, set[str]] = {
    Framework.DJANGO: {"banner:server:wsgiserver", "banner:server:cpython"},
    Framework.FLASK: {"banner:server:werkzeug", "banner:server:python"},
    Framework.PHP: {"banner:x-powered-by:php"},
    Framework.EXPRESS: set(),  # "X-Powered-By: Express" names no version
}


@pytest.mark.parametrize("framework", list(Framework))
def test_debug_mode_is_found(scans: dict[tuple[Framework, Mode], ProbeResult], framework: Framework) -> None:
    result = scans[(framework, Mode.DEBUG)]
    assert result.status is RunStatus.OK, result.error
    assert leak_keys(result) == EXPECTED_DEBUG[framework]
    assert banner_keys(result) == EXPECTED_BANNERS[framework]
    assert result.observations["request_count"] <= MAX_REQUESTS


@pytest.mark.parametrize("framework", list(Framework))
def test_production_mode_shows_nothing(scans: dict[tuple[Framework, Mode], ProbeResult],
                                       framework: Framework) -> None:
    result = scans[(framework, Mode.PRODUCTION)]
    assert result.status is RunStatus.OK, result.error
    assert leak_keys(result) == set()
    assert banner_keys(result) == EXPECTED_BANNERS[framework]
    # the same provocations were sent as in debug mode: the difference is the server's answer
    kinds = sorted(str(r["kind"]) for r in result.observations["requests"])
    debug_kinds = sorted(str(r["kind"]) for r in scans[(framework, Mode.DEBUG)].observations["requests"])
    assert kinds == debug_kinds


def test_php_fatal_error_comes_with_status_200(scans: dict[tuple[Framework, Mode], ProbeResult]) -> None:
    f = next(f for f in scans[(Framework.PHP, Mode.DEBUG)].findings if f.key == "param_quote:php.error_with_path")
    assert f.evidence["status"] == 200
    assert "item.php on line" in str(f.evidence["excerpt"])


def test_django_saw_the_malformed_path_unchanged(scans: dict[tuple[Framework, Mode], ProbeResult]) -> None:
    f = next(f for f in scans[(Framework.DJANGO, Mode.DEBUG)].findings
             if f.key == "bad_encoding:django.technical_404")
    assert f.evidence["request"] == {"method": "GET", "path": "/%posture%zz", "variant": "malformed percent-encoding"}
    assert "Page not found at /%posture%zz" in str(f.evidence["excerpt"])  # Django's own echo of what it got


def test_werkzeug_debugger_secret_stays_out_of_the_evidence(
        scans: dict[tuple[Framework, Mode], ProbeResult]) -> None:
    findings = scans[(Framework.FLASK, Mode.DEBUG)].findings
    # The debugger page is found first (otherwise "no secret in the evidence" proves nothing)...
    assert any(f.check_id == "leak.debug_page" for f in findings), [f.check_id for f in findings]
    # ...and no excerpt carries the application's secret shown on it.
    for f in findings:
        assert "SECRET = \"" not in str(f.evidence), f.check_id


# ------------------------------------------------------------------ recorded stacks

HOME = """<!doctype html><html><head><title>Fixture Broker</title></head><body>
<h1>Fixture Broker</h1><p>Read about error handling, SQL and exceptions on our blog.</p>
<a href="/products?id=7">Fund 7</a></body></html>"""
PRODUCT = "<html><body><p>Fund 7</p></body></html>"


@dataclass(frozen=True)
class Stack:
    name: str
    not_found: str | None = None  # recorded page for a missing path (default: a bare 404)
    suffixes: Mapping[str, str] = field(default_factory=dict)  # extension -> recorded page
    param: str | None = None  # recorded page for a broken parameter (default: a bare 400)
    home_headers: Mapping[str, str] = field(default_factory=dict)
    expect: frozenset[str] = frozenset()
    banners: frozenset[str] = frozenset()  # at least these


STACKS = [
    Stack("aspnet-debug", not_found="iis_detailed_error_404.http", suffixes={".aspx": "aspnet_yellow_404.http"},
          param="aspnet_yellow_screen_sql.http", home_headers={"X-AspNet-Version": "4.0.30319"},
          expect=frozenset({"not_found:iis.detailed_error", "param_quote:aspnet.yellow_screen",
                            "param_quote:mssql.error", "param_type:aspnet.yellow_screen", "param_type:mssql.error"}),
          banners=frozenset({"banner:server:microsoft-iis", "banner:x-aspnet-version:asp.net",
                             "banner:footer:asp.net", "banner:footer:iis"})),
    Stack("aspnet-production", not_found="iis_production_404.http",
          suffixes={".aspx": "aspnet_production_runtime_error.http"}, param="aspnet_production_runtime_error.http"),
    Stack("tomcat-debug", not_found="tomcat_status_report_404.http", param="tomcat_exception_report.http",
          expect=frozenset({"param_quote:tomcat.error_report", "param_type:tomcat.error_report"}),
          banners=frozenset({"banner:footer:apache-tomcat"})),
    Stack("tomcat-production", not_found="tomcat_production_error.http", param="tomcat_production_error.http"),
    Stack("spring-debug", not_found="spring_production_whitelabel.http", param="spring_whitelabel_trace.http",
          expect=frozenset({"param_quote:spring.whitelabel_trace", "param_type:spring.whitelabel_trace"})),
    Stack("spring-production", not_found="spring_production_whitelabel.http",
          param="spring_production_whitelabel.http"),
    Stack("laravel-debug", param="laravel_ignition.http",
          expect=frozenset({"param_quote:laravel.ignition", "param_quote:mysql.error",
                            "param_type:laravel.ignition", "param_type:mysql.error"}),
          banners=frozenset({"banner:x-powered-by:php"})),
    Stack("laravel-production", param="laravel_production_500.http"),
    Stack("symfony-debug", not_found="symfony_exception.http",
          home_headers={"X-Debug-Token": "6f1a2b", "X-Debug-Token-Link": "http://fixture-broker.test/_profiler/6f1a2b"},
          expect=frozenset({"baseline:symfony.debug_token", "not_found:symfony.exception_page"})),
    Stack("symfony-production", not_found="symfony_production_error.http", param="symfony_production_error.http"),
    Stack("rails-debug", not_found="rails_routing_error.http", expect=frozenset({"not_found:rails.debug_page"})),
    Stack("rails-production", not_found="rails_production_404.http"),
]


def recorded_site(stack: Stack) -> dict[str, Route]:
    def route(seen: Seen) -> Reply:
        path, _, query = seen.path.partition("?")
        if seen.method == UNSUPPORTED_METHOD:
            return Reply(405, "<h1>Method Not Allowed</h1>")
        if path == "/":
            return Reply(200, HOME, headers=dict(stack.home_headers))
        if path == "/products":
            if query == "id=7":
                return Reply(200, PRODUCT, headers=dict(stack.home_headers))
            return load_recorded(stack.param).reply() if stack.param else Reply(400, "<h1>Bad Request</h1>")
        if "%posture%zz" in path:
            return Reply(400, "<h1>Bad Request - Invalid URL</h1>")  # the front end refuses it
        for suffix, page in stack.suffixes.items():
            if path.endswith(suffix):
                return load_recorded(page).reply()
        return load_recorded(stack.not_found).reply() if stack.not_found else Reply(404, "<h1>Not Found</h1>")

    return {"*": route}


@pytest.mark.parametrize("stack", STACKS, ids=[s.name for s in STACKS])
async def test_recorded_stack(stack: Stack) -> None:
    with http_server(recorded_site(stack), host="127.0.6.70") as srv:
        result = await scan(srv.url, srv.host)
    assert result.status is RunStatus.OK, result.error
    assert leak_keys(result) == set(stack.expect)
    assert stack.banners <= banner_keys(result)
    if stack.name.endswith("production"):
        assert banner_keys(result) == {"banner:server:basehttp", "banner:server:python"}  # the test server's own
