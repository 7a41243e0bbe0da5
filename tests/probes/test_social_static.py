"""Static judgement, verdict merging, findings and settings of the social probe (pure, no network)."""

from __future__ import annotations

from typing import Any

import pytest

from probes.base import AssetKind
from probes.net.http import HttpExchange
from probes.social.browser import chromium_args, resolver_rules
from probes.social.links import Judgement, Method, Outcome, Seen, load_social_data
from probes.social.model import Settings as SocialSettings
from probes.social.probe import SocialProbe
from probes.social.report import CHECK_ID, STATIC_NOTE, merge, summarise
from probes.social.static import (
    Occurrence,
    extract_occurrences,
    interstitial_url,
    judge_interstitial,
    judge_markup,
    judge_static,
    page_notice,
)
from tests.support.context import make_target

DATA = load_social_data()
PAGE = "https://www.broker.test/"


def exchange(url: str, status: int = 200, body: str = "", headers: tuple[tuple[str, str], ...] = ()) -> HttpExchange:
    hdrs = headers or (("content-type", "text/html; charset=utf-8"),)
    return HttpExchange("GET", url, "/", "127.0.0.1", status, "", "HTTP/1.1", hdrs, body.encode(), False, 0.0)


def occurrences(body: str) -> list[Occurrence]:
    return extract_occurrences(PAGE, f"<html><body>{body}</body></html>", DATA)


def test_extract_occurrences_in_document_order_with_ordinals() -> None:
    occ = occurrences(
        '<a href="https://www.facebook.com/x">fb</a>'
        '<a href="/about">about</a>'
        '<div onclick="window.open(\'https://line.me/x\')">line</div>'
        '<a href="https://www.facebook.com/x/#top" onclick="return confirm(\'leave?\')">fb again</a>'
        '<map><area href="https://youtu.be/abc"></map>'
    )
    assert [(o.link.key, o.ordinal) for o in occ] == [
        ("https://www.facebook.com/x", 0),
        ("https://line.me/x", 0),
        ("https://www.facebook.com/x", 1),
        ("https://youtu.be/abc", 0),
    ]


def test_extract_skips_inert_subtrees_and_honours_base() -> None:
    html = """<html><head><base href="https://www.broker.test/tw/"></head><body>
      <noscript><a href="https://www.facebook.com/noscript">fb</a></noscript>
      <template><a href="https://www.instagram.com/template">ig</a></template>
      <a href="go?url=https://t.me/x">tg</a></body></html>"""
    occ = extract_occurrences(PAGE, html, DATA)
    assert [o.link.key for o in occ] == ["https://www.broker.test/tw/go?url=https%3A%2F%2Ft.me%2Fx"]
    assert interstitial_url(occ[0]) == "https://www.broker.test/tw/go?url=https://t.me/x"


@pytest.mark.parametrize(
    ("body", "outcome", "seen"),
    [
        ('<a href="https://www.facebook.com/x">fb</a>', Outcome.NO_WARNING, Seen.NOTHING),
        ('<a href="https://www.facebook.com/x" onclick="ga(\'send\')">fb</a>', Outcome.NO_WARNING, Seen.NOTHING),
        ('<a href="https://line.me/x" onclick="return confirm(\'您即將離開本網站\')">x</a>', Outcome.WARNED,
         Seen.INLINE_HANDLER),
        ('<a href="javascript:if(confirm(\'Leave?\'))location=\'https://x.com/x\'">x</a>', Outcome.WARNED,
         Seen.INLINE_HANDLER),
        ('<a href="#" onclick="leaveSite(\'https://www.plurk.com/x\')">x</a>', Outcome.WARNED, Seen.INLINE_HANDLER),
        ('<button onclick="window.open(\'https://t.me/x\')">tg</button>', Outcome.NO_WARNING, Seen.NOTHING),
    ],
)
def test_judge_markup(body: str, outcome: Outcome, seen: Seen) -> None:
    (occ,) = occurrences(body)
    verdict = judge_markup(occ, DATA)
    assert verdict is not None
    assert (verdict.outcome, verdict.seen, verdict.method) == (outcome, seen, Method.STATIC)


def test_redirector_needs_its_page() -> None:
    (occ,) = occurrences('<a href="/leave?url=https://www.youtube.com/@x">yt</a>')
    assert judge_markup(occ, DATA) is None


