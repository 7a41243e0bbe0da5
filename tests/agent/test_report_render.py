"""The HTML report of real scans, rendered by headless Chromium: not blank, self-contained, prints to A4.

Real HTTPS servers on loopback (a generated CA, a certificate that expires in 60
days), resolved through the test dnsmasq, scanned by the CLI at three ``--now``
dates; between the second and third scan the site moves to a server that sends
HSTS, so the missing-HSTS finding is fixed. Chromium loads the file with every
request other than file:, data: and about: blocked and recorded.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from agent.cli import main
from state.records import ScanStatus
from state.store import Store
from state.views import FindingFilter
from tests.support.certs import Authority, write_pair
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, http_server, server_context

HOST = "127.0.0.63"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LOW_BLUE = (0x25, 0x63, 0xEB)  # the "low" severity colour in the charts (svg.COLOURS)


class _Refs(HTMLParser):
    """Every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data", "action", "xlink:href") and value is not None:
                self.refs.append(value)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A database (SQLite) holding three real scans, and the config that names the asset."""
    d = tmp_path_factory.mktemp("report-lab")
    ca = Authority("report test root")
    leaf = ca.leaf("www.report.test", not_after=datetime.now(UTC).replace(microsecond=0) + timedelta(days=60))
    cert, key = write_pair(d, "www", ca.chain_pem(leaf), leaf.key_pem)
    bundle = ca.write_trust(d / "ca.pem")
    page = "<html><body>broker</body></html>"
    tls = server_context(cert, key)
    dns = DnsServer({"www.report.test": HOST}).start()
    db = f"sqlite:///{d / 'posture.db'}"
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    dates = [first, first + timedelta(days=7), first + timedelta(days=14)]
    config = d / "posture.toml"

    def scan_at(when: datetime, port: int) -> None:
        config.write_text(f'[agent]\nresolver = "{dns.address}"\nca_bundle = "{bundle}"\n\n'
                          f'[[assets]]\nname = "www"\nurl = "https://www.report.test:{port}/"\n')
        code = main(["--config", str(config), "--db", db, "--now", when.isoformat(), "scan",
                     "--probe", "tls", "--probe", "http", "--format", "json"])
        assert code == 0

    try:
        # The same URL throughout (a finding seen at another URL is not fixed by a scan of this one):
        # the site is fixed in place, its server restarted on the same port with HSTS on.
        with http_server({"/": Reply(200, page)}, host=HOST, tls=tls) as before:
            port = before.port
            scan_at(dates[0], port)
            scan_at(dates[1], port)
        with http_server({"/": Reply(200, page, {"Strict-Transport-Security": "max-age=31536000"})},
                         host=HOST, port=port, tls=tls):
            scan_at(dates[2], port)
    finally:
        dns.stop()
    yield {"db": db, "config": config, "dates": dates, "dir": d}


def test_real_scans_render_in_chromium(scanned: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import Route, sync_playwright

    capsys.readouterr()
    dates: list[datetime] = scanned["dates"]
    since = dates[0].date().isoformat()
    now = (dates[-1] + timedelta(days=1)).isoformat()
    base = ["--config", str(scanned["config"]), "--db", scanned["db"], "--now", now, "report", "--from", since]
    out_html = scanned["dir"] / "report.html"
    assert main([*base, "-o", str(out_html)]) == 0
    assert main([*base, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    html = out_html.read_text("utf-8")

    # The numbers: three scans of www, the HSTS finding fixed by the third, the real grade and certificate.
    (asset,) = doc["assets"]
    with Store.open(scanned["db"]) as store:
        stored = store.scans("www")
        fixed = store.findings(FindingFilter.FIXED, "www")
    assert [s["id"] for s in asset["scans"]] == [s.id for s in stored] and len(stored) == 3
    assert all(s.status is ScanStatus.PARTIAL and not s.full for s in stored)  # narrowed with --probe
    assert all({p["probe"]: p["outcome"] for p in s["probes"]}["tls"] == "ran" for s in asset["scans"])
    assert asset["cadence"]["complete_scans"] == []  # so they do not count for the cadence
    hsts = next(f for f in asset["findings"] if f["check_id"] == "http.hsts.missing")
    (row,) = [f for f in fixed if f.id == hsts["id"]]
    assert hsts["state"] == "fixed" and hsts["fixed_at"] == row.fixed_at.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    assert all(s["grade"] for s in asset["scans"])
    (cert,) = asset["certificates"]
    assert 43 <= cert["days_left"] <= 46 and cert["address"] == HOST

    # Self-contained: nothing to fetch, no script.
    refs = _Refs()
    refs.feed(html)
    assert all(r.startswith("#") for r in refs.refs), refs.refs
    assert not refs.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not re.search(r"url\(|@import|@font-face", html)

    outside: list[str] = []

    def guard(route: Route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "about:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            page.route("**/*", guard)
            page.goto(out_html.as_uri())
            shot = page.screenshot(full_page=True)
            rendered = page.evaluate(
                "() => ({scanRows: document.querySelector('#asset-www table.scans').tBodies[0].rows.length,"
                " charts: document.querySelectorAll('svg.chart').length,"
                " height: document.body.scrollHeight})"
            )
            colours = _colours(page, shot)
            pdf = page.pdf(format="A4", print_background=True)
        finally:
            browser.close()
    assert outside == []
    assert rendered["scanRows"] == 3 and rendered["charts"] == 4 and rendered["height"] > 1400
    assert colours["distinct"] >= 20, colours  # text, tables, badges and charts: far from a blank page
    assert colours["low_blue"] > 5000  # the open-findings chart drew its "low" area (legend and badges: ~1000)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 20_000
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages >= 2  # the summary, then a page per asset


def test_the_report_font_is_installed() -> None:
    """The report asks for Noto Sans CJK TC first: without it the PDF's Chinese is boxes or a poor fallback."""
    import subprocess

    family = subprocess.run(["fc-match", "-f", "%{family}", "Noto Sans CJK TC"], capture_output=True, text=True,
                            check=True).stdout
    assert "Noto Sans CJK TC" in family, f"fc-match gives {family!r}: apt-get install fonts-noto-cjk"


def _colours(page: Any, png: bytes) -> dict[str, int]:
    """Distinct colours of the screenshot, and pixels of the chart's 'low' blue, decoded by a canvas."""
    script = """async ({src, rgb}) => {
        const img = new Image();
        img.src = src;
        await img.decode();
        const canvas = document.createElement('canvas');
        canvas.width = img.width; canvas.height = img.height;
        const ctx = canvas.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, img.width, img.height).data;
        const seen = new Set();
        let blue = 0;
        for (let i = 0; i < data.length; i += 4) {
            seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
            if (Math.abs(data[i] - rgb[0]) + Math.abs(data[i + 1] - rgb[1]) + Math.abs(data[i + 2] - rgb[2]) < 40) {
                blue++;
            }
        }
        return {distinct: seen.size, low_blue: blue};
    }"""
    src = "data:image/png;base64," + base64.b64encode(png).decode()
    result: dict[str, int] = page.evaluate(script, {"src": src, "rgb": list(LOW_BLUE)})
    return result
