"""scan_suites against servers that really offer what is judged; judge_suites and the suite data.

Servers: Python's ssl (modern TLS 1.2/1.3), Debian nginx with @SECLEVEL=0 (TLS 1.0/1.1,
anonymous suites, 1024-bit DH), gnutls-serv in a private network namespace (RC4, 3DES),
openssl s_server (NULL suites, static RSA only), a tlslite-ng server (SSLv3). Nothing here
offers EXPORT suites any more, so a *scripted* server (ServerHello bytes built with
tlslite-ng) stands in for it, as it does for HelloRetryRequests and record-layer quirks.
All on 127.0.4.x.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from tlslite import mathtls

from probes.base import ConnectFailure, DeadlineExceeded, Finding, OutOfScope, ProtocolFailure, Severity
from probes.net.connector import Connector
from probes.net.scope import Pins
from probes.tls.grade import CertVerdict, grade
from probes.tls.suite_data import PROTOCOLS, Protocol, Weakness, suite_table
from probes.tls.suites import SuiteScan, judge_suites, scan_suites
from tests.support.certs import Authority, write_pair
from tests.support.servers import closed_port, http_server, server_context
from tests.support.tls_servers import (
    Endpoint,
    NginxSite,
    alert_record,
    free_port,
    gnutls_scan,
    nginx_tls,
    offered_version,
    openssl_server,
    parse_client_hello,
    scan_from_json,
    scripted_server,
    server_hello_message,
    tls_record,
    tlslite_server,
)

HOST = "tls.test"
GOOD = CertVerdict(trusted=True, hostname_ok=True, expired=False, not_yet_valid=False,
                   key_type="rsa", key_bits=2048, signature_hash="sha256")
YEAR = 31_536_000


class Pair:
    def __init__(self, cert: Path, key: Path, cert_pem: bytes, key_pem: bytes) -> None:
        self.cert, self.key, self.cert_pem, self.key_pem = cert, key, cert_pem, key_pem


@pytest.fixture(scope="module")
def pair(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    leaf = authority.leaf(HOST)  # RSA 2048: every key exchange, static RSA included, is possible
    chain = authority.chain_pem(leaf)
    cert, key = write_pair(tmp_path_factory.mktemp("tls-suites"), "leaf", chain, leaf.key_pem)
    return Pair(cert, key, chain, leaf.key_pem)


async def scan(endpoint: Endpoint, *, deadline: float = 20) -> SuiteScan:
    pins = Pins.of({HOST: [endpoint.host]})
    return await scan_suites(Connector(pins, connect_timeout=2), HOST, endpoint.host, endpoint.port, sni=HOST,
                             deadline=deadline)


def by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check_id: f for f in findings}


# ---------------------------------------------------------------- real servers


async def test_modern_python_server_yields_no_finding(pair: Pair) -> None:
    ctx = server_context(pair.cert, pair.key, ciphers="ECDHE+AESGCM:ECDHE+CHACHA20",
                         minimum=ssl.TLSVersion.TLSv1_2)
    with http_server(host="127.0.4.20", tls=ctx) as srv:
        result = await scan(Endpoint(srv.host, srv.port))
    assert result.accepted() == [Protocol.TLS12, Protocol.TLS13]
    table = suite_table()
    for suite in table.lookup(n for names in result.suites.values() for n in names):
        assert suite.forward_secret and suite.aead and not suite.weak
    assert "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" in result.suites["TLSv1.2"]
    assert set(result.suites["TLSv1.3"]) >= {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"}
    assert "x25519" in result.groups
    assert result.secure_renegotiation is True and result.fallback_scsv is True
    assert result.connections <= 30
    assert judge_suites(HOST, srv.port, [result]) == []
    assert grade(GOOD, [result], YEAR).grade == "A+"
    assert scan_from_json(result.to_json()) == result


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    size = bytes([n]) if n < 0x80 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes(
        (n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + size + content


def _dh1024(path: Path) -> Path:
    """RFC 2409 group 2 (1024-bit MODP) as a PKCS#3 DHParameter PEM, for nginx's ssl_dhparam."""
    return _dhparam(path, mathtls.RFC2409_GROUP2)