@pytest.mark.parametrize(
    ("got", "html", "outcome", "seen"),
    [
        (exchange(PAGE + "leave"), "<p>您即將離開本網站，前往 YouTube</p>", Outcome.WARNED, Seen.INTERSTITIAL),
        (exchange(PAGE + "leave"), "<p>You are now leaving Broker.</p>", Outcome.WARNED, Seen.INTERSTITIAL),
        (exchange(PAGE + "leave"), "<script>alert('即將連結至外部網站');location='https://youtu.be/x'</script>",
         Outcome.WARNED, Seen.INTERSTITIAL),
        (exchange(PAGE + "leave"), "<p>Loading...</p><script>location='https://youtu.be/x'</script>",
         Outcome.NO_WARNING, Seen.NOTHING),
        (exchange(PAGE + "leave", 302, headers=(("location", "https://www.youtube.com/@x"),)), None,
         Outcome.NO_WARNING, Seen.NAVIGATED),
        (exchange(PAGE + "leave", 302, headers=(("location", "https://elsewhere.test/"),)), None,
         Outcome.INCONCLUSIVE, Seen.ERROR),
        (exchange(PAGE + "leave", 404), "<h1>Not Found</h1>", Outcome.INCONCLUSIVE, Seen.ERROR),
        ("connection refused", None, Outcome.INCONCLUSIVE, Seen.ERROR),
    ],
)
def test_judge_interstitial(got: HttpExchange | str, html: str | None, outcome: Outcome, seen: Seen) -> None:
    (occ,) = occurrences('<a href="/leave?url=https://www.youtube.com/@x">yt</a>')
    verdict = judge_interstitial(occ, got, html, DATA)
    assert (verdict.outcome, verdict.seen) == (outcome, seen)


def test_page_notice_prefers_visible_text_and_ignores_unrelated_scripts() -> None:
    assert page_notice("<p>非本公司網站</p>", DATA) == "非本公司網站"
    assert page_notice("<script>var label = 'you are leaving';</script><p>hi</p>", DATA) is None


def test_judge_static_uses_fetched_interstitials() -> None:
    occ = occurrences('<a href="/leave?u=https://fb.me/x">a</a><a href="/leave?u=https://fb.me/y">b</a>')
    fetched = {occ[0].link.href: (exchange(occ[0].link.href), "<p>您即將離開本網站</p>")}
    verdicts = judge_static(occ, fetched, DATA)
    assert [v.outcome for v in verdicts] == [Outcome.WARNED, Outcome.INCONCLUSIVE]


# ---------------------------------------------------------------- merge and findings


def judged(page: str, body: str, method: Method, outcome: Outcome, seen: Seen, detail: str = "d") -> Judgement:
    occ = extract_occurrences(page, f"<body>{body}</body>", DATA)[0]
    return Judgement(page, occ.link, method, outcome, seen, detail, occ.ordinal)


FB = '<a href="https://www.facebook.com/x">fb</a>'
IG = '<a href="https://www.instagram.com/x">ig</a>'


def test_one_finding_per_link_listing_its_pages() -> None:
    js = [
        judged("https://b.test/a", FB, Method.BROWSER, Outcome.NO_WARNING, Seen.NAVIGATED, "went"),
        judged("https://b.test/b", FB, Method.BROWSER, Outcome.WARNED, Seen.DIALOG),
        judged("https://b.test/c", FB, Method.BROWSER, Outcome.NO_WARNING, Seen.NAVIGATED),
        judged("https://b.test/a", IG, Method.BROWSER, Outcome.WARNED, Seen.MODAL),
    ]
    findings, links = summarise(js)
    (f,) = findings
    assert (f.check_id, f.key) == (CHECK_ID, "https://www.facebook.com/x")
    ev: dict[str, Any] = dict(f.evidence)
    assert ev["pages"] == ["https://b.test/a", "https://b.test/b", "https://b.test/c"]
    assert ev["pages_without_warning"] == ["https://b.test/a", "https://b.test/c"]
    assert ev["pages_with_warning"] == ["https://b.test/b"]
    assert (ev["platform"], ev["method"], ev["seen"], ev["detail"]) == ("Facebook", "browser", "navigated", "went")
    assert "note" not in ev
    assert [(x["key"], x["verdict"]) for x in links] == [
        ("https://www.facebook.com/x", "no_warning"), ("https://www.instagram.com/x", "warned")]


def test_static_findings_carry_the_static_note() -> None:
    findings, _ = summarise([judged("https://b.test/", FB, Method.STATIC, Outcome.NO_WARNING, Seen.NOTHING)])
    assert findings[0].evidence["note"] == STATIC_NOTE


