"""Pure parts of the social probe: platforms, keys, link classification, notice wording."""

from __future__ import annotations

import pytest

from probes.social.links import (
    Via,
    classify_link,
    load_social_data,
    normalise_href,
    notice_in_code,
    social_destination_in_query,
    urls_in_code,
)

DATA = load_social_data()
PAGE = "https://www.broker.test/news/index.html"


def test_every_platform_has_domains_and_a_source() -> None:
    assert len(DATA.platforms) >= 20
    for p in DATA.platforms:
        assert p.domains and p.source, p.name
    names = {p.name for p in DATA.platforms}
    for required in ("Facebook", "Instagram", "LINE", "YouTube", "X (Twitter)", "LinkedIn", "Threads", "TikTok",
                     "Telegram", "Weibo", "Pinterest", "Dcard", "PTT", "Plurk", "Discord", "WhatsApp", "WeChat",
                     "Flickr", "Medium", "Bilibili"):
        assert required in names


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("https://www.facebook.com/x", "Facebook"),
        ("https://m.facebook.com/x", "Facebook"),
        ("https://fb.me/x", "Facebook"),
        ("https://fb.com/x", "Facebook"),
        ("https://FB.ME./x", "Facebook"),
        ("https://www.instagram.com/x", "Instagram"),
        ("https://line.me/R/ti/p/@x", "LINE"),
        ("https://lin.ee/abc", "LINE"),
        ("https://page.line.me/x", "LINE"),
        ("https://youtu.be/abc", "YouTube"),
        ("https://www.youtube.com/@x", "YouTube"),
        ("https://x.com/x", "X (Twitter)"),
        ("https://twitter.com/x", "X (Twitter)"),
        ("https://t.co/abc", "X (Twitter)"),
        ("https://lnkd.in/abc", "LinkedIn"),
        ("https://www.threads.net/@x", "Threads"),
        ("https://www.tiktok.com/@x", "TikTok"),
        ("https://t.me/x", "Telegram"),
        ("https://weibo.com/x", "Weibo"),
        ("https://tw.pinterest.com/x", "Pinterest"),
        ("https://www.dcard.tw/f/x", "Dcard"),
        ("https://www.ptt.cc/bbs/Stock/index.html", "PTT"),
        ("https://www.plurk.com/x", "Plurk"),
        ("https://discord.gg/abc", "Discord"),
        ("https://wa.me/886912345678", "WhatsApp"),
        ("https://mp.weixin.qq.com/s/abc", "WeChat"),
        ("https://www.flickr.com/photos/x", "Flickr"),
        ("https://medium.com/@x", "Medium"),
        ("https://www.bilibili.com/video/x", "Bilibili"),
    ],
)
def test_platform_of_social_hosts(url: str, platform: str) -> None:
    found = DATA.platform_of(url)
    assert found is not None and found.name == platform


@pytest.mark.parametrize(
    "url",
    [
        "https://notfacebook.com/x",  # suffix without a dot boundary
        "https://facebook.com.evil.test/x",  # platform name as a label of another domain
        "https://box.com/x",  # ends in "x.com" but is not x.com
        "https://www.broker.test/facebook.com",  # the platform only in the path
        "mailto:x@facebook.com",
        "",
        "http://[::1/",  # unparsable
    ],
)
def test_platform_of_other_urls(url: str) -> None:
    assert DATA.platform_of(url) is None


@pytest.mark.parametrize(
    ("href", "key"),
    [
        ("https://WWW.Facebook.COM/Posture/", "https://www.facebook.com/Posture"),
        ("https://www.facebook.com/", "https://www.facebook.com"),
        ("https://www.facebook.com", "https://www.facebook.com"),
        ("https://www.facebook.com/x#about", "https://www.facebook.com/x"),
        ("https://www.facebook.com:443/x", "https://www.facebook.com/x"),
        ("http://www.facebook.com:80/x", "http://www.facebook.com/x"),
        ("https://www.facebook.com:8443/x", "https://www.facebook.com:8443/x"),
        ("https://user:pw@www.facebook.com/x", "https://www.facebook.com/x"),
        ("https://www.youtube.com/watch?v=abc&utm_source=site&utm_medium=footer", "https://www.youtube.com/watch?v=abc"),
        ("https://www.facebook.com/x?fbclid=123&b=2&a=1", "https://www.facebook.com/x?a=1&b=2"),
        ("https://youtu.be/abc?si=tracking", "https://youtu.be/abc"),
        ("https://www.instagram.com/x?igsh=abc", "https://www.instagram.com/x"),
        ("https://line.me/R/ti/p/@x", "https://line.me/R/ti/p/@x"),
        ("https://www.facebook.com/%E5%85%83%E5%A4%A7", "https://www.facebook.com/%E5%85%83%E5%A4%A7"),
        ("https://www.facebook.com/元大", "https://www.facebook.com/%E5%85%83%E5%A4%A7"),
        ("https://www.facebook.com/a b", "https://www.facebook.com/a%20b"),
        ("https://www.facebook.com/x?q=a b", "https://www.facebook.com/x?q=a+b"),
        ("https://www.facebook.com/x?q=a%20b", "https://www.facebook.com/x?q=a+b"),
    ],
)
def test_normalise_href(href: str, key: str) -> None:
    assert normalise_href(href) == key


