"""Internationalised asset names end to end: one normal form (A-labels) for scope, DNS, SNI, Host and certificates.

A real dnsmasq on loopback answers for 證券.台灣 and 期貨.台灣 (in A-label form, as
DNS carries them); real TLS servers hold certificates whose subjectAltName is
the A-label; the plain-HTTP twins redirect (or not). Each asset is scanned
once given in Unicode and once in punycode, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import idna
import pytest

from agent.cli import main
from agent.errors import UsageError
from agent.targets import parse_target_url
from probes.net.scope import normalise_host, unicode_host
from tests.support.certs import Authority, write_pair
from tests.support.dnsserver import DnsServer
from tests.support.outcome import narrowed_ok
from tests.support.servers import Reply, http_server, server_context

GOOD, BAD = "證券.台灣", "期貨.台灣"
GOOD_A, BAD_A = (idna.encode(n).decode() for n in (GOOD, BAD))
ADDR_GOOD, ADDR_BAD = "127.0.0.41", "127.0.0.42"
STRONG = {"Strict-Transport-Security": "max-age=31536000; includeSubDomains"}


def test_one_normal_form_for_host_names() -> None:
    assert GOOD_A == "xn--zcr140l.xn--kpry57d"
    for given in (GOOD, GOOD_A, GOOD_A.upper(), f"{GOOD}.", "證券。台灣", "[xn--zcr140l.xn--kpry57d]"):
        assert normalise_host(given) == GOOD_A, given
    assert unicode_host(GOOD_A) == GOOD and unicode_host("www.example.com") is None
    assert normalise_host("WWW.Example.COM.") == "www.example.com"
    assert normalise_host("[::1]") == "::1" and normalise_host("127.0.0.1") == "127.0.0.1"
    for url in (f"https://{GOOD}/", f"https://{GOOD_A.upper()}/", f"https://{GOOD}./"):
        parsed = parse_target_url(url)
        assert parsed.host == GOOD_A and parsed.normalised == f"https://{GOOD_A}/"
    with pytest.raises(UsageError):
        parse_target_url("https://bad\u200b\u0000name.test/")


def shared_port(*hosts: str) -> int:
    for _ in range(20):
        with socket.socket() as first:
            first.bind((hosts[0], 0))
            port = int(first.getsockname()[1])
            try:
                for h in hosts[1:]:
                    with socket.socket() as s:
                        s.bind((h, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on every address")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ca = Authority("idn test root")
    d = tmp_path_factory.mktemp("idn-lab")
    bundle = ca.write_trust(d / "ca.pem")
    good = ca.leaf(GOOD_A)  # certificates carry A-labels (RFC 5280 7.2)
    bad = ca.leaf(BAD_A)
    gcert, gkey = write_pair(d, "good", ca.chain_pem(good), good.key_pem)
    bcert, bkey = write_pair(d, "bad", ca.chain_pem(bad), bad.key_pem)
    plain = shared_port(ADDR_GOOD, ADDR_BAD)
    dns = DnsServer({GOOD_A: ADDR_GOOD, BAD_A: ADDR_BAD}, zones=("xn--kpry57d",)).start()
    try:
        with http_server({"/": Reply(200, "<html>證券</html>", STRONG)}, host=ADDR_GOOD,
                         tls=server_context(gcert, gkey)) as gs, \
                http_server({"/": Reply(200, "<html>期貨</html>")}, host=ADDR_BAD,
                            tls=server_context(bcert, bkey)) as bs:
            # Header values are Latin-1 on the wire: a Location carries A-labels (any case).
            upgrade = {"/": Reply(301, headers={"Location": f"https://{GOOD_A.upper()}:{gs.port}/"})}
            with http_server(upgrade, host=ADDR_GOOD, port=plain) as gp, \
                    http_server({"/": Reply(200, "plain content")}, host=ADDR_BAD, port=plain) as bp:
                config = d / "posture.toml"
                config.write_text(f'[agent]\nresolver = "{dns.address}"\nca_bundle = "{bundle}"\n\n'
                                  f"[http]\nhttp_port = {plain}\n")
                yield {"config": str(config), "good": gs, "bad": bs, "good_plain": gp, "bad_plain": bp}
    finally:
        dns.stop()


def scan(lab: dict[str, Any], db: str, url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["--config", lab["config"], "--db", db, "scan", url, "--probe", "tls", "--probe", "http",
                 "--format", "json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    (doc,) = json.loads(out)["scans"]
    return code, doc


@pytest.mark.parametrize("form", ["unicode", "punycode"])
def test_idn_asset_is_scanned_completely(lab: dict[str, Any], store_url: str, form: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    port = lab["good"].port
    url = f"https://{GOOD if form == 'unicode' else GOOD_A}:{port}/"
    code, doc = scan(lab, store_url, url, capsys)
    assert code == 0 and narrowed_ok(doc), doc["errors"]
    assert doc["target"] == f"https://{GOOD_A}:{port}/"
    assert doc["target_unicode"] == f"https://{GOOD}:{port}/"
    assert doc["observations"]["dns"]["addresses"] == [ADDR_GOOD]
    tls = doc["observations"]["tls"]
    assert tls["status"] == "ok" and tls["sni"] == GOOD_A and tls["host_unicode"] == GOOD
    http = doc["observations"]["http"]
    plain = http["plain"][f"{GOOD_A}:{lab['good_plain'].port}"]["addresses"][ADDR_GOOD]
    assert plain["state"] == "upgrades"  # judged: the upper-case A-label Location is the same host
    secure = http["https"][f"{GOOD_A}:{port}"]["addresses"][ADDR_GOOD]
    assert secure["hsts"]["state"] == "ok"
    assert doc["findings"] == []
    # The servers saw the A-label in SNI-selected certificates and in Host.
    assert {s.headers.get("host") for s in lab["good"].seen} <= {f"{GOOD_A}:{port}"}


@pytest.mark.parametrize("form", ["unicode", "punycode"])
def test_idn_asset_findings_are_judged(lab: dict[str, Any], store_url: str, form: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    port = lab["bad"].port
    url = f"https://{BAD if form == 'unicode' else BAD_A}:{port}/"
    _, doc = scan(lab, store_url, url, capsys)
    assert narrowed_ok(doc), doc["errors"]
    found = {f["check_id"]: f for f in doc["findings"]}
    assert set(found) == {"http.no_https", "http.hsts.missing"}
    assert found["http.hsts.missing"]["key"] == f"{BAD_A}:{port}"
    assert found["http.no_https"]["key"] == f"{BAD_A}:{lab['bad_plain'].port}"


def test_table_output_shows_the_unicode_form_beside_the_a_label(lab: dict[str, Any], sqlite_url: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    port = lab["good"].port
    code = main(["--config", lab["config"], "--db", sqlite_url, "scan", f"https://{GOOD}:{port}/",
                 "--probe", "http"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"https://{GOOD_A}:{port}/ (https://{GOOD}:{port}/)" in out


def test_configured_unicode_asset_is_the_punycode_url(lab: dict[str, Any], sqlite_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    port = lab["good"].port
    config = tmp_path / "posture.toml"
    base = Path(lab["config"]).read_text("utf-8")
    config.write_text(base + f'\n[[assets]]\nname = "證券官網"\nurl = "https://{GOOD}:{port}/"\n', "utf-8")
    code = main(["--config", str(config), "--db", sqlite_url, "scan", f"https://{GOOD_A.upper()}:{port}/",
                 "--probe", "http", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    (doc,) = json.loads(out)["scans"]
    assert doc["asset"] == "證券官網" and doc["target"] == f"https://{GOOD_A}:{port}/"
    assert narrowed_ok(doc), doc["errors"]
