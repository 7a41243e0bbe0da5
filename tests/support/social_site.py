"""Local websites for the social probe: each way sites link to social media, with and without a warning.

Every page is served by :func:`tests.support.servers.http_server` on loopback;
the asset is reached under a made-up name pinned to 127.0.0.1 (no DNS at all:
posture's HTTP client and the browser both use the pinned address).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.support.servers import Reply, Route, Seen

HOST = "www.social.test"

# Link per scenario (what the page's visitor clicks).
PLAIN = "https://www.facebook.com/posture.tw"  # footer of every page, no warning
CONFIRM = "https://line.me/R/ti/p/@posture"  # inline onclick confirm()
INTERSTITIAL_DEST = "https://www.youtube.com/@posture"  # via /leave?url=... with a notice
INTERSTITIAL = "/leave?url=https%3A%2F%2Fwww.youtube.com%2F%40posture"
GLOBAL = "https://x.com/posture_tw"  # warned by a site-wide script file
MODAL = "https://www.instagram.com/posture.tw/"  # warned by a custom modal opened by script
RENDERED = "https://t.me/posture_tw"  # written into the page by script, no warning
SUBPAGE = "https://www.threads.net/@posture.tw"  # only on /about/team (depth 2), no warning
REDIRECT = "/go?to=https://www.tiktok.com/@posture"  # same-origin 302 straight out
POPUP = "https://www.linkedin.com/company/posture"  # target=_blank, no warning
KNOWN = "https://www.plurk.com/posture"  # onclick calls leaveSite(), a known notice function
HIDDEN = "https://www.pinterest.com/posture"  # in a collapsed (display:none) menu, no warning
COVERED = "https://www.dcard.tw/@posture"  # a button under a cookie banner opening a window, no warning

NAV = ["/confirm", "/interstitial", "/global", "/modal", "/rendered", "/about", "/redirect", "/popup", "/known",
       "/covered"]


def page(body: str, *, head: str = "", nav: bool = True) -> Reply:
    links = " ".join(f'<a href="{p}">{p.strip("/")}</a>' for p in NAV) if nav else ""
    html = f"""<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8"><title>posture test</title>{head}</head>
<body><nav>{links}</nav><main>{body}</main>
<footer><a class="fb" href="{PLAIN}">Facebook 粉絲專頁</a></footer></body></html>"""
    return Reply(200, html)


_SITE_JS = """document.addEventListener('click', function (e) {
  var a = e.target.closest ? e.target.closest('a[href]') : null;
  if (a && a.host !== location.host && CONDITION) {
    if (!confirm('You are leaving our website for a third-party site. Continue?')) e.preventDefault();
  }
}, true);"""
GLOBAL_JS = _SITE_JS.replace("CONDITION", "true")  # every outside link
BENCH_JS = _SITE_JS.replace("CONDITION", "a.dataset.warn === 'yes'")  # marked links only

MODAL_HTML = """<div id="leave-modal" style="display:none; position:fixed; top:20%; left:20%; background:#fff">
  <p>提醒：您即將離開本網站，前往第三方網站，該網站非本公司網站。</p>
  <button id="leave-ok">確定</button> <button id="leave-cancel">取消</button>