def _dhparam(path: Path, group: tuple[int, int]) -> Path:
    g, p = group
    der = _der(0x30, _der(0x02, p.to_bytes(p.bit_length() // 8 + 1, "big")) + _der(0x02, bytes([g])))
    body = base64.encodebytes(der).decode()
    path.write_text(f"-----BEGIN DH PARAMETERS-----\n{body}-----END DH PARAMETERS-----\n")
    return path


async def test_nginx_legacy_protocols_anonymous_suites_and_weak_dh(pair: Pair, tmp_path: Path) -> None:
    legacy = Endpoint("127.0.4.21", free_port("127.0.4.21"))
    anon = Endpoint("127.0.4.22", free_port("127.0.4.22"))
    sites = [
        NginxSite(legacy, protocols="TLSv1 TLSv1.1", ciphers="ECDHE+AES:DHE+AES:@SECLEVEL=0",
                  dhparam=_dh1024(tmp_path / "dh1024.pem")),
        NginxSite(anon, protocols="TLSv1.2", ciphers="ALL:@SECLEVEL=0"),
    ]
    with nginx_tls(tmp_path / "nginx", pair.cert, pair.key, sites):
        old = await scan(legacy)
        weak = await scan(anon)

    assert old.accepted() == [Protocol.TLS10, Protocol.TLS11]
    assert "TLS_DHE_RSA_WITH_AES_128_CBC_SHA" in old.suites["TLSv1.0"]
    assert "dh1024" in old.groups
    found = by_id(judge_suites(HOST, legacy.port, [old]))
    assert set(found) == {"tls.protocol.legacy", "tls.cipher.weak"}  # the DHE suites, over 1024 bits
    assert found["tls.protocol.legacy"].evidence["protocols"] == ["TLSv1.0", "TLSv1.1"]
    assert found["tls.protocol.legacy"].evidence["addresses"] == [legacy.host]
    assert found["tls.protocol.legacy"].key == f"{HOST}:{legacy.port}"
    rated = grade(GOOD, [old], YEAR)
    assert rated.grade == "C"
    assert any("DH parameters of 1024 bits" in c for c in rated.caps)
    assert any("TLS 1.2 not supported" in c for c in rated.caps)

    assert weak.accepted() == [Protocol.TLS12]
    found = by_id(judge_suites(HOST, anon.port, [weak]))
    assert set(found) == {"tls.cipher.weak"}
    anon_suites = found["tls.cipher.weak"].evidence["suites"]["TLSv1.2"]
    assert "TLS_ECDH_anon_WITH_AES_256_CBC_SHA" in anon_suites
    assert all("_anon_" in name for name in anon_suites)
    assert found["tls.cipher.weak"].severity is Severity.CRITICAL
    assert grade(GOOD, [weak], YEAR).grade == "F"


async def test_nginx_dhe_under_2048_bits_is_a_weak_cipher_finding(pair: Pair, tmp_path: Path) -> None:
    """1024-bit DH parameters are a finding of their own (reason weak_dh), not only a B; 2048 bits are not."""
    small = Endpoint("127.0.4.23", free_port("127.0.4.23"))
    fine = Endpoint("127.0.4.24", free_port("127.0.4.24"))
    ciphers = "ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:@SECLEVEL=0"
    sites = [NginxSite(small, protocols="TLSv1.2 TLSv1.3", ciphers=ciphers, dhparam=_dh1024(tmp_path / "dh1024.pem")),
             NginxSite(fine, protocols="TLSv1.2 TLSv1.3", ciphers=ciphers,
                       dhparam=_dhparam(tmp_path / "dh2048.pem", mathtls.RFC3526_GROUP14))]
    with nginx_tls(tmp_path / "nginx", pair.cert, pair.key, sites):
        weak, strong = await scan(small), await scan(fine)
    assert "dh1024" in weak.groups and "dh2048" in strong.groups
    assert judge_suites(HOST, fine.port, [strong]) == []

    found = by_id(judge_suites(HOST, small.port, [weak, strong]))
    assert set(found) == {"tls.cipher.weak"}
    evidence = found["tls.cipher.weak"].evidence
    assert evidence["dh_groups"] == {small.host: "dh1024"} and evidence["dh_bits"] == 1024
    assert evidence["addresses"] == [small.host]
    assert set(evidence["suites"]["TLSv1.2"]) == {"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
                                                  "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"}
    assert evidence["reasons"] == {name: ["weak_dh"] for name in evidence["suites"]["TLSv1.2"]}
    assert found["tls.cipher.weak"].severity is None  # the catalog's high; critical is for Logjam sizes
    rated = grade(GOOD, [weak], YEAR)
    assert rated.grade == "B" and any("DH parameters of 1024 bits" in c for c in rated.caps)


async def test_gnutls_rc4_and_3des_in_private_namespace(pair: Pair) -> None:
    result = gnutls_scan(pair.cert, pair.key,
                         "NORMAL:-VERS-TLS1.3:+VERS-TLS1.0:+ARCFOUR-128:+3DES-CBC:+RSA:%SERVER_PRECEDENCE", sni=HOST)
    assert Protocol.TLS10 in result.accepted() and Protocol.TLS12 in result.accepted()
    found = by_id(judge_suites(HOST, result.port, [result]))
    weak = found["tls.cipher.weak"].evidence
    for proto in ("TLSv1.0", "TLSv1.2"):
        assert {"TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
                "TLS_ECDHE_RSA_WITH_RC4_128_SHA"} <= set(weak["suites"][proto])
    assert weak["reasons"]["TLS_RSA_WITH_RC4_128_SHA"] == ["rc4"]
    assert "3des" in weak["reasons"]["TLS_RSA_WITH_3DES_EDE_CBC_SHA"]
    assert "TLSv1.0" in found["tls.protocol.legacy"].evidence["protocols"]
    assert "tls.cipher.no_forward_secrecy" not in found
    rated = grade(GOOD, [result], YEAR)
    assert rated.grade == "B"
    assert any("RC4 accepted" in c for c in rated.caps)
    assert result.connections < 80


async def test_gnutls_preferring_rc4_caps_the_grade_at_c(pair: Pair) -> None:
    priority = ("NONE:+VERS-TLS1.2:+ARCFOUR-128:+AES-128-GCM:+RSA:+ECDHE-RSA:+SHA1:+AEAD:+COMP-NULL:+SIGN-ALL"
                ":+CURVE-ALL:%SERVER_PRECEDENCE")
    result = gnutls_scan(pair.cert, pair.key, priority, sni=HOST)
    assert result.server_order["TLSv1.2"] is True
    assert "RC4" in result.preferred["TLSv1.2"]
    rated = grade(GOOD, [result], YEAR)
    assert rated.grade == "C" and any("RC4 negotiated" in c for c in rated.caps)


async def test_openssl_null_suites(pair: Pair) -> None:
    with openssl_server(pair.cert, pair.key, "127.0.4.23", "-tls1_2",
                        "-cipher", "NULL-SHA256:AES128-GCM-SHA256:@SECLEVEL=0") as endpoint:
        result = await scan(endpoint)
    assert result.suites == {"TLSv1.2": ("TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_NULL_SHA256")}
    found = by_id(judge_suites(HOST, endpoint.port, [result]))
    assert found["tls.cipher.weak"].evidence["suites"] == {"TLSv1.2": ["TLS_RSA_WITH_NULL_SHA256"]}
    assert found["tls.cipher.weak"].evidence["reasons"] == {"TLS_RSA_WITH_NULL_SHA256": ["low_bits", "null"]}
    assert found["tls.cipher.weak"].severity is Severity.CRITICAL
    assert grade(GOOD, [result], YEAR).grade == "F"


async def test_openssl_static_rsa_only_has_no_forward_secrecy(pair: Pair) -> None:
    with openssl_server(pair.cert, pair.key, "127.0.4.24", "-tls1_2",
                        "-cipher", "AES128-GCM-SHA256:AES256-SHA") as endpoint:
        result = await scan(endpoint)
    assert result.accepted() == [Protocol.TLS12]
    assert set(result.suites["TLSv1.2"]) == {"TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA"}
    assert result.groups == ()
    found = by_id(judge_suites(HOST, endpoint.port, [result]))
    assert set(found) == {"tls.cipher.no_forward_secrecy"}
    evidence = found["tls.cipher.no_forward_secrecy"].evidence
    assert evidence["addresses"] == [endpoint.host]
    assert evidence["forward_secret_suites_accepted"] == {endpoint.host: False}
    rated = grade(GOOD, [result], YEAR)
    assert rated.grade == "B" and any("no forward secrecy" in c for c in rated.caps)


async def test_sslv3_from_a_tlslite_server(pair: Pair) -> None:
    with tlslite_server(pair.cert_pem, pair.key_pem, "127.0.4.25", versions=((3, 0), (3, 0)),
                        ciphers=["aes128", "rc4", "3des"]) as endpoint:
        result = await scan(endpoint)
    assert result.accepted() == [Protocol.SSL3]
    assert {"TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
            "TLS_RSA_WITH_AES_128_CBC_SHA"} <= set(result.suites["SSLv3"])
    found = by_id(judge_suites(HOST, endpoint.port, [result]))
    legacy = found["tls.protocol.legacy"]
    assert legacy.evidence["protocols"] == ["SSLv3"] and legacy.severity is Severity.HIGH
    assert "TLS_RSA_WITH_RC4_128_SHA" in found["tls.cipher.weak"].evidence["suites"]["SSLv3"]
    assert grade(GOOD, [result], YEAR).grade == "F"


# ---------------------------------------------------------------- scripted servers


def answering(choose: Callable[[tuple[int, int], list[int]], bytes | None]) -> Callable[[bytes], bytes | None]:
    def answer(data: bytes) -> bytes | None:
        hello = parse_client_hello(data)
        return choose(offered_version(hello), list(hello.cipher_suites))
    return answer


async def test_export_suites_from_a_scripted_server() -> None:
    """No server here offers EXPORT any more: the ServerHello is built with tlslite-ng."""
    export = 0x0003  # TLS_RSA_EXPORT_WITH_RC4_40_MD5

    def choose(version: tuple[int, int], suites: list[int]) -> bytes | None:
        if version == (3, 1) and export in suites:
            return tls_record(22, server_hello_message((3, 1), export), (3, 1))
        return alert_record(40, (3, 1))

    with scripted_server(answering(choose), "127.0.4.26") as endpoint:
        result = await scan(endpoint)
    assert result.suites == {"TLSv1.0": ("TLS_RSA_EXPORT_WITH_RC4_40_MD5",)}
    weak = by_id(judge_suites(HOST, endpoint.port, [result]))["tls.cipher.weak"]
    assert weak.evidence["reasons"]["TLS_RSA_EXPORT_WITH_RC4_40_MD5"] == ["export", "low_bits", "rc4"]
    assert weak.severity is Severity.CRITICAL
    rated = grade(GOOD, [result], YEAR)
    assert rated.grade == "F" and any("EXPORT" in c for c in rated.caps)


async def test_hello_retry_requests_and_silent_refusals() -> None:
    """TLS 1.3 answered only with HelloRetryRequests; every other version closed without an alert."""

    def choose(version: tuple[int, int], suites: list[int]) -> bytes | None:
        if version == (3, 4):
            return tls_record(22, server_hello_message((3, 4), suites[0], retry_group=24))
        return None

    with scripted_server(answering(choose), "127.0.4.27") as endpoint:
        result = await scan(endpoint)
    assert result.accepted() == [Protocol.TLS13]
    assert set(result.suites["TLSv1.3"]) == {s.name for s in suite_table().candidates(Protocol.TLS13)}
    assert result.groups == ("secp384r1",)
    assert result.secure_renegotiation is None and result.fallback_scsv is None


async def test_record_layer_quirks() -> None:
    """SSLv3 record versions, a CCS first and a ServerHello split over two records."""
    known = [0xC02F, 0x009C]

    def choose(version: tuple[int, int], suites: list[int]) -> bytes | None:
        picks = [s for s in suites if s in known]
        if version != (3, 3) or not picks:
            return alert_record(70 if version != (3, 3) else 40, (3, 0))
        message = server_hello_message((3, 3), picks[0])
        return (tls_record(20, b"\x01", (3, 0)) + tls_record(22, message[:10], (3, 0))
                + tls_record(22, message[10:], (3, 0)) + tls_record(22, b"\x0e\x00\x00\x00", (3, 0)))

    with scripted_server(answering(choose), "127.0.4.28") as endpoint:
        result = await scan(endpoint)
    assert result.suites == {"TLSv1.2": ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256")}
    assert result.server_order == {"TLSv1.2": False}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda _: b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "does not answer like a TLS server"),
        (lambda _: None, "accepted no SSL/TLS version"),
        (lambda _: tls_record(22, server_hello_message((3, 3), 0xFFEE)), "accepted no SSL/TLS version"),
    ],
    ids=["garbage", "closes-without-alert", "picks-a-suite-never-offered"],
)
async def test_servers_that_are_not_tls(answer: Callable[[bytes], bytes | None], message: str) -> None:
    with scripted_server(answer, "127.0.4.29") as endpoint, pytest.raises(ProtocolFailure, match=message):
        await scan(endpoint)


async def test_silent_server_hits_the_deadline() -> None:
    with scripted_server(lambda _: b"", "127.0.4.30", hold=3) as endpoint, \
            pytest.raises(DeadlineExceeded, match=r"did not finish in 0\.5s"):
        await scan(endpoint, deadline=0.5)


async def test_refused_and_out_of_scope() -> None:
    with pytest.raises(ConnectFailure):
        await scan(Endpoint("127.0.4.31", closed_port("127.0.4.31")))
    pins = Pins.of({HOST: ["127.0.4.31"]})
    with pytest.raises(OutOfScope):
        await scan_suites(Connector(pins), HOST, "127.0.4.32", 443, sni=HOST, deadline=5)


# ---------------------------------------------------------------- judging (pure)


def made(address: str, suites: dict[str, list[str]], preferred: dict[str, str] | None = None) -> SuiteScan:
    picks = {p: s[0] for p, s in suites.items()} | (preferred or {})
    return SuiteScan(address, 443, {p.value: p.value in suites for p in PROTOCOLS},
                     {p: tuple(s) for p, s in suites.items()}, picks, ("x25519",), 12)


MODERN = {"TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"], "TLSv1.3": ["TLS_AES_128_GCM_SHA256"]}


