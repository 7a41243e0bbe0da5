"""Pure tests of the leak probe's provocation plan (no network)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from probes.leak.provoke import (
    MAX_PARAM_PROVOCATIONS,
    MAX_REQUESTS,
    UNSUPPORTED_METHOD,
    ParamCandidate,
    ProvocationKind,
    choose_parameters,
    discovery_pages,
    extract_links,
    fixed_provocations,
    param_candidates,
    param_provocations,
    target_directory,
    with_param,
)


def test_fixed_plan_is_not_found_variants_malformed_path_and_a_made_up_method() -> None:
    plan = fixed_provocations("https://broker.test/", "abc123")
    assert [(p.kind, p.method, urlsplit(p.url).path, p.raw_path) for p in plan] == [
        (ProvocationKind.NOT_FOUND, "GET", "/posture-abc123", None),
        (ProvocationKind.NOT_FOUND, "GET", "/posture-abc123.aspx", None),
        (ProvocationKind.NOT_FOUND, "GET", "/posture-abc123.php", None),
        (ProvocationKind.NOT_FOUND, "GET", "/posture-abc123.jsp", None),
        (ProvocationKind.NOT_FOUND, "GET", "/posture-abc123.do", None),
        (ProvocationKind.BAD_ENCODING, "GET", "/", b"/%posture%zz"),
        (ProvocationKind.BAD_METHOD, UNSUPPORTED_METHOD, "/", None),
    ]
    assert plan[-1].follow_redirects is False  # never replay a made-up method on another URL
    assert [p.detail["variant"] for p in plan[:5]] == ["plain", ".aspx", ".php", ".jsp", ".do"]


@pytest.mark.parametrize(
    ("url", "directory"),
    [
        ("https://broker.test", "https://broker.test/"),
        ("https://broker.test/", "https://broker.test/"),
        ("https://broker.test/app/", "https://broker.test/app/"),
        ("https://broker.test/app/index.jsp?x=1", "https://broker.test/app/"),
        ("http://broker.test:8080/a/b", "http://broker.test:8080/a/"),
    ],
)
def test_provocations_go_under_the_targets_directory(url: str, directory: str) -> None:
    assert target_directory(url) == directory
    plan = fixed_provocations(url, "t0k3n")
    assert plan[0].url == directory + "posture-t0k3n"
    assert plan[5].raw_path == urlsplit(directory).path.encode() + b"%posture%zz"
    assert plan[6].url == url  # the method goes to the page itself, the baseline


HOME = """<html><head><base href="/zh-tw/"></head><body>
<a href="news?id=12&amp;lang=zh">News</a>
<a href="news?id=12#top">News again</a>
<a href="https://broker.test/quote?symbol=2330">Quote</a>
<a href="https://elsewhere.test/x?id=1">Elsewhere</a>
<a href="javascript:void(0)">JS</a> <a href="mailto:a@b.test">mail</a> <a href="#top">top</a>
<area href="/map?zone=3">
<form action="/search" method="get"><input name="q" value=""><input type="submit" name="go" value="Go">
  <input type="password" name="pw"></form>
<form action="/login" method="post"><input name="user"></form>
<a href="/logout?next=/">Log out</a> <a href="/cart/delete?id=3">Remove</a>
<a href="/static/app.js?v=3">js</a>
<a href="/?utm_source=x&amp;page=2">Page 2</a>
</body></html>"""


def test_links_are_absolute_deduplicated_in_document_order_and_only_get_forms() -> None:
    links = extract_links(HOME, "https://broker.test/")
    assert links == [
        "https://broker.test/zh-tw/news?id=12&lang=zh",
        "https://broker.test/zh-tw/news?id=12",
        "https://broker.test/quote?symbol=2330",
        "https://elsewhere.test/x?id=1",
        "https://broker.test/map?zone=3",
        "https://broker.test/logout?next=/",
        "https://broker.test/cart/delete?id=3",
        "https://broker.test/static/app.js?v=3",
        "https://broker.test/?utm_source=x&page=2",
        "https://broker.test/search?q=",
    ]


def test_parameter_candidates_skip_other_origins_state_changes_assets_and_tracking() -> None:
    cands = param_candidates(extract_links(HOME, "https://broker.test/"), "https://broker.test")
    assert [(urlsplit(c.url).path, c.name, c.value) for c in cands] == [
        ("/zh-tw/news", "id", "12"),  # lang is a tracking/locale parameter; the second link repeats id
        ("/quote", "symbol", "2330"),
        ("/map", "zone", "3"),
        ("/", "page", "2"),
        ("/search", "q", ""),
    ]


def test_chosen_parameters_come_from_one_url_numbers_first() -> None:
    cands = [
        ParamCandidate("https://b.test/p?name=x&id=5&page=2", "name", "x"),
        ParamCandidate("https://b.test/p?name=x&id=5&page=2", "id", "5"),
        ParamCandidate("https://b.test/p?name=x&id=5&page=2", "page", "2"),
        ParamCandidate("https://b.test/other?id=9", "id", "9"),
    ]
    chosen = choose_parameters(cands)
    assert [(c.name, c.value) for c in chosen] == [("id", "5"), ("page", "2")]
    assert choose_parameters([]) == []


def test_parameter_variants_append_a_quote_and_replace_numbers_with_a_word() -> None:
    url = "https://b.test/p?q=abc&id=5"
    plan = param_provocations([ParamCandidate(url, "id", "5"), ParamCandidate(url, "q", "abc")])
    assert [(p.kind, urlsplit(p.url).query, p.detail) for p in plan] == [
        (ProvocationKind.PARAM_QUOTE, "q=abc&id=5%27", {"parameter": "id"}),
        (ProvocationKind.PARAM_QUOTE, "q=abc%27&id=5", {"parameter": "q"}),
        (ProvocationKind.PARAM_TYPE, "q=abc&id=posture", {"parameter": "id"}),
    ]
    assert all(p.reference_url == url and p.method == "GET" for p in plan)
    assert len(plan) <= MAX_PARAM_PROVOCATIONS


def test_no_word_variant_where_the_value_was_not_a_number() -> None:
    plan = param_provocations([ParamCandidate("https://b.test/s?q=bond", "q", "bond")])
    assert [p.kind for p in plan] == [ProvocationKind.PARAM_QUOTE]


def test_with_param_keeps_the_other_parameters_and_their_order() -> None:
    assert with_param("https://b.test/p?a=1&b=2&c=3", "b", "x'") == "https://b.test/p?a=1&b=x%27&c=3"


def test_discovery_pages_are_plain_same_origin_links_not_yet_fetched() -> None:
    links = ["https://b.test/", "https://b.test/about", "https://b.test/news?id=1", "https://x.test/a",
             "https://b.test/logout", "https://b.test/contact"]
    assert discovery_pages(links, "https://b.test", exclude=["https://b.test/"]) == ["https://b.test/about"]


def test_the_plan_stays_within_about_a_dozen_requests() -> None:
    # baseline, 5 not-found, malformed path, method, a discovery page, a reference page, 3 variants
    assert MAX_REQUESTS == 13
