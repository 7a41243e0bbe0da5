"""Pure, table-driven tests of the leak judge and its signatures (no network)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from probes.base import Finding
from probes.leak.judge import Observed, Verdict, judge
from probes.leak.provoke import ProvocationKind, RequestRole
from probes.leak.signatures import (
    EXCERPT_LIMIT,
    LeakCheck,
    View,
    body_views,
    load_signatures,
)
from tests.probes.leak_recorded import RECORDED, load_recorded

SIGS = load_signatures()
HOME_HTML = "<html><body><h1>Fixture Securities</h1><p>Welcome.</p></body></html>"


def home(body: str = HOME_HTML, headers: Sequence[tuple[str, str]] = ()) -> Observed:
    return Observed(RequestRole.HOME, ProvocationKind.BASELINE, "GET", "/", "http://b.test/", 200, "text/html",
                    tuple(headers), body, True)


def resp(
    body: str,
    content_type: str = "text/html",
    *,
    kind: ProvocationKind = ProvocationKind.NOT_FOUND,
    status: int = 500,
    headers: Sequence[tuple[str, str]] = (),
    path: str = "/posture-0a1b2c",
    textual: bool | None = None,
    reference_url: str | None = None,
    truncated: bool = False,
) -> Observed:
    is_text = textual if textual is not None else (content_type.startswith("text/") or "json" in content_type)
    return Observed(RequestRole.PROVOCATION, kind, "GET", path, "http://b.test" + path, status, content_type,
                    tuple(headers), body, is_text, truncated=truncated, reference_url=reference_url)


def run(*responses: Observed, home_page: Observed | None = None) -> Verdict:
    return judge([home_page or home(), *responses], SIGS)


def keyed(findings: Sequence[Finding], *checks: LeakCheck) -> dict[str, Finding]:
    wanted = {c.value for c in checks} or {c.value for c in LeakCheck}
    return {f.key: f for f in findings if f.check_id in wanted}


LEAKS = (LeakCheck.DEBUG_PAGE, LeakCheck.STACK_TRACE, LeakCheck.SQL_ERROR)

# ------------------------------------------------------------------ positives

DJANGO_500 = """<!DOCTYPE html><html><head><title>ValueError at /item/</title></head><body>
<header id="summary"><h1>ValueError at /item/</h1>
<pre class="exception_value">invalid literal for int() with base 10: &#x27;1&#x27;&#x27;</pre>
<table class="meta"><tr><th scope="row">Django Version:</th><td>5.2</td></tr>
<tr><th scope="row">Exception Type:</th><td>ValueError</td></tr></table></header>
<div id="pastebinTraceback"><textarea>Traceback (most recent call last):
  File &quot;/srv/app/views.py&quot;, line 12, in item
    return int(request.GET[&quot;id&quot;])