def test_judge_lists_only_affected_addresses_in_one_finding_per_check() -> None:
    scans = [
        made("192.0.2.1", MODERN),
        made("192.0.2.2", {"TLSv1.0": ["TLS_RSA_WITH_3DES_EDE_CBC_SHA"], **MODERN}),
        made("192.0.2.3", {"TLSv1.1": ["TLS_RSA_WITH_AES_128_CBC_SHA"],
                           "TLSv1.2": ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_RC4_128_SHA"]}),
    ]
    found = judge_suites("www.example.test", 8443, scans)
    assert [f.check_id for f in found] == ["tls.protocol.legacy", "tls.cipher.weak", "tls.cipher.no_forward_secrecy"]
    assert {f.key for f in found} == {"www.example.test:8443"}
    legacy, weak, no_fs = found
    assert legacy.evidence == {"protocols": ["TLSv1.0", "TLSv1.1"], "addresses": ["192.0.2.2", "192.0.2.3"],
                               "by_address": {"192.0.2.2": ["TLSv1.0"], "192.0.2.3": ["TLSv1.1"]}}
    assert legacy.severity is None
    assert weak.evidence["suites"] == {"TLSv1.0": ["TLS_RSA_WITH_3DES_EDE_CBC_SHA"],
                                       "TLSv1.2": ["TLS_RSA_WITH_RC4_128_SHA"]}
    assert weak.evidence["addresses"] == ["192.0.2.2", "192.0.2.3"]
    assert weak.severity is None
    assert no_fs.evidence["addresses"] == ["192.0.2.3"]
    assert no_fs.evidence["preferred"] == {"192.0.2.3": "TLS_RSA_WITH_AES_128_GCM_SHA256"}


@pytest.mark.parametrize(
    ("suites", "preferred", "expected"),
    [
        (MODERN, None, set()),
        ({"TLSv1.2": ["TLS_RSA_WITH_AES_128_GCM_SHA256"], "TLSv1.3": ["TLS_AES_128_GCM_SHA256"]}, None, set()),
        ({"TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"]},
         {"TLSv1.2": "TLS_RSA_WITH_AES_128_GCM_SHA256"}, {"tls.cipher.no_forward_secrecy"}),
        ({"TLSv1.2": ["TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"]}, None, set()),
        ({"SSLv3": ["TLS_RSA_WITH_RC4_128_MD5"]}, None,
         {"tls.protocol.legacy", "tls.cipher.weak", "tls.cipher.no_forward_secrecy"}),
        ({"TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DH_anon_WITH_AES_128_GCM_SHA256"]}, None,
         {"tls.cipher.weak"}),
        ({"TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_IDEA_CBC_SHA"]}, None,
         {"tls.cipher.weak"}),
    ],
)
def test_judge_table(suites: dict[str, list[str]], preferred: dict[str, str] | None, expected: set[str]) -> None:
    assert {f.check_id for f in judge_suites("h", 443, [made("192.0.2.9", suites, preferred)])} == expected


