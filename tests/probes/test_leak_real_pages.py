"""The leak classes of issue 16 against real servers started here.

* a real Flask application (production mode, so no Werkzeug debugger) whose own
  error pages render stack frames in HTML markup and a Jinja template error with
  its numbered source lines;
* a Tomcat-style error page with a distribution-suffixed footer, served by a real
  HTTP server;
* real Django in DEBUG mode: its 404 lists the project's routes.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.base import ProbeResult, RunStatus
from probes.leak.probe import LeakProbe
from probes.leak.signatures import body_views, load_signatures, match_body
from tests.support.context import make_target, probe_context
from tests.support.frameworks import Framework, Mode, free_port, running
from tests.support.servers import Reply, Seen, http_server

APPS = Path(__file__).resolve().parents[1] / "support" / "leak_apps"


async def _scan(url: str, host: str) -> ProbeResult:
    target = make_target(url, (host,))
    async with probe_context(target) as ctx:
        return await LeakProbe().run(target, ctx)


def scan(url: str, host: str) -> ProbeResult:
    result = asyncio.run(_scan(url, host))
    assert result.status is RunStatus.OK, result.error
    return result


def findings_by_key(result: ProbeResult) -> dict[str, dict[str, object]]:
    return {f.key: dict(f.evidence) for f in result.findings}


def _wait(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def flask_markup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, str]]]:
    """The fixture app twice: its home page links /item (frames) or /report (template error)."""
    logs = tmp_path_factory.mktemp("flask-markup")
    procs: list[subprocess.Popen[bytes]] = []
    sites: dict[str, tuple[str, str]] = {}
    try:
        for i, page in enumerate(("item", "report")):
            host = f"127.0.7.{i + 1}"
            port = free_port(host)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "PYTHON"))}
            env.update(PYTHONPATH=str(APPS), POSTURE_PAGE=page)
            argv = [sys.executable, "-m", "flask", "--app", "flask_markup_site", "run", "--no-reload",
                    "--host", host, "--port", str(port)]
            log = logs / f"{page}.log"
            with log.open("wb") as out:
                procs.append(subprocess.Popen(argv, cwd=APPS, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL))
            _wait(procs[-1], f"http://{host}:{port}/", log)
            sites[page] = (f"http://{host}:{port}/", host)
        yield sites
    finally:
        for proc in procs:
            proc.terminate()  # by PID: the processes this fixture started
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_frames_in_markup_from_a_real_flask_app(flask_markup: dict[str, tuple[str, str]]) -> None:
    url, host = flask_markup["item"]
    # the page really carries no plain-text traceback and no debugger marker
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url + "item?id=x", timeout=5)
    page = err.value.read().decode()
    assert 'File <span class="frame-filename">' in page and "Traceback" not in page and "Werkzeug" not in page
    found = findings_by_key(scan(url, host))
    trace = {k: v for k, v in found.items() if v["signature"] == "python.traceback"}
    assert trace, found
    assert any("flask_markup_site.py, line" in str(v["excerpt"]) for v in trace.values())


def test_a_real_jinja_template_error_with_source_lines(flask_markup: dict[str, tuple[str, str]]) -> None:
    url, host = flask_markup["report"]
    found = findings_by_key(scan(url, host))
    pages = {k: v for k, v in found.items() if v["signature"] == "template.source_excerpt"}
    assert pages, found
    ev = next(iter(pages.values()))
    assert "TemplateSyntaxError" in str(ev["excerpt"])
    assert str(ev["request"]).find("/report") >= 0


def test_real_flask_production_pages_are_otherwise_quiet(flask_markup: dict[str, tuple[str, str]]) -> None:
    item = {v["signature"] for v in findings_by_key(scan(*flask_markup["item"])).values()}
    report = {v["signature"] for v in findings_by_key(scan(*flask_markup["report"])).values()}
    assert item == {"python.traceback", "banner.product_token"}
    assert report == {"template.source_excerpt", "banner.product_token"}


TOMCAT_404 = ('<!doctype html><html lang="en"><head><title>HTTP Status 404 – Not Found</title></head><body>'
              '<h1>HTTP Status 404 – Not Found</h1><hr class="line" /><p><b>Type</b> Status Report</p>'
              '<p><b>Description</b> The origin server did not find a current representation for the target '
              'resource.</p><hr class="line" /><h3>Apache Tomcat/10.1.60 (Debian)</h3></body></html>')


def test_tomcat_footer_with_distribution_suffix_from_a_real_server() -> None:
    def route(seen: Seen) -> Reply:
        if seen.path == "/":
            return Reply(200, "<html><body><h1>Fixture Bank</h1></body></html>")
        return Reply(404, TOMCAT_404)

    with http_server({"*": route}, host="127.0.7.2") as srv:
        result = scan(srv.url, srv.host)
    banners = {f.key: f.evidence for f in result.findings if f.check_id == "leak.version_banner"}
    assert "banner:footer:apache-tomcat" in banners, result.findings
    ev = banners["banner:footer:apache-tomcat"]
    assert ev["product"] == "Apache Tomcat" and str(ev["version"]).startswith("10.1.60")
    assert [f for f in result.findings if f.check_id != "leak.version_banner"] == []


def test_real_django_debug_404_lists_the_routes(tmp_path: Path) -> None:
    with running([(Framework.DJANGO, Mode.DEBUG)], tmp_path, first_octet=200) as (server,):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "posture-nothing-here/", timeout=5)
        assert err.value.code == 404
        page = err.value.read().decode()
    sig = next(s for s in load_signatures().signatures if s.id == "django.urlconf_routes")
    hit = match_body(sig, body_views(page, "text/html"))
    assert hit is not None and "Django tried these URL patterns" in hit.excerpt
    # the route list alone decides: a site that rewrote the DEBUG footer is still found
    footerless = page.replace("DEBUG = True", "").replace("Page not found", "Nicht gefunden")
    views = body_views(footerless, "text/html")
    ids = [s.id for s in load_signatures().signatures if s.on_body and match_body(s, views)]
    assert ids == ["django.urlconf_routes"]


def test_real_werkzeug_debugger_frames_are_read_from_their_markup(tmp_path: Path) -> None:
    """The real debugger page with everything but its HTML frames taken out: no plain-text traceback
    (textarea, comment), no debugger markers. What is left is frames split over <cite>, <em>, <code>."""
    with running([(Framework.FLASK, Mode.DEBUG)], tmp_path, first_octet=220) as (server,):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "item?id=posture", timeout=10)
        page = err.value.read().decode()
    assert 'File <cite class="filename">' in page
    bare = re.sub(r"<textarea.*?</textarea>|<!--.*?-->|<title>.*?</title>", "", page, flags=re.S)
    bare = bare.replace("__debugger__", "").replace('class="debugger"', "").replace("WSGI application", "")
    assert "Traceback (most recent call last)" not in bare
    views = body_views(bare, "text/html")
    ids = [s.id for s in load_signatures().signatures if s.on_body and match_body(s, views)]
    assert "python.traceback" in ids and "werkzeug.debugger" not in ids
    hit = match_body(next(s for s in load_signatures().signatures if s.id == "python.traceback"), views)
    assert hit is not None and "flask_site.py" in " ".join(bare.split()) and "line" in hit.excerpt