def test_merge_falls_back_to_static_where_the_browser_could_not_tell() -> None:
    static = [
        judged("https://b.test/a", FB, Method.STATIC, Outcome.NO_WARNING, Seen.NOTHING, "plain"),
        judged("https://b.test/a", IG, Method.STATIC, Outcome.NO_WARNING, Seen.NOTHING, "plain"),
        judged("https://b.test/hung", FB, Method.STATIC, Outcome.NO_WARNING, Seen.NOTHING, "plain"),
        judged("https://b.test/never", FB, Method.STATIC, Outcome.NO_WARNING, Seen.NOTHING, "plain"),
    ]
    browser = [
        judged("https://b.test/a", FB, Method.BROWSER, Outcome.INCONCLUSIVE, Seen.NOTHING, "no effect"),
        judged("https://b.test/a", IG, Method.BROWSER, Outcome.WARNED, Seen.DIALOG, "confirm: leave?"),
    ]
    out, disagreements = merge(browser, static, ["https://b.test/hung"])
    assert [(j.page, j.link.platform, j.method, j.outcome) for j in out] == [
        ("https://b.test/a", "Facebook", Method.STATIC, Outcome.NO_WARNING),
        ("https://b.test/a", "Instagram", Method.BROWSER, Outcome.WARNED),
        ("https://b.test/hung", "Facebook", Method.STATIC, Outcome.NO_WARNING),
    ]
    assert out[0].detail == "plain (browser: no effect)"
    assert disagreements == [{"page": "https://b.test/a", "key": "https://www.instagram.com/x",
                              "static": "no_warning", "browser": "warned", "browser_saw": "confirm: leave?"}]


# ---------------------------------------------------------------- probe surface


def test_applies_to_website_assets_over_http() -> None:
    probe = SocialProbe()
    assert probe.name == "social" and probe.active is False
    assert probe.applies(make_target("https://www.broker.test/"))
    assert probe.applies(make_target("http://www.broker.test/"))
    assert not probe.applies(make_target("https://api.broker.test/", kind=AssetKind.API))
    assert not probe.applies(make_target("https://order.broker.test/", kind=AssetKind.TRADING))
    assert not probe.applies(make_target("tls://order.broker.test:7001"))
    assert not probe.applies(make_target("wss://quote.broker.test/"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, SocialSettings()),
        ({"max_pages": 5, "max_depth": 0, "browser": False}, SocialSettings(max_pages=5, max_depth=0,
                                                                              browser=SocialSettings().browser.OFF)),
        ({"browser": True, "page_timeout": 3}, SocialSettings(browser=SocialSettings().browser.ON, page_timeout=3.0)),
        ({"browser": "auto", "chromium": "/opt/chromium/chrome"}, SocialSettings(chromium="/opt/chromium/chrome")),
    ],
)
def test_settings_parse(raw: dict[str, Any], expected: SocialSettings) -> None:
    assert SocialSettings.parse(raw) == expected


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ({"max_page": 3}, "max_page"),
        ({"max_pages": 0}, "max_pages"),
        ({"max_pages": "30"}, "max_pages"),
        ({"max_depth": True}, "max_depth"),
        ({"browser": "yes"}, "browser"),
        ({"chromium": ""}, "chromium"),
        ({"page_timeout": 0.1}, "page_timeout"),
    ],
)
def test_settings_errors_name_the_key(raw: dict[str, Any], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        SocialSettings.parse(raw)


async def test_bad_settings_are_an_error_result() -> None:
    target = make_target("http://www.broker.test/", settings={"social": {"max_pages": -1}})
    result = await SocialProbe().run(target, None)  # type: ignore[arg-type]  # never reaches the network
    assert result.error is not None and "max_pages" in result.error.message


@pytest.mark.parametrize(
    ("host", "address", "rules"),
    [
        ("www.broker.test", "127.0.0.1", "MAP www.broker.test 127.0.0.1, MAP * ~NOTFOUND"),
        ("WWW.Broker.Test.", "203.0.113.7", "MAP www.broker.test 203.0.113.7, MAP * ~NOTFOUND"),
        ("www.broker.test", "2001:db8::1", "MAP www.broker.test [2001:db8::1], MAP * ~NOTFOUND"),
        ("127.0.0.5", "127.0.0.5", "MAP * ~NOTFOUND"),
    ],
)
def test_resolver_rules_pin_the_asset_and_nothing_else(host: str, address: str, rules: str) -> None:
    assert resolver_rules(host, address) == rules


def test_chromium_args() -> None:
    args = chromium_args("www.broker.test", "127.0.0.1")
    assert "--no-sandbox" not in args  # the sandbox is probes.social.launch's to decide, on by default
    for flag in ("--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--proxy-bypass-list=<-loopback>"):
        assert flag in args
    # Connections outside intercepted requests go to a proxy whose name cannot resolve.
    assert "--proxy-server=http://no-proxy.posture.invalid:9" in args
    assert args[-1] == "--host-resolver-rules=MAP www.broker.test 127.0.0.1, MAP * ~NOTFOUND"
    assert not any("EXCLUDE" in a for a in args)  # localhost must not resolve for scanned pages either