def test_normalise_href_is_idempotent() -> None:
    for href in ("https://WWW.Facebook.COM/Posture/?b=1&a=2&utm_x=1#x", "https://www.facebook.com/元大"):
        once = normalise_href(href)
        assert normalise_href(once) == once


@pytest.mark.parametrize(
    ("href", "onclick", "target", "key", "via", "destination"),
    [
        ("https://www.facebook.com/x/", None, None, "https://www.facebook.com/x", Via.DIRECT,
         "https://www.facebook.com/x/"),
        ("//line.me/x", None, "_blank", "https://line.me/x", Via.DIRECT, "https://line.me/x"),
        ("/go?url=https%3A%2F%2Fwww.youtube.com%2F%40x", None, None,
         "https://www.broker.test/go?url=https%3A%2F%2Fwww.youtube.com%2F%40x", Via.REDIRECTOR,
         "https://www.youtube.com/@x"),
        ("leave.aspx?to=www.facebook.com/x", None, None,
         "https://www.broker.test/news/leave.aspx?to=www.facebook.com%2Fx", Via.REDIRECTOR,
         "https://www.facebook.com/x"),
        ("#", "window.open('https://t.me/x')", None, "https://t.me/x", Via.SCRIPT, "https://t.me/x"),
        ("javascript:void(window.open('https://x.com/x'))", None, None, "https://x.com/x", Via.SCRIPT,
         "https://x.com/x"),
        (None, "location.href='//www.plurk.com/x'", None, "https://www.plurk.com/x", Via.SCRIPT,
         "https://www.plurk.com/x"),
    ],
)
def test_classify_social_links(
    href: str | None, onclick: str | None, target: str | None, key: str, via: Via, destination: str
) -> None:
    link = classify_link(PAGE, href, onclick, target, DATA)
    assert link is not None
    assert (link.key, link.via, link.destination) == (key, via, destination)
    assert link.new_window == (target == "_blank")


@pytest.mark.parametrize(
    ("href", "onclick"),
    [
        ("/about", None),
        ("https://www.twse.com.tw/", None),  # outside, but not social media
        ("https://other.test/go?url=https://www.facebook.com/x", None),  # someone else's redirector
        ("mailto:ir@broker.test", None),
        ("#top", "toggleMenu()"),
        ("/search?q=facebook", None),
    ],
)
def test_classify_other_links(href: str, onclick: str | None) -> None:
    assert classify_link(PAGE, href, onclick, None, DATA) is None


def test_destination_in_query_handles_double_encoding() -> None:
    url = "https://www.broker.test/r?u=https%253A%252F%252Ft.me%252Fx"
    found = social_destination_in_query(url, DATA)
    assert found is not None and found[1].name == "Telegram"


def test_urls_in_code() -> None:
    code = "window.open('https://line.me/x', '_blank'); go(\"//fb.me/y\");"
    assert urls_in_code(code) == ["https://line.me/x", "https://fb.me/y"]


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("return confirm('您即將離開本網站')", "calls confirm()"),
        ("if (window.confirm('Leave?')) location.href=this.href", "calls window.confirm()"),
        ("alert('外部連結'); return true;", "calls alert()"),
        ("return leaveSite(this.href)", "calls leaveSite()"),
        ("Swal.fire({title: 'x'})", "calls Swal.fire()"),
        ("layer.confirm('x', function(){})", "calls layer.confirm()"),
        ("showModal('您即將離開本網站，前往外部網站')", "carries leave-notice text '您即將離開本網站'"),
        ("openPopup('You are leaving our site')", "carries leave-notice text 'leaving our site'"),
    ],
)
def test_notice_in_code(code: str, why: str) -> None:
    assert notice_in_code(code, DATA) == why


@pytest.mark.parametrize(
    "code",
    ["", "window.open(this.href); return false;", "ga('send', 'event', 'social')", "myconfirm('x')",
     "trackAlert = 1"],
)
def test_no_notice_in_code(code: str) -> None:
    assert notice_in_code(code, DATA) is None


def test_find_markers_ignores_case_and_whitespace() -> None:
    assert DATA.find_markers("Notice: YOU   ARE\nLEAVING this site") == ["leaving this site", "you are leaving"]
    assert DATA.find_markers("提醒：您即將離開本網站") == ["您即將離開本網站"]
    assert DATA.find_markers("歡迎光臨") == []
