"""Stack traces by the shape of their frames, source excerpts and suffixed version footers (no network)."""

from __future__ import annotations

import pytest

from probes.leak.frames import numbered_run, parse_shape
from probes.leak.judge import judge
from probes.leak.signatures import body_views, load_signatures, match_body, parse_signatures
from tests.probes.test_leak_judge import home, resp
from vocab import DataFileError

SIGS = load_signatures()


def body_hits(body: str, content_type: str = "text/html") -> list[str]:
    views = body_views(body, content_type)
    return [s.id for s in SIGS.signatures if s.on_body and match_body(s, views) is not None]


def judged(body: str, content_type: str = "text/html") -> list[str]:
    return [str(f.evidence["signature"]) for f in judge([home(), resp(body, content_type)], SIGS).findings]


# Frames in markup: every language's frames rendered by a debugger in inline elements, as no
# framework-specific string would catch them.
MARKED_UP: list[tuple[str, str, str]] = [
    ("python.traceback",
     '<div class="frame"><h4>File <span class="frame-filename">/app/x.py</span>, line <i>24</i>, in <b>f</b></h4>'
     '</div><div class="frame"><h4>File <span class="frame-filename">/app/lib/y.py</span>, line <i>3</i>, in '
     "<b>g</b></h4></div>", "Python frames in spans, no 'Traceback' line"),
    ("python.traceback",
     '<li>File <cite>"/app/x.py"</cite>, line <em>24</em>, in <code>view</code></li>'
     "<li><b>KeyError</b>: 'id'</li>", "one Python frame and its exception"),
    ("java.stack_trace",
     "<ul><li>at <b>com.fixture.web.Api</b>.<i>get</i>(<span>Api.java:42</span>)</li>"
     "<li>at <b>org.apache.catalina.core.StandardWrapperValve</b>.<i>invoke</i>(StandardWrapperValve.java:199)"
     "</li></ul>", "JVM frames in list items"),
    ("dotnet.stack_trace",
     "<p>at <span>Fixture.Web.Controllers.HomeController.Index()</span> in <span>C:\\src\\Home.cs</span>:line "
     "<b>18</b></p><p>at <span>Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.Execute(Object "
     "target)</span></p>", ".NET frames in paragraphs"),
    ("php.uncaught_stack",
     "<div>#0 <span class='path'>/var/www/html/lib/Db.php</span>(<b>41</b>): Db-&gt;query('x')</div>"
     "<div>#1 <span class='path'>/var/www/html/index.php</span>(<b>7</b>): Db-&gt;run()</div>",
     "PHP frames without 'Stack trace:'"),
    ("php.uncaught_stack",
     '<div class="frame"><span>vendor/laravel/framework/src/Illuminate/Routing/Router.php</span><span>:</span>'
     '<span>805</span></div><div class="frame"><span>app/Http/Controllers/ItemController.php</span>:<span>21</span>'
     "</div>", "Laravel 11 renderer frames (file:line)"),
    ("php.uncaught_stack",
     "<h2>TypeError</h2><div class='trace-line'>in <a>/srv/app/src/Controller/ItemController.php</a> (line 21)</div>",
     "Symfony trace line and its exception"),
    ("ruby.backtrace",
     "<tr><td><code>/app/models/order.rb:12:in `find'</code></td></tr>"
     "<tr><td><code>/app/controllers/orders_controller.rb:8:in `show'</code></td></tr>", "Ruby frames in a table"),
    ("perl.die",
     "<pre>DBD::Pg::st execute failed: ERROR at <b>/srv/app/lib/Db.pm</b> line <b>41</b>.</pre>",
     "one Perl frame with a DBI failure"),
    ("node.stack_trace",
     "<div class='stack'><div>TypeError: x is undefined</div><div>at <span>handler</span> "
     "(<span>/srv/app/routes/item.js</span>:14:21)</div></div>", "one Node frame and its error"),
    ("go.panic",
     "<pre><b>goroutine 7 [running]:</b>\nmain.handler(...)\n\t<i>/srv/app/main.go</i>:31 +0x1d\n</pre>",
     "Go goroutine header and one frame"),
]


@pytest.mark.parametrize(("sig_id", "body", "why"), MARKED_UP, ids=[m[2] for m in MARKED_UP])
def test_frames_are_found_by_their_shape_in_markup(sig_id: str, body: str, why: str) -> None:
    assert judged(body) == [sig_id], why


PROSE: list[tuple[str, str]] = [
    ("<p>Errors name the place: File /app/x.py, line 24, in f is where it started.</p>", "one Python frame in prose"),
    ("<p>Call com.fixture.Api.get(Api.java:42) when in doubt.</p>", "one Java frame without an exception"),
    ("<p>We met at /srv/office line 3 and at the shop.</p>", "Perl-like words in prose"),
    ("<ol><li>1. Check the address</li><li>2. Try again</li><li>3. Call us</li></ol><p>Error</p>",
     "a numbered list on an error page"),
    ("<p>Our guide explains how a ValueError or a NullPointerException is handled.</p>", "exception names alone"),
    ("<p>See app/Http/Kernel.php:21 for the middleware list.</p>", "one PHP file:line in prose"),
]


