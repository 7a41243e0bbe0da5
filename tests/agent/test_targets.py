from __future__ import annotations

import pytest

from agent.errors import UsageError
from agent.targets import parse_target_url


@pytest.mark.parametrize(
    ("url", "normalised", "port"),
    [
        ("https://WWW.Broker.TEST/", "https://www.broker.test/", 443),
        ("https://www.broker.test", "https://www.broker.test/", 443),
        ("https://www.broker.test:443/login", "https://www.broker.test/login", 443),
        ("https://www.broker.test:8443/", "https://www.broker.test:8443/", 8443),
        ("http://www.broker.test:80/", "http://www.broker.test/", 80),
        ("wss://quote.broker.test/feed", "wss://quote.broker.test/feed", 443),
        ("tls://order.broker.test:7001", "tls://order.broker.test:7001", 7001),
        ("https://127.0.0.1:8443/", "https://127.0.0.1:8443/", 8443),
        ("https://[::1]:8443/", "https://[::1]:8443/", 8443),
        ("https://www.broker.test./#frag", "https://www.broker.test/", 443),
        ("https://www.broker.test/search?q=1", "https://www.broker.test/search?q=1", 443),
    ],
)
def test_parse_and_normalise(url: str, normalised: str, port: int) -> None:
    parsed = parse_target_url(url)
    assert parsed.normalised == normalised
    assert parsed.port == port


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://x.test/", "scheme"),
        ("www.broker.test", "scheme"),
        ("https://", "no host"),
        ("tls://order.broker.test", "need a port"),
        ("https://user:pw@x.test/", "credentials"),
        ("https://x.test:99999/", "unparsable"),
        ("https://bad_host!.test/", "not a valid host"),
    ],
)
def test_bad_urls_are_usage_errors(url: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_target_url(url)
    assert fragment in str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value)