def test_judge_severity_overrides() -> None:
    found = by_id(judge_suites("h", 443, [made("192.0.2.9", {"SSLv3": ["TLS_RSA_WITH_AES_128_CBC_SHA"],
                                                             "TLSv1.2": ["TLS_RSA_EXPORT_WITH_RC4_40_MD5"]})]))
    assert found["tls.protocol.legacy"].severity is Severity.HIGH
    assert "POODLE" in (found["tls.protocol.legacy"].severity_reason or "")
    assert found["tls.cipher.weak"].severity is Severity.CRITICAL
    assert "export" in (found["tls.cipher.weak"].severity_reason or "")


def test_judge_weak_dh_severity_and_reasons() -> None:
    """Under 1024 bits DHE is critical (Logjam), whatever else is weak; ffdhe2048 and up are never weak."""
    dhe, anon = "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_DH_anon_WITH_AES_128_GCM_SHA256"
    tiny = replace(made("192.0.2.9", {"TLSv1.2": [dhe, anon]}), groups=("x25519", "dh768"))
    weak = by_id(judge_suites("h", 443, [tiny]))["tls.cipher.weak"]
    assert weak.evidence["reasons"] == {dhe: ["weak_dh"], anon: ["anon", "weak_dh"]}
    assert weak.evidence["dh_groups"] == {"192.0.2.9": "dh768"} and weak.evidence["dh_bits"] == 768
    assert weak.severity is Severity.CRITICAL
    assert "anon" in (weak.severity_reason or "") and "768-bit group" in (weak.severity_reason or "")
    rfc7919 = replace(made("192.0.2.9", {"TLSv1.2": [dhe], "TLSv1.3": ["TLS_AES_128_GCM_SHA256"]}),
                      groups=("ffdhe2048", "x25519"))
    assert judge_suites("h", 443, [rfc7919]) == []