@pytest.mark.parametrize(("body", "why"), PROSE, ids=[p[1] for p in PROSE])
def test_prose_is_not_a_trace(body: str, why: str) -> None:
    assert judged(body) == [], why


def test_frame_shapes_all_have_sources_and_need_two_frames() -> None:
    assert {s.id for s in SIGS.frames} >= {"python", "java", "dotnet", "php", "ruby", "perl", "node", "go"}
    for shape in SIGS.frames:
        assert shape.source.strip() and shape.min_frames >= 2
    with pytest.raises(DataFileError, match="at least 2"):
        parse_shape({"id": "x", "frame": "a", "min_frames": 1, "source": "s"})
    with pytest.raises(DataFileError, match="source"):
        parse_shape({"id": "x", "frame": "a"})
    with pytest.raises(DataFileError, match="unknown frame shape"):
        parse_signatures("[[signatures]]\nid='a'\ncheck='leak.stack_trace'\nsource='x'\nframes='nope'")
    with pytest.raises(DataFileError, match="unknown frame shape 'nope'"):
        parse_signatures("[[frames]]\nid='a'\nframe='x'\nsource='s'\n[[signatures]]\nid='a'\n"
                         "check='leak.stack_trace'\nsource='x'\nframes=['a', 'nope']")
    with pytest.raises(DataFileError, match="source_lines"):
        parse_signatures("[[signatures]]\nid='a'\ncheck='leak.debug_page'\nsource='x'\ntext=['a']\nsource_lines=2")


def test_numbered_source_lines_must_be_consecutive_and_close() -> None:
    assert numbered_run("10: a\n11: b\n12: c\n", 3) is not None
    assert numbered_run("10\n\n  a\n\n\n11\n\n b\n12\n c\n", 3) is not None  # a table: numbers and code apart
    assert numbered_run("10: a\n12: b\n13: c\n", 3) is None
    assert numbered_run("10: a\n" + "x\n" * 10 + "11: b\n12: c\n", 3) is None


JINJA_PAGE = """<html><body><h1>Internal Server Error</h1>
<p><b>jinja2.exceptions.TemplateSyntaxError</b>: Unexpected end of template. Jinja was looking for 'endfor'.</p>
<table class="source"><tr><td class="n">3</td><td>&lt;ul&gt;</td></tr>
<tr><td class="n">4</td><td>{% for row in rows %}</td></tr>
<tr class="current"><td class="n">5</td><td>  &lt;li&gt;{{ row.name }}&lt;/li&gt;</td></tr></table></body></html>"""


def test_a_template_error_with_source_lines_is_a_debug_page() -> None:
    assert judged(JINJA_PAGE) == ["template.source_excerpt"]
    assert judged(JINJA_PAGE.replace("TemplateSyntaxError", "template problem")) == []


@pytest.mark.parametrize("suffix", [" (Debian)", "-1ubuntu1", "+deb12u1", " (Ubuntu)", " (Red Hat)", "-fips"])
def test_tomcat_footer_with_a_distribution_suffix(suffix: str) -> None:
    body = (f"<html><body><h1>HTTP Status 500 – Internal Server Error</h1><hr class=\"line\" />"
            f"<h3>Apache Tomcat/10.1.60{suffix}</h3></body></html>")
    verdict = judge([home(), resp(body)], SIGS)
    assert verdict.banners and verdict.banners[0]["product"] == "Apache Tomcat"
    assert str(verdict.banners[0]["version"]).startswith("10.1.60")


@pytest.mark.parametrize(("body", "product"), [
    ("<hr><center>nginx/1.22.1 (Ubuntu)</center>", "nginx"),
    ("<hr><center>nginx/1.22.1+deb12u1</center>", "nginx"),
    ("<address>Apache/2.4.62-1ubuntu1 (Debian) Server at b.test Port 80</address>", "Apache"),
])
def test_other_footers_tolerate_suffixes(body: str, product: str) -> None:
    verdict = judge([home(), resp(f"<html><body><h1>404</h1>{body}</body></html>")], SIGS)
    assert [b["product"] for b in verdict.banners] == [product]


def test_server_header_suffixes_keep_the_version() -> None:
    r = resp("<p>x</p>", headers=[("server", "nginx/1.22.1+deb12u1")])
    verdict = judge([home(), r], SIGS)
    assert {(b["product"], b["version"]) for b in verdict.banners} == {("nginx", "1.22.1+deb12u1")}
