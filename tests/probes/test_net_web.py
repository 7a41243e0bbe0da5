"""The shared web helpers: one same-origin rule, one HSTS parser, one http_url (probes/net/web.py)."""

from __future__ import annotations

import pytest

from probes.leak.provoke import discovery_pages, param_candidates
from probes.net.web import http_url, parse_hsts, same_origin
from tests.support.context import make_target


@pytest.mark.parametrize(
    ("url", "origin", "same"),
    [
        ("https://x.test:443/a", "https://X.test/", True),  # the default port, written out; host case
        ("https://X.TEST/a", "https://x.test:443", True),
        ("http://x.test:80/", "http://x.test", True),
        ("HTTPS://x.test/", "https://x.test/", True),  # scheme case
        ("https://x.test./a", "https://x.test/", True),  # trailing dot: same host
        ("https://證券.台灣/a", "https://xn--zcr140l.xn--kpry57d/", True),  # IDN: A-label form
        ("https://Broker.test/x", "https://broker.test", True),
        ("http://broker.test/x", "https://broker.test", False),  # scheme differs
        ("http://x.test:443/", "https://x.test/", False),  # same port number, other scheme
        ("https://broker.test:8443/x", "https://broker.test", False),
        ("https://sub.broker.test/x", "https://broker.test", False),
        ("https://x.test:99999/", "https://x.test/", False),  # malformed port: not the same origin
        ("https://x.test:abc/", "https://x.test/", False),
        ("https://x.test/", "https://x.test:abc/", False),
        ("https://x.test:abc/", "https://x.test:abc/", False),  # two malformed ports are not "equal"
        ("/relative", "https://x.test/", False),  # no host
        ("mailto:a@x.test", "https://x.test/", False),
        ("wss://x.test/stream", "wss://x.test:443/", False),  # not an http(s) page: no origin to crawl
        ("https://[::1]:443/", "https://[0:0::1]/", True),  # IP literals in canonical form
    ],
)
def test_same_origin(url: str, origin: str, same: bool) -> None:
    assert same_origin(url, origin) is same
    assert same_origin(origin, url) is same  # symmetric


def test_the_leak_probe_uses_the_shared_rule() -> None:
    # Links written with the default port are the origin's own: the leak probe fetched none of these before.
    links = ["https://x.test:443/about", "https://X.test/news?id=3"]
    assert discovery_pages(links, "https://x.test") == ["https://x.test:443/about"]
    assert [c.name for c in param_candidates(links, "https://x.test/")] == ["id"]


@pytest.mark.parametrize(
    ("value", "max_age", "state"),
    [
        ("max-age=31536000", 31_536_000, "ok"),
        ("max-age=31536000; max-age=31536000", None, "malformed"),  # RFC 6797 6.1: once only
        ('max-age="31536000"; includeSubDomains', 31_536_000, "ok"),
        ("max-age=60", 60, "short_max_age"),
        ("includeSubDomains", None, "malformed"),
        (None, None, "missing"),
    ],
)
def test_one_hsts_parser(value: str | None, max_age: int | None, state: str) -> None:
    h = parse_hsts(value)
    assert (h.max_age, h.state.value) == (max_age, state)


def test_http_url_speaks_https_for_wss() -> None:
    assert http_url(make_target("wss://quotes.broker.test/stream?v=2")) == "https://quotes.broker.test/stream?v=2"
    assert http_url(make_target("http://broker.test")) == "http://broker.test/"