# ---------------------------------------------------------------- suite data


def test_suite_flags_agree_with_iana_names() -> None:
    table = suite_table()
    assert len({s.id for s in table.suites}) == len(table.suites) >= 190
    for s in table.suites:
        name = s.name
        assert (Weakness.NULL in s.flags) == name.endswith(("_NULL_MD5", "_NULL_SHA", "_NULL_SHA256")), name
        assert (Weakness.ANON in s.flags) == ("_anon_" in name), name
        assert (Weakness.EXPORT in s.flags) == ("EXPORT" in name), name
        assert (Weakness.RC4 in s.flags) == ("_RC4_" in name), name
        assert (Weakness.TRIPLE_DES in s.flags) == ("3DES" in name), name
        assert (Weakness.DES in s.flags) == ("_DES_" in name or "DES40" in name), name
        assert (Weakness.BLOCK64 in s.flags) == (s.block == 64), name
        assert s.aead == any(m in name for m in ("GCM", "CCM", "POLY1305")), name
        assert s.source, name


@pytest.mark.parametrize("protocol", list(Protocol))
def test_candidates_fit_the_protocol_and_put_weak_suites_last(protocol: Protocol) -> None:
    candidates = suite_table().candidates(protocol)
    assert candidates
    assert all(s.tls13 == (protocol is Protocol.TLS13) for s in candidates)
    if protocol.rank < Protocol.TLS12.rank:
        assert not any(s.aead for s in candidates)
    if protocol is Protocol.SSL3:
        assert not any(s.kx.startswith("ECDH") for s in candidates)
    weak = [s.weak for s in candidates]
    assert weak == sorted(weak)  # strong first, weak last
    if protocol is not Protocol.TLS13:
        assert candidates[0].forward_secret and (candidates[0].aead or protocol.rank < Protocol.TLS12.rank)