ValueError: invalid literal</textarea></div>
<footer id="explanation"><p>You’re seeing this error because you have <code>DEBUG = True</code> in
your Django settings file.</p></footer></body></html>"""

POSITIVES: list[tuple[str, str, str, str]] = [
    # (signature id, content type, body, why)
    ("django.technical_500", "text/html", DJANGO_500, "Django debug 500"),
    ("django.technical_404", "text/html",
     "<h1>Page not found <small>(404)</small></h1><p>Using the URLconf defined in <code>site.urls</code>, Django "
     "tried these URL patterns</p><footer><p>You&#x27;re seeing this error because you have <code>DEBUG = True"
     "</code> in your Django settings file.</p></footer>", "Django technical 404"),
    ("werkzeug.debugger", "text/html",
     '<title>ValueError // Werkzeug Debugger</title><link rel="stylesheet" href="?__debugger__=yes&amp;cmd='
     'resource&amp;f=style.css"><script>var SECRET = "Xq9sLk2PqR7tZ0aB1cD2";</script><div class="debugger">'
     "<p>The debugger caught an exception in your WSGI application.</p></div>", "Werkzeug debugger"),
    ("php.whoops", "text/html",
     '<div class="Whoops container"><div class="stack-container"><div class="frames-container cf">'
     '<div class="frame active"><span class="frame-file">/var/www/app/Http/Kernel.php'
     '<span class="frame-line">12</span></span></div></div><div class="details-container cf">'
     '<header><h3 class="exc-title">ErrorException</h3></header></div></div></div>', "Laravel 5 Whoops"),
    ("symfony.toolbar", "text/html",
     '<p>ok</p><div id="sfwdta1b2c3" class="sf-toolbar sf-display-none"></div><script>'
     "Sfjs.loadToolbar('a1b2c3');</script>", "Symfony toolbar injected in a page"),
    ("aspnetcore.developer_exception_page", "text/html",
     '<h1>An unhandled exception occurred while processing the request.</h1><div class="titleerror">'
     'InvalidOperationException: x</div><ul id="header"><li id="stack" tabindex="1" class="selected">Stack</li>'
     '</ul><div id="stackpage" class="page"><h2 class="stackerror">InvalidOperationException: x</h2></div>',
     "ASP.NET Core developer exception page"),
    ("python.traceback", "text/plain",
     'Internal error\nTraceback (most recent call last):\n  File "/srv/app/main.py", line 8, in <module>\n'
     "    main()\nKeyError: 'id'\n", "Python traceback in plain text"),
    ("java.stack_trace", "application/json",
     '{"timestamp":"2026-11-21T10:00:00.000+00:00","status":500,"error":"Internal Server Error","trace":'
     '"java.lang.IllegalStateException: boom\\n\\tat com.fixture.web.Api.get(Api.java:42)\\n\\tat '
     'org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)\\n","path":"/api"}',
     "Spring Boot JSON error with trace"),
    ("dotnet.stack_trace", "text/plain",
     "System.InvalidOperationException: Sequence contains no elements\n"
     "   at System.Linq.ThrowHelper.ThrowNoElementsException()\n"
     "   at Fixture.Web.Controllers.HomeController.Index() in C:\\src\\Fixture.Web\\HomeController.cs:line 18\n",
     ".NET exception text"),
    ("node.stack_trace", "text/html",
     "<pre>TypeError: Cannot read properties of undefined (reading &#39;id&#39;)<br> &nbsp; &nbsp;at "
     "/srv/app/routes/item.js:14:21<br> &nbsp; &nbsp;at Layer.handle [as handle_request] "
     "(/srv/app/node_modules/express/lib/router/layer.js:95:5)</pre>", "Express development error"),
    ("php.error_with_path", "text/html",
     "<br />\n<b>Warning</b>:  Undefined variable $row in <b>/var/www/html/item.php</b> on line <b>9</b><br />",
     "PHP warning with path and line"),
    ("php.error_with_path", "text/plain",
     "PHP Fatal error:  Uncaught Exception: no such item in /var/www/html/item.php:3\nStack trace:\n#0 {main}\n",
     "PHP uncaught exception, text mode"),
    ("php.uncaught_stack", "text/plain",
     "Stack trace:\n#0 /var/www/html/lib/Db.php(41): Db->query('SELECT')\n#1 {main}\n",
     "PHP stack lines alone"),
    ("php.xdebug", "text/html",
     "<table class='xdebug-error xe-warning' dir='ltr'><tr><th align='left'>( ! ) Warning: x</th></tr>"
     "<tr><th align='left' colspan='5'>Call Stack</th></tr></table>", "Xdebug error table"),
    ("ruby.backtrace", "text/plain",
     "NoMethodError (undefined method `name' for nil):\n"
     "app/controllers/orders_controller.rb:12:in `show'\n"
     "actionpack (7.1.3) lib/action_controller/metal/basic_implicit_render.rb:6:in `send_action'\n",
     "Rails backtrace"),
    ("go.panic", "text/plain",
     "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 17 [running]:\n"
     "main.handler(0xc000012345)\n\t/srv/app/main.go:31 +0x1d\n", "Go panic"),
    ("django.urlconf_routes", "text/html",
     "<h1>Seite nicht gefunden</h1><p>Using the URLconf defined in <code>site.urls</code>, Django tried these URL "
     "patterns, in this order:</p><ol><li>admin/</li><li>api/orders/</li></ol>", "Django route list, own footer"),
    ("rails.routes_table", "text/html",
     "<h1>Routing Error</h1><p>No route matches [GET] &quot;/x&quot;</p><h2>Routes</h2><p>Routes match in "
     "priority from top to bottom</p>", "Rails development routing table"),
    ("rails.extracted_source", "text/html",
     "<h1>ActionView::Template::Error</h1><div class='source'><div class='info'>Extracted source (around line "
     "<strong>#4</strong>):</div></div>", "Rails ERB source excerpt"),
    ("jsp.jasper_source", "text/html",
     "<p><b>Message</b> An exception occurred processing [/WEB-INF/jsp/item.jsp] at line [12]</p><pre>9: &lt;%"
     "\n10: int x = 1;</pre>", "JSP exception with source lines, no trace"),
    ("symfony.welcome_debug", "text/html",
     "<h1>Welcome to Symfony 7.3</h1><p>You're seeing this page because you haven't configured any homepage URL "
     "and debug mode is enabled.</p>", "Symfony debug welcome page"),
    ("nextjs.development", "text/html",
     '<div id="__next"></div><script id="__NEXT_DATA__" type="application/json">{"props":{},"page":"/_error",'
     '"buildId":"development"}</script>', "Next.js dev server"),
    ("vite.dev_server", "text/html",
     '<head><script type="module" src="/@vite/client"></script></head>', "Vite dev server"),
    ("template.source_excerpt", "text/html",
     "<h2>Twig\\Error\\SyntaxError</h2><p>Unexpected token.</p><table><tr><td>11</td><td>{% block body %}</td>"
     "</tr><tr><td>12</td><td>{{ item.name }</td></tr><tr><td>13</td><td>{% endblock %}</td></tr></table>",
     "Twig error page with numbered source lines"),
    ("perl.die", "text/plain",
     "Died at /srv/app/lib/Order.pm line 41.\n\tOrder::load('1\\'') called at /srv/app/order.cgi line 12\n",
     "Perl die with a Carp frame"),
    ("mysql.error", "text/html",
     "<p>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version "
     "for the right syntax to use near ''1''' at line 1</p>", "MySQL 1064"),
    ("mysql.error", "text/html",
     "<b>Warning</b>: mysql_fetch_array() expects parameter 1 to be resource, boolean given", "old PHP mysql_*"),
    ("postgresql.error", "text/plain",
     'ERROR:  unterminated quoted string at or near "\'1\'\'"\nLINE 1: SELECT * FROM items WHERE id = \'1\'\'',
     "PostgreSQL message"),
    ("postgresql.error", "text/html",
     "<pre>psycopg2.errors.InvalidTextRepresentation: invalid input syntax for type integer</pre>",
     "psycopg2 exception"),
    ("mssql.error", "text/html",
     "<font face=\"Arial\" size=2>Microsoft OLE DB Provider for ODBC Drivers</font> <font size=2>error "
     "'80040e14'</font><p>[Microsoft][ODBC SQL Server Driver][SQL Server]Unclosed quotation mark after the "
     "character string ''.</p>", "classic ASP + ODBC"),
    ("mssql.error", "text/plain",
     "Conversion failed when converting the nvarchar value 'posture' to data type int.", "SQL Server 245"),
    ("oracle.error", "text/html", "<p>ORA-01756: quoted string not properly terminated</p>", "Oracle"),
    ("sqlite.error", "text/html",
     "<pre class=\"exception_value\">near &quot;posture&quot;: syntax error</pre>", "SQLite parser"),
    ("jdbc.sql_exception", "text/plain",
     "org.hibernate.exception.SQLGrammarException: could not extract ResultSet", "Hibernate"),
    ("pdo.sqlstate", "text/html",
     "<p>SQLSTATE[HY000]: General error: 1 no such table: products</p>", "PDO general error"),
]

RECORDED_POSITIVES: list[tuple[str, str]] = [
    ("aspnet_yellow_screen_sql.http", "aspnet.yellow_screen"),
    ("aspnet_yellow_screen_sql.http", "mssql.error"),
    ("iis_detailed_error_404.http", "iis.detailed_error"),
    ("tomcat_exception_report.http", "tomcat.error_report"),
    ("spring_whitelabel_trace.http", "spring.whitelabel_trace"),
    ("laravel_ignition.http", "laravel.ignition"),
    ("laravel_ignition.http", "mysql.error"),
    ("symfony_exception.http", "symfony.exception_page"),
    ("symfony_exception.http", "symfony.debug_token"),
    ("rails_routing_error.http", "rails.debug_page"),
]


@pytest.mark.parametrize(("sig_id", "content_type", "body", "why"), POSITIVES, ids=[p[3] for p in POSITIVES])
def test_each_signature_fires_on_its_structure(sig_id: str, content_type: str, body: str, why: str) -> None:
    findings = run(resp(body, content_type)).findings
    assert [f.evidence["signature"] for f in findings] == [sig_id], why
    f = findings[0]
    assert f.key == f"not_found:{sig_id}"
    assert f.check_id == next(s.check.value for s in SIGS.signatures if s.id == sig_id)
    assert 0 < len(str(f.evidence["excerpt"])) <= EXCERPT_LIMIT


@pytest.mark.parametrize(("name", "sig_id"), RECORDED_POSITIVES, ids=[f"{n}:{s}" for n, s in RECORDED_POSITIVES])
def test_recorded_pages_fire_their_signatures(name: str, sig_id: str) -> None:
    page = load_recorded(name)
    findings = run(resp(page.body, page.content_type, headers=page.header_pairs, status=page.status)).findings
    assert sig_id in {f.evidence["signature"] for f in findings}


def test_every_signature_is_exercised_by_a_positive_sample() -> None:
    covered = {p[0] for p in POSITIVES} | {s for _, s in RECORDED_POSITIVES} | {
        s for s, *_ in BANNERS if s} | {s for s, _ in FOOTERS}
    assert covered == {s.id for s in SIGS.signatures}


# ------------------------------------------------------------------ banners

BANNERS: list[tuple[str, str, str, str, str, str]] = [
    # (signature, header, value, key, product, version); empty signature: no banner
    ("banner.product_token", "server", "Apache/2.4.41 (Ubuntu)", "banner:server:apache", "Apache", "2.4.41"),
    ("banner.product_token", "server", "Microsoft-IIS/10.0", "banner:server:microsoft-iis", "Microsoft-IIS",
     "10.0"),
    ("banner.product_token", "server", "nginx/1.18.0 (Ubuntu)", "banner:server:nginx", "nginx", "1.18.0"),
    ("banner.powered_by", "x-powered-by", "PHP/7.4.3", "banner:x-powered-by:php", "PHP", "7.4.3"),
    ("banner.aspnet_version", "x-aspnet-version", "4.0.30319", "banner:x-aspnet-version:asp.net", "ASP.NET",
     "4.0.30319"),
    ("banner.aspnetmvc_version", "x-aspnetmvc-version", "5.2", "banner:x-aspnetmvc-version:asp.net-mvc",
     "ASP.NET MVC", "5.2"),
    ("banner.generator", "x-generator", "Drupal 10 (https://www.drupal.org)", "banner:x-generator:drupal",
     "Drupal", "10"),
    ("banner.jetty_server", "server", "Jetty(9.4.44.v20210927)", "banner:server:jetty", "Jetty",
     "9.4.44.v20210927"),
    ("banner.sharepoint", "microsoftsharepointteamservices", "16.0.0.5422",
     "banner:microsoftsharepointteamservices:sharepoint", "SharePoint", "16.0.0.5422"),
    ("", "server", "nginx", "", "", ""),
    ("", "server", "cloudflare", "", "", ""),
    ("", "x-powered-by", "Express", "", "", ""),
    ("", "x-powered-by", "ASP.NET", "", "", ""),
    ("", "x-frame-options", "SAMEORIGIN/1.0", "", "", ""),
]


@pytest.mark.parametrize(("sig_id", "header", "value", "key", "product", "version"), BANNERS,
                         ids=[f"{b[1]}: {b[2]}" for b in BANNERS])
def test_version_banners_in_headers(sig_id: str, header: str, value: str, key: str, product: str,
                                    version: str) -> None:
    findings = keyed(run(resp("<p>x</p>", headers=[(header, value)])).findings, LeakCheck.VERSION_BANNER)
    if not sig_id:
        assert findings == {}
        return
    assert list(findings) == [key]
    ev = findings[key].evidence
    assert (ev["signature"], ev["where"], ev["product"], ev["version"]) == (sig_id, header, product, version)


def test_one_header_can_name_several_products_and_each_is_its_own_finding() -> None:
    findings = run(resp("x", headers=[("server", "Apache/2.4.41 (Ubuntu) OpenSSL/1.1.1f mod_wsgi/4.6.8")]))
    assert set(keyed(findings.findings)) == {"banner:server:apache", "banner:server:openssl",
                                             "banner:server:mod_wsgi"}


def test_header_banners_of_the_home_page_count_and_are_reported_once() -> None:
    header = [("server", "Apache/2.4.41 (Ubuntu)")]
    verdict = run(resp("<p>nf</p>", headers=header), resp("<p>nf</p>", headers=header, path="/x.php"),
                  home_page=home(headers=header))
    f = keyed(verdict.findings)["banner:server:apache"]
    assert f.evidence["provocation"] == "baseline"
    assert f.evidence["also_matched"] == ["GET /posture-0a1b2c", "GET /x.php"]
    assert verdict.banners == [{"where": "server", "product": "Apache", "version": "2.4.41",
                                "signature": "banner.product_token"}]


FOOTERS: list[tuple[str, str]] = [
    ("banner.footer_apache", "<hr>\n<address>Apache/2.4.41 (Ubuntu) Server at broker.test Port 443</address>"),
    ("banner.footer_nginx", "<center><h1>404 Not Found</h1></center>\n<hr><center>nginx/1.18.0 (Ubuntu)</center>"),
    ("banner.footer_tomcat", '<hr class="line" /><h3>Apache Tomcat/9.0.31</h3></body></html>'),
    ("banner.footer_jetty", '<hr><a href="https://eclipse.org/jetty">Powered by Jetty:// 9.4.44.v20210927</a><hr/>'),
    ("banner.footer_aspnet", "<b>Version Information:</b>&nbsp;Microsoft .NET Framework Version:4.0.30319; "
                             "ASP.NET Version:4.8.4465.0"),
    ("banner.footer_iis", '<div id="server_version"><p>Internet Information Services 10.0</p></div>'),
]


@pytest.mark.parametrize(("sig_id", "body"), FOOTERS, ids=[s for s, _ in FOOTERS])
def test_version_banners_in_error_page_footers(sig_id: str, body: str) -> None:
    findings = keyed(run(resp(body, status=404)).findings)
    assert len(findings) == 1
    key, f = next(iter(findings.items()))
    assert key.startswith("banner:footer:") and f.evidence["signature"] == sig_id and f.evidence["version"]


def test_footers_without_a_version_are_no_banner() -> None:
    body = "<hr><center>nginx</center><address>Apache Server at broker.test Port 80</address>"
    assert run(resp(body, status=404)).findings == []


# ------------------------------------------------------------------ negatives

NEGATIVES: list[tuple[str, str, str]] = [
    ("text/html", "<h1>Error</h1><p>An error occurred. An exception was logged. Code E1023.</p>", "short message"),
    ("text/html", "<h1>系統發生錯誤</h1><p>請稍後再試。錯誤代碼：E1023</p>", "Chinese short message and code"),
    ("text/html",
     "<article><h2>Understanding SQL errors</h2><p>When a query fails MySQL reports an error in your SQL syntax, "
     "PostgreSQL prints ERROR and a hint, SQL Server raises an exception and Oracle shows an ORA code. Use "
     "parameterised queries; a syntax error near a quote is a warning sign.</p></article>", "blog post about SQL"),
    ("text/html", "<p>Python prints a Traceback when an exception is raised; read it bottom up.</p>",
     "the word Traceback"),
    ("text/html", "<p>The call at com.example.Foo.bar(Foo.java:42) failed once in our tests.</p>",
     "a single Java frame in prose"),
    ("text/html", "<p><b>Warning</b>: trading involves risk. Fatal error rates in our app dropped 20%.</p>",
     "PHP-looking words without a path"),
    ("application/json", '{"error":"not_found","message":"Resource not found","status":404}', "JSON API error"),
    ("text/html", "<p>Django Version: see our blog. ERROR: 404.</p>", "one Django row alone"),
    ("text/plain", "goroutine 1 [running]: is how Go starts a panic report", "one Go marker alone"),
    ("text/html",
     "<pre>&lt;b&gt;Warning&lt;/b&gt;:  Undefined variable $x in &lt;b&gt;/var/www/x.php&lt;/b&gt; on line "
     "&lt;b&gt;3&lt;/b&gt;</pre>", "escaped PHP markup quoted in a tutorial"),
    ("text/html", "<h1>Whitelabel Error Page</h1><p>There was an unexpected error (type=Not Found, status=404).</p>",
     "Whitelabel without trace"),
    ("text/html", "<title>404 Not Found</title><h1>Not Found</h1><hr><center>nginx</center>", "nginx 404"),
    ("image/png", "Traceback (most recent call last):\n  File \"/srv/x.py\", line 1\n", "not text"),
]

RECORDED_NEGATIVES = [name for name in RECORDED if "production" in name] + ["tomcat_status_report_404.http",
                                                                           "aspnet_yellow_404.http"]


@pytest.mark.parametrize(("content_type", "body", "why"), NEGATIVES, ids=[n[2] for n in NEGATIVES])
def test_ordinary_words_never_fire(content_type: str, body: str, why: str) -> None:
    assert keyed(run(resp(body, content_type)).findings, *LEAKS) == {}, why


@pytest.mark.parametrize("name", RECORDED_NEGATIVES)
def test_production_pages_are_not_leaks(name: str) -> None:
    page = load_recorded(name)
    verdict = run(resp(page.body, page.content_type, headers=page.header_pairs, status=page.status))
    assert keyed(verdict.findings, *LEAKS) == {}


# ------------------------------------------------------------------ judging rules


def test_a_signature_on_the_home_page_is_not_caused_by_the_provocation() -> None:
    blog = ("<article><h2>What our old error page looked like</h2><pre>Traceback (most recent call last):\n"
            '  File "/srv/app.py", line 3, in handler\nKeyError: id</pre></article>')
    not_found = "<h1>Not found</h1>" + blog  # the 404 page shows the same sidebar article
    sql = "<p>ORA-01756: quoted string not properly terminated</p>"
    verdict = run(resp(not_found, status=404), resp(not_found + sql, kind=ProvocationKind.BAD_ENCODING),
                  home_page=home(HOME_HTML + blog))
    assert set(keyed(verdict.findings, *LEAKS)) == {"bad_encoding:oracle.error"}
    assert verdict.suppressed == {"python.traceback": ["home"]}


def test_a_parameter_variant_is_compared_with_its_own_unmodified_page() -> None:
    article = "<p>Quoted: You have an error in your SQL syntax; check the manual that corresponds to your " \
              "MySQL server version</p>"
    ref = Observed(RequestRole.REFERENCE, None, "GET", "/news?id=3", "http://b.test/news?id=3", 200, "text/html",
                   (), article, True)
    quoted = resp(article, kind=ProvocationKind.PARAM_QUOTE, reference_url="http://b.test/news?id=3",
                  path="/news?id=3%27", status=200)
    not_found = resp(article, status=404)  # not a variant of the article: judged against the home page only
    verdict = judge([home(), not_found, quoted, ref], SIGS)
    assert set(keyed(verdict.findings, *LEAKS)) == {"not_found:mysql.error"}


def test_a_debug_page_carries_its_trace_and_a_database_error_is_its_own_finding() -> None:
    body = DJANGO_500.replace("invalid literal for int() with base 10: &#x27;1&#x27;&#x27;",
                              "unrecognized token: &quot;&#x27;1&#x27;&#x27;&quot;")
    findings = keyed(run(resp(body, kind=ProvocationKind.PARAM_QUOTE)).findings)
    assert set(findings) == {"param_quote:django.technical_500", "param_quote:sqlite.error"}


def test_one_response_gives_one_finding_per_check() -> None:
    body = ("<p>SQLSTATE[42000]: Syntax error or access violation: 1064 You have an error in your SQL syntax; "
            "check the manual that corresponds to your MySQL server version</p>")
    assert set(keyed(run(resp(body)).findings)) == {"not_found:mysql.error"}


def test_keys_name_the_provocation_kind_not_the_path_and_repeats_are_listed() -> None:
    trace = "Traceback (most recent call last):\n  File \"/srv/a.py\", line 1, in x\n"
    verdict = run(resp(trace, "text/plain", path="/posture-1111"), resp(trace, "text/plain", path="/posture-1111.php"),
                  resp(trace, "text/plain", kind=ProvocationKind.BAD_METHOD, path="/"))
    findings = keyed(verdict.findings)
    assert set(findings) == {"not_found:python.traceback", "bad_method:python.traceback"}
    f = findings["not_found:python.traceback"]
    assert f.evidence["request"] == {"method": "GET", "path": "/posture-1111"}
    assert f.evidence["also_matched"] == ["GET /posture-1111.php"]
    assert (f.evidence["status"], f.evidence["content_type"], f.evidence["provocation"]) == (500, "text/plain",
                                                                                            "not_found")


def test_content_decides_not_status() -> None:
    body = "<b>Fatal error</b>:  Uncaught Error: x in <b>/var/www/a.php</b> on line <b>3</b>"
    findings = keyed(run(resp(body, status=200, kind=ProvocationKind.PARAM_QUOTE)).findings)
    assert findings["param_quote:php.error_with_path"].evidence["status"] == 200


def test_header_debug_marker_counts_once_even_on_the_home_page() -> None:
    token = [("x-debug-token", "a1b2c3")]
    verdict = run(resp("<p>nf</p>", headers=token), home_page=home(headers=token))
    findings = keyed(verdict.findings, LeakCheck.DEBUG_PAGE)
    assert list(findings) == ["baseline:symfony.debug_token"]
    assert findings["baseline:symfony.debug_token"].evidence["excerpt"] == "x-debug-token: ***"


def test_non_text_bodies_are_not_read_but_their_headers_are() -> None:
    trace = "Traceback (most recent call last):\n  File \"/srv/a.py\", line 1, in x\n"
    verdict = run(resp(trace, "application/octet-stream", headers=[("x-powered-by", "PHP/8.1.2")]))
    assert set(keyed(verdict.findings)) == {"banner:x-powered-by:php"}


def test_excerpts_are_short_flat_and_mask_secrets() -> None:
    body = ("<script>var SECRET = \"Xq9sLk2PqR7tZ0aB1cD2\";</script>" + "x" * 5000 +
            "<p>db_password=hunter22 ORA-00933: SQL command not properly ended" + " tail" * 200 + "</p>")
    f = run(resp(body)).findings[0]
    ex = str(f.evidence["excerpt"])
    assert len(ex) <= EXCERPT_LIMIT and "ORA-00933" in ex and "hunter22" not in ex and "\n" not in ex
    werk = next(p for p in POSITIVES if p[0] == "werkzeug.debugger")[2]
    assert "Xq9sLk2PqR7tZ0aB1cD2" not in str(run(resp(werk)).findings[0].evidence["excerpt"])


def test_masking_leaves_database_messages_alone() -> None:
    f = run(resp('<pre>sqlite3.OperationalError: unrecognized token: "abc\'"</pre>')).findings[0]
    assert 'unrecognized token: "abc\'"' in str(f.evidence["excerpt"])


def test_truncated_bodies_are_judged_and_say_so() -> None:
    f = run(resp("ORA-01756: quoted string not properly terminated", truncated=True)).findings[0]
    assert f.evidence["truncated"] is True


def test_body_views() -> None:
    views = body_views("<p>a<br/>b &amp; c<!-- hidden\ntrace --></p><script>var x=1</script>", "text/html")
    assert views[View.TEXT] == "\na\nb & c\n hidden\ntrace \n\n"  # block tags end lines, inline ones vanish
    assert body_views("<td>x</td><td><b>Warning</b>: y</td>", "text/html")[View.TEXT] == "\nx\n\nWarning: y\n"
    assert body_views('{"t":"a\\n\\tb\\u003c"}', "application/json")[View.TEXT] == '{"t":"a\n\tb<"}'
    assert body_views("<b>x</b>", "text/plain")[View.TEXT] == "<b>x</b>"


# ------------------------------------------------------------------ bounded work

SIZE = 1 << 18  # quadratic behaviour shows at 256 KiB just as well, and the suite stays fast
PATHOLOGICAL = [
    "A" * SIZE,  # one huge word (base64 blobs)
    "QUJD/+" * (SIZE // 6),
    "at a.b.c.d.e.f.g.h.i.j" * (SIZE // 22),
    ("\tat com.x.Y.z(Y.java:1)\n" + "a." * 400 + "\n") * (SIZE // 825),
    ("Warning: " + "x in /" * 150 + "\n") * (SIZE // 910),
    ("<a" + " b=c" * 1000) * (SIZE // 4002),
    ("   at " + "A." * 120 + "\n") * (SIZE // 247),
    ("Traceback (most recent call last):\n" + " " * 30) * (SIZE // 66),
    ("ERROR:  " + "syntax error at or near" * 3 + "\n") * (SIZE // 78),
    "<!--" * (SIZE // 4),
    ("<td>" * 50 + "x") * (SIZE // 201),
]


@pytest.mark.parametrize("body", PATHOLOGICAL, ids=[f"pathological-{i}" for i in range(len(PATHOLOGICAL))])
def test_judging_a_hostile_body_stays_linear(body: str) -> None:
    started = time.monotonic()
    run(resp(body))
    assert time.monotonic() - started < 5.0  # a backtracking pattern takes minutes here


def test_recorded_files_are_marked_as_recorded() -> None:
    for name in RECORDED:
        head = (Path(__file__).parent / "recorded" / name).read_text("utf-8").splitlines()[0]
        assert head.startswith("# RECORDED SAMPLE"), name