</div>
<script>
(function () {
  var pending = null, modal = document.getElementById('leave-modal');
  document.querySelectorAll('a.social').forEach(function (a) {
    a.addEventListener('click', function (e) { e.preventDefault(); pending = a.href; modal.style.display = 'block'; });
  });
  document.getElementById('leave-ok').onclick = function () { location.href = pending; };
  document.getElementById('leave-cancel').onclick = function () { modal.style.display = 'none'; };
})();
</script>"""

RENDER_JS = """window.addEventListener('DOMContentLoaded', function () {
  var a = document.createElement('a');
  a.href = 'https://t.me/' + 'posture_tw';
  a.textContent = 'Telegram';
  document.getElementById('slot').appendChild(a);
});"""


def scenario_routes(off_host: str) -> dict[str, Route]:
    """The scenario site. ``off_host`` is another local server the pages try to load from."""
    tracking = (
        f'<img src="{off_host}/pixel.png" width="1" height="1">'
        f'<script src="{off_host}/track.js"></script>'
        f'<iframe src="{off_host}/frame" width="10" height="10"></iframe>'
        f"<script>fetch('{off_host}/beacon').catch(function () {{}});"
        f"new Image().src = 'https://www.facebook.com/tr?id=1';"
        f"try {{ new WebSocket('{off_host.replace('http', 'ws')}/socket'); }} catch (e) {{}}</script>"
        '<link rel="preconnect" href="https://www.facebook.com">'
    )
    return {
        "/": page(f"<h1>首頁</h1>{tracking}"),
        "/confirm": page(
            f'<a href="{CONFIRM}" onclick="return confirm(\'您即將離開本網站，前往 LINE 官方帳號\')">LINE</a>'
        ),
        "/interstitial": page(f'<a href="{INTERSTITIAL}">YouTube</a>'),
        "/leave": page(
            f'<p>您即將離開本網站，前往外部網站。</p><a href="{INTERSTITIAL_DEST}">繼續前往</a>', nav=False
        ),
        "/global": page(f'<a href="{GLOBAL}">X</a>', head='<script src="/static/site.js"></script>'),
        "/static/site.js": Reply(200, GLOBAL_JS, content_type="text/javascript"),
        "/modal": page(f'<a class="social" href="{MODAL}">Instagram</a>{MODAL_HTML}'),
        "/rendered": page('<div id="slot"></div>', head='<script src="/static/render.js"></script>'),
        "/static/render.js": Reply(200, RENDER_JS, content_type="text/javascript"),
        "/about": page('<a href="/about/team">團隊</a>'),
        "/about/team": page(f'<a href="{SUBPAGE}">Threads</a>'),
        "/redirect": page(f'<a href="{REDIRECT}">TikTok</a>'),
        "/go": Reply(302, "", headers={"Location": "https://www.tiktok.com/@posture"}),
        "/popup": page(f'<a href="{POPUP}" target="_blank" rel="noopener">LinkedIn</a>'),
        "/known": page(
            f'<a href="#" onclick="leaveSite(\'{KNOWN}\'); return false;">Plurk</a>'
            "<script>function leaveSite(u) { if (confirm('即將連結至外部網站：' + u)) location.href = u; }</script>"
        ),
        "/covered": page(
            f'<ul style="display:none"><li><a href="{HIDDEN}">Pinterest</a></li></ul>'
            f"<button onclick=\"window.open('{COVERED}')\">Dcard</button>"
            '<div style="position:fixed; top:0; left:0; right:0; bottom:0; background:rgba(0,0,0,.2)">'
            "本網站使用 cookie。</div>"
        ),
    }


# ---------------------------------------------------------------- benchmark: a 30-page site

BENCH_FOOTER = [
    ("https://www.facebook.com/bench", ""),  # no warning
    ("https://www.youtube.com/@bench", ""),  # no warning
    ("https://line.me/R/ti/p/@bench", ' data-warn="yes"'),  # warned by the site script
    ("https://www.instagram.com/bench", ' data-warn="yes"'),  # warned by the site script
    ("https://x.com/bench", ""),  # no warning
    ("https://www.linkedin.com/company/bench", ' onclick="return confirm(\'您即將離開本網站\')"'),
]


def bench_routes(pages: int = 30) -> dict[str, Route]:
    """``pages`` pages, each with a nav, a few hundred words and a six-link social footer."""
    nav = " ".join(f'<a href="/p/{i}">第 {i} 頁</a>' for i in range(1, pages))
    filler = "<p>" + "本公司提供證券經紀、期貨交易與財富管理服務。" * 20 + "</p>"
    footer = " ".join(f'<a href="{href}"{extra}>{href.split("/")[2]}</a>' for href, extra in BENCH_FOOTER)

    def one(title: str) -> Reply:
        html = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<script src="/static/site.js"></script></head><body><header><nav>{nav}</nav></header>
<main><h1>{title}</h1>{filler * 5}</main><footer>{footer}</footer></body></html>"""
        return Reply(200, html)

    routes: dict[str, Route] = {
        "/": one("首頁"),
        "/static/site.js": Reply(200, BENCH_JS, content_type="text/javascript"),
    }
    for i in range(1, pages):
        routes[f"/p/{i}"] = one(f"第 {i} 頁")
    return routes


# ---------------------------------------------------------------- misbehaving sites


def hang_routes() -> dict[str, Route]:
    """The home page links to /spin, whose inline script never ends."""
    return {
        "/": page('<a href="/spin">spin</a>', nav=False),
        "/spin": page("<script>while (true) {}</script>", nav=False),
    }


def slow_script_routes(delay: float, requested: threading.Event) -> dict[str, Route]:
    """A page whose (parser-blocking) script takes ``delay`` seconds; ``requested`` is set when it is asked for."""

    def slow(seen: Seen) -> Reply:
        requested.set()
        time.sleep(delay)
        return Reply(200, "var slow = 1;", content_type="text/javascript")

    return {
        "/": page("<p>slow</p>", head='<script src="/static/slow.js"></script>', nav=False),
        "/static/slow.js": slow,
    }


# ---------------------------------------------------------------- processes


def descendants(root: int | None = None) -> dict[int, str]:
    """pid -> command line of every process below ``root`` (default: this test process)."""
    root = root or os.getpid()
    parent: dict[int, int] = {}
    cmd: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the ppid follows the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z":
            parent[int(entry.name)] = int(fields[1])
    out: dict[int, str] = {}
    for pid in parent:
        p = pid
        while p in parent and p != root:
            p = parent[p]
        if p == root and pid != root:
            out[pid] = cmd.get(pid, "")
    return out


def chromium_descendants() -> dict[int, str]:
    return {pid: c for pid, c in descendants().items() if "chromium" in c and "--user-data-dir=" in c}