# ---------------------------------------------------------------- quiet TLS 1.3 hellos


def _tls13_hellos(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, for each TLS 1.3 hello the scanner builds, whether it carries a key share."""
    import probes.tls.suites as suites_module

    sent: list[bool] = []
    real = suites_module.client_hello

    def spy(protocol: Protocol, suites: list[int], **kw: object) -> bytes:
        if protocol is Protocol.TLS13 and kw.get("groups") is None:  # not the weakest-group probe
            sent.append(kw.get("key_share_groups", True) != ())
        return real(protocol, suites, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(suites_module, "client_hello", spy)
    return sent


async def test_tls13_suites_after_the_first_are_asked_without_a_key_share(
        pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real TLS 1.3 server answers quiet hellos with HelloRetryRequests naming the suite it picks
    (no signature on its side): the same suites, order and preference as hellos with key shares."""
    import probes.tls.suites as suites_module

    ctx = server_context(pair.cert, pair.key, minimum=ssl.TLSVersion.TLSv1_3)
    with http_server(host="127.0.4.40", tls=ctx) as srv:
        sent = _tls13_hellos(monkeypatch)
        quiet = await scan(Endpoint(srv.host, srv.port))
        monkeypatch.setattr(suites_module._Scanner, "ask",
                            lambda self, protocol, offer, quiet: self.hello(protocol, offer))
        loud = await scan(Endpoint(srv.host, srv.port))
    assert quiet.suites["TLSv1.3"] == loud.suites["TLSv1.3"] and len(quiet.suites["TLSv1.3"]) >= 3
    assert quiet.preferred == loud.preferred and quiet.server_order == loud.server_order
    assert "x25519" in quiet.groups
    n = len(quiet.suites["TLSv1.3"])
    # One hello with key shares; every other accepted suite, the closing refusal (confirmed with
    # key shares) and the order check are quiet.
    assert sent[:n + 3] == [True, *([False] * (n - 1)), False, True, False], sent


async def test_a_server_that_mishandles_an_empty_key_share_is_asked_the_usual_way() -> None:
    """A scripted TLS 1.3 server that alerts on a hello without a key share: the quiet refusal is
    confirmed with key shares, and every suite is still found."""
    from tlslite.constants import ExtensionType

    def answer(data: bytes) -> bytes | None:
        hello = parse_client_hello(data)
        if offered_version(hello) != (3, 4):
            return alert_record(70)
        shares = hello.getExtension(ExtensionType.key_share)
        if shares is None or not shares.client_shares:
            return alert_record(47)  # illegal_parameter: it cannot do a HelloRetryRequest
        return tls_record(22, server_hello_message((3, 4), hello.cipher_suites[0], tls13_group=29))

    with scripted_server(answer, "127.0.4.41") as endpoint:
        result = await scan(endpoint)
    assert result.accepted() == [Protocol.TLS13]
    assert set(result.suites["TLSv1.3"]) == {s.name for s in suite_table().candidates(Protocol.TLS13)}
