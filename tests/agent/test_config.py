from __future__ import annotations

import pytest

from agent.config import config_hash, parse_config
from agent.errors import ConfigError

GOOD = """
[agent]
resolver = "127.0.0.1:5353"
timezone = "Asia/Taipei"
concurrency = 8

[tls]
expiry_warning_days = 21

[severity]
"tls.cert.weak_key" = "critical"

[[assets]]
url = "https://www.broker.test/"
name = "website"
kind = "website"
allowed_ports = [443, 80]
declared = { ddos = "HiNet clean pipe, contract 2024-117" }

[[assets]]
url = "tls://order.broker.test:7001"
kind = "trading"
active_probes = false
"""


def test_good_config_defines_assets() -> None:
    cfg = parse_config(GOOD)
    specs = cfg.asset_specs()
    assert [s.name for s in specs] == ["website", "tls://order.broker.test:7001"]
    assert specs[0].allowed_ports == frozenset({80, 443})
    assert specs[0].declared == {"ddos": "HiNet clean pipe, contract 2024-117"}
    assert specs[1].kind == "trading" and specs[1].active_probes is False
    assert cfg.probe_settings()["tls"]["expiry_warning_days"] == 21
    assert cfg.severity == {"tls.cert.weak_key": "critical"}


def test_defaults() -> None:
    cfg = parse_config("")
    assert cfg.agent.timezone == "Asia/Taipei"
    assert cfg.tls.expiry_warning_days == 30
    assert cfg.schedule.cadence_days == 183
    assert cfg.remediation.high == 30
    assert cfg.assets == []


def test_hsts_min_age_reaches_the_probes() -> None:
    from probes.net.web import DEFAULT_HSTS_MIN_AGE, hsts_min_age

    assert hsts_min_age(parse_config("").probe_settings()["http"]) == DEFAULT_HSTS_MIN_AGE
    assert hsts_min_age(parse_config("[http]\nhsts_min_age = '365d'\n").probe_settings()["http"]) == 31536000
    assert hsts_min_age(parse_config("[http]\nhsts_min_age = 600\n").probe_settings()["http"]) == 600


def test_hash_is_stable_and_sensitive() -> None:
    assert config_hash(parse_config(GOOD)) == config_hash(parse_config(GOOD))
    assert config_hash(parse_config(GOOD)) != config_hash(parse_config(GOOD.replace("21", "22")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[agent]\nconcurency = 3\n", "agent.concurency: unknown key"),
        ("[agent]\nconcurrency = 0\n", "agent.concurrency:"),
        ("[agent]\ntimezone = 'Mars/Olympus'\n", "agent.timezone: unknown time zone"),
        ("[agent]\nresolver = 'dns.google'\n", "agent.resolver: resolver must be IP[:PORT]"),
        ("[[assets]]\nurl = 'ftp://x.test/'\n", "assets[0].url:"),
        ("[[assets]]\nurl = 'https://x.test/'\nkind = 'bank'\n", "assets[0].kind:"),
        ("[[assets]]\nurl = 'https://x.test/'\nallowed_ports = [0]\n", "assets[0].allowed_ports[0]:"),
        ("[[assets]]\nurl = 'https://x.test/'\ncolour = 'red'\n", "assets[0].colour: unknown key"),
        ("[[assets]]\nurl = 'https://x.test/'\n[[assets]]\nurl = 'https://x.test'\n", "duplicate asset name"),
        ("[severity]\n'tls.cert.nope' = 'high'\n", "unknown check id"),
        ("[severity]\n'tls.cert.expired' = 'urgent'\n", "severity.tls.cert.expired:"),
        ("[[notify]]\nurl = 'json://127.0.0.1/'\nevents = ['sms']\n", "notify[0].events[0]:"),
        ("[agent\n", "not valid TOML"),
        ("[frobnicate]\nx = 1\n", "frobnicate: unknown key"),
        ("[http]\nhsts_min_age = 'half a year'\n", "http.hsts_min_age:"),
        ("[http]\nhsts_min_age = -1\n", "http.hsts_min_age:"),
    ],
)
def test_bad_config_names_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "posture.toml")
    message = str(info.value)
    assert expected in message, message
    assert message.startswith("posture.toml: ")
    assert "\n" not in message
