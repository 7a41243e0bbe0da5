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
        ("[[assets]]\nurl = 'https://x.test/'\n[[assets]]\nurl = 'https://x.test'\n", "the same asset as"),
        ("[severity]\n'tls.cert.nope' = 'high'\n", "unknown check id"),
        ("[severity]\n'tls.cert.expired' = 'urgent'\n", "severity.tls.cert.expired:"),
        ("[[notify]]\nurl = 'json://127.0.0.1/'\nevents = ['sms']\n", "notify[0].events[0]:"),
        ("[agent\n", "not valid TOML"),
        ("[frobnicate]\nx = 1\n", "frobnicate: unknown key"),
        ("[http]\nhsts_min_age = 'half a year'\n", "http.hsts_min_age:"),
        ("[http]\nhsts_min_age = -1\n", "http.hsts_min_age:"),
        # Limits are the probes' own (probes/<probe>/model.py), checked once, here and in the probe alike.
        ("[ports]\nhost_timeout = 3601\n", "host_timeout must be more than 0 and at most 3600"),
        ("[ports]\nports = [0]\n", "ports setting must be a non-empty list"),
        ("[ports]\nmax_rate = 0\n", "ports.max_rate"),
        ("[social]\npage_timeout = 0.5\n", "social.page_timeout must be between 1 and 300"),
        ("[social]\nmax_pages = 1001\n", "social.max_pages"),
        ("[tls]\nexpiry_warning_days = -1\n", "tls.expiry_warning_days"),
        ("[http]\nhttp_port = 70000\n", "http.http_port"),
        ("[workers]\nstall_timeout = 1\n", "workers.stall_timeout:"),
        ("[workers]\nconcurrency = 0\n", "workers.concurrency:"),
        ("[workers]\nin_process = 'sometimes'\n", "workers.in_process:"),
        ("[workers]\nfleet = 'sometimes'\n", "workers.fleet:"),
        ("[workers]\nheartbeat = 5\n", "workers.heartbeat: unknown key"),
    ],
)
def test_bad_config_names_the_key(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "posture.toml")
    message = str(info.value)
    assert expected in message, message
    assert message.startswith("posture.toml: ")
    assert "\n" not in message


def test_a_setting_two_probes_read_is_passed_to_both() -> None:
    """No probe reads another's section: [http] hsts_min_age reaches the tls grade as "web", and
    [ports] eol_data the http probe as "eol" (probes/net/web.py, probes/eol/model.py)."""
    from probes.eol.model import Settings as EolSettings
    from probes.net.web import SHARED_SECTION, hsts_min_age

    settings = parse_config("[http]\nhsts_min_age = '365d'\n[ports]\neol_data = '/x/eol.json'\n").probe_settings()
    assert hsts_min_age(settings[SHARED_SECTION]) == 31536000
    assert EolSettings.from_json(settings[EolSettings.SECTION]).data == "/x/eol.json"
    assert settings["ports"]["eol_data"] == "/x/eol.json"  # still where it is written (and hashed)
    plain = parse_config("").probe_settings()
    assert SHARED_SECTION not in plain and EolSettings.SECTION not in plain


def test_config_sections_give_the_probes_settings_types() -> None:
    cfg = parse_config("[tls]\nexpiry_warning_days = 14\n[ports]\nhost_timeout = 30\n[social]\nbrowser = false\n")
    assert cfg.tls.settings().expiry_warning_days == 14
    assert cfg.ports.settings().host_timeout == 30.0
    assert cfg.social.settings().browser.value == "off"
    assert cfg.http.settings().http_port == 80



def test_bad_workers_key_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[workers]\nstall_timeout = 0.5\n", "posture.toml")
    assert "\n" not in str(info.value) and "workers.stall_timeout" in str(info.value)
