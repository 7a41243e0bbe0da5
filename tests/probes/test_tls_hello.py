"""ClientHello building and server-flight reading, table-driven and without network.

Byte strings named RECORDED_* were captured from real servers on loopback
(tlslite-ng 0.8.2, gnutls-serv 3.7.9, OpenSSL 3.0.19 via Python's ssl module)
and are kept verbatim; every other flight is built here with tlslite-ng's
message classes.
"""

from __future__ import annotations

import pytest
from tlslite import extensions as ext
from tlslite import mathtls
from tlslite.constants import ExtensionType
from tlslite.messages import ClientHello, ServerHello
from tlslite.utils.codec import Parser

import probes.tls.hello as hello_module
from probes.tls.hello import (
    _SIGNATURE_SCHEMES,
    EMPTY_RENEGOTIATION_INFO_SCSV,
    FALLBACK_SCSV,
    GROUPS_MODERN,
    HRR_RANDOM,
    FlightReader,
    Outcome,
    ServerReply,
    client_hello,
    dh_group_label,
    read_server_hello,
)
from probes.tls.suite_data import KexFamily, Protocol

# tlslite-ng 0.8.2 server limited to SSLv3 and RC4, answering posture's SSLv3 hello.
RECORDED_SSL3_RC4 = bytes.fromhex(
    "16030000310200002d030060f9639793f599980fa60a2a29de9e0b2ed694e47d8832231e9e68802f7227fa"
    "000005000005ff01000100"
)
# gnutls-serv 3.7.9 (priority NONE:+VERS-TLS1.2:+ARCFOUR-128:+3DES-CBC:+RSA:...) in a private netns.
RECORDED_GNUTLS_RC4 = bytes.fromhex(
    "16030300510200004d03031a14db4b7c558502d28aef7f3875d647f1c5aaf21e657abc0deea00aad6e2902200102031d82"
    "a0716661e5b28a6bb83d827f8dac8ba9996bf08c3cc3c322887e4a0005000005ff01000100"
)
RECORDED_GNUTLS_3DES = bytes.fromhex(
    "16030300510200004d03037eaa0ed04ce6605c7d175fd4ef07f4c1aab4a9318b9a5c297d6ee944809ce7c8209067b561f6"
    "8f13ef6058adc269010a0ee145e10d38f0f91424239a1195c6748d000a000005ff01000100"
)
# OpenSSL 3.0.19 (Python ssl server) asked for TLS 1.3 with no key share: HelloRetryRequest + CCS.
RECORDED_OPENSSL_HRR = bytes.fromhex(
    "1603030058020000540303cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c20e9e631b5f1"
    "3a2c701df234192610ba824b2603554731cdab405880e00900650f130100000c002b00020304003300020017"
    "140303000101"
)

ECDHE_SUITE, DHE_SUITE, RSA_SUITE = 0xC02F, 0x009E, 0x009C
KEX = {ECDHE_SUITE: KexFamily.EC, DHE_SUITE: KexFamily.FF}


def record(ctype: int, payload: bytes, version: tuple[int, int] = (3, 3)) -> bytes:
    return bytes([ctype, *version]) + len(payload).to_bytes(2, "big") + payload


def handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def server_hello(version: tuple[int, int], suite: int, extensions: list[ext.TLSExtension] | None = None) -> bytes:
    hello = ServerHello().create(version, bytearray(b"\x11" * 32), bytearray(), suite, extensions=extensions)
    return bytes(hello.write())


def tls13_hello(suite: int = 0x1301, group: int = 29) -> bytes:
    share = ext.ServerKeyShareExtension().create(ext.KeyShareEntry().create(group, bytearray(32)))
    versions = ext.SrvSupportedVersionsExtension().create((3, 4))
    return server_hello((3, 3), suite, [versions, share])


def ecdhe_kex(group: int) -> bytes:
    return handshake(12, b"\x03" + group.to_bytes(2, "big") + b"\x20" + b"\x09" * 32 + b"\x04\x01\x00\x00")


def dhe_kex(prime: int) -> bytes:
    p = prime.to_bytes((prime.bit_length() + 7) // 8, "big")
    return handshake(12, len(p).to_bytes(2, "big") + p + b"\x00\x01\x02" + b"\x00\x01\x05" + b"\x04\x01\x00\x00")


RENEG = [ext.RenegotiationInfoExtension().create(bytearray())]
CERT = handshake(11, b"\x00\x00\x03\x00\x00\x00")
DONE = handshake(14, b"")
FFDHE2048 = mathtls.RFC7919_GROUPS[0][1]
DH1024 = mathtls.RFC2409_GROUP2[1]


def read_all(data: bytes, kex: dict[int, KexFamily] | None = None, *, step: int | None = None) -> ServerReply:
    reader = FlightReader(kex if kex is not None else KEX)
    chunks = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        reply = reader.feed(chunk)
        if reply is not None:
            return reply
    return reader.eof()


def tls12_flight(*messages: bytes) -> bytes:
    return record(22, b"".join(messages))


FLIGHTS = [
    # name, bytes, expected (outcome, version, suite, group, alert, secure renegotiation)
    ("recorded SSLv3 RC4 (tlslite-ng)", RECORDED_SSL3_RC4, (Outcome.HELLO, Protocol.SSL3, 0x0005, None, None, True)),
    ("recorded TLS1.2 RC4 (gnutls-serv)", RECORDED_GNUTLS_RC4,
     (Outcome.HELLO, Protocol.TLS12, 0x0005, None, None, True)),
    ("recorded TLS1.2 3DES (gnutls-serv)", RECORDED_GNUTLS_3DES,
     (Outcome.HELLO, Protocol.TLS12, 0x000A, None, None, True)),
    ("recorded HelloRetryRequest (OpenSSL)", RECORDED_OPENSSL_HRR,
     (Outcome.RETRY, Protocol.TLS13, 0x1301, "secp256r1", None, None)),
    ("TLS1.3 ServerHello with x25519 share", record(22, tls13_hello()),
     (Outcome.HELLO, Protocol.TLS13, 0x1301, "x25519", None, None)),
    ("TLS1.2 ECDHE flight, group from ServerKeyExchange",
     tls12_flight(server_hello((3, 3), ECDHE_SUITE, RENEG), CERT, ecdhe_kex(23), DONE),
     (Outcome.HELLO, Protocol.TLS12, ECDHE_SUITE, "secp256r1", None, True)),
    ("TLS1.2 DHE flight with RFC 7919 prime", tls12_flight(server_hello((3, 3), DHE_SUITE), CERT,
                                                           dhe_kex(FFDHE2048), DONE),
     (Outcome.HELLO, Protocol.TLS12, DHE_SUITE, "ffdhe2048", None, False)),
    ("TLS1.2 DHE flight with 1024-bit prime", tls12_flight(server_hello((3, 3), DHE_SUITE), CERT, dhe_kex(DH1024)),
     (Outcome.HELLO, Protocol.TLS12, DHE_SUITE, "dh1024", None, False)),
    ("static RSA: decided at ServerHello", tls12_flight(server_hello((3, 3), RSA_SUITE, RENEG)),
     (Outcome.HELLO, Protocol.TLS12, RSA_SUITE, None, None, True)),
    ("ServerHello split over two records, TLS1.0 record version",
     record(22, server_hello((3, 1), ECDHE_SUITE)[:20], (3, 1))
     + record(22, server_hello((3, 1), ECDHE_SUITE)[20:] + ecdhe_kex(29), (3, 1)),
     (Outcome.HELLO, Protocol.TLS10, ECDHE_SUITE, "x25519", None, False)),
    ("CCS and HelloRequest before ServerHello are skipped",
     record(20, b"\x01") + record(22, handshake(0, b"")) + tls12_flight(server_hello((3, 3), RSA_SUITE)),
     (Outcome.HELLO, Protocol.TLS12, RSA_SUITE, None, None, False)),
    ("alert handshake_failure", record(21, b"\x02\x28"), (Outcome.ALERT, None, None, None, 40, None)),
    ("alert protocol_version in an SSLv3 record", record(21, b"\x02\x46", (3, 0)),
     (Outcome.ALERT, None, None, None, 70, None)),
    ("alert after ServerHello keeps the hello",
     tls12_flight(server_hello((3, 3), ECDHE_SUITE)) + record(21, b"\x02\x50"),
     (Outcome.HELLO, Protocol.TLS12, ECDHE_SUITE, None, None, False)),
    ("HTTP answer", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
     (Outcome.GARBAGE, None, None, None, None, None)),
    ("certificate before ServerHello", tls12_flight(CERT), (Outcome.GARBAGE, None, None, None, None, None)),
    ("truncated ServerHello body", tls12_flight(handshake(2, b"\x03\x03\x00")),
     (Outcome.GARBAGE, None, None, None, None, None)),
    ("unknown version 3.9", tls12_flight(server_hello((3, 9), RSA_SUITE)),
     (Outcome.GARBAGE, None, None, None, None, None)),
    ("application data first", record(23, b"\x00" * 8), (Outcome.GARBAGE, None, None, None, None, None)),
    ("nothing at all", b"", (Outcome.CLOSED, None, None, None, None, None)),
    ("half a record then close", record(22, server_hello((3, 3), RSA_SUITE))[:9],
     (Outcome.GARBAGE, None, None, None, None, None)),
    ("close while waiting for ServerKeyExchange", tls12_flight(server_hello((3, 3), ECDHE_SUITE), CERT),
     (Outcome.HELLO, Protocol.TLS12, ECDHE_SUITE, None, None, False)),
]


@pytest.mark.parametrize(("name", "data", "expected"), FLIGHTS, ids=[f[0] for f in FLIGHTS])
@pytest.mark.parametrize("step", [None, 1, 7])
def test_flight_reader(name: str, data: bytes, expected: tuple[object, ...], step: int | None) -> None:
    reply = read_all(data, step=step)
    outcome, version, suite, group, alert, reneg = expected
    assert (reply.outcome, reply.version, reply.suite, reply.group, reply.alert, reply.secure_renegotiation) == (
        outcome, version, suite, group, alert, reneg
    ), reply


def test_reader_without_kex_map_stops_at_server_hello() -> None:
    flight = tls12_flight(server_hello((3, 3), ECDHE_SUITE), CERT, ecdhe_kex(29), DONE)
    assert read_all(flight, kex={}).group is None


def test_reader_gives_up_after_its_limit() -> None:
    reader = FlightReader(KEX, limit=100)
    assert reader.feed(record(22, handshake(11, b"\x00" * 90))[:60]) is None
    reply = reader.feed(b"\x00" * 80)
    assert reply is not None and reply.outcome is Outcome.GARBAGE


def test_alert_name() -> None:
    assert ServerReply(Outcome.ALERT, alert=86).alert_name == "inappropriate_fallback"
    assert ServerReply(Outcome.CLOSED).alert_name is None


@pytest.mark.parametrize(
    ("prime", "label"),
    [(p, f"ffdhe{p.bit_length()}") for _g, p in mathtls.RFC7919_GROUPS]
    + [(DH1024, "dh1024"), (mathtls.RFC3526_GROUP14[1], "dh2048"), ((1 << 511) + 187, "dh512")],
)
def test_dh_group_label(prime: int, label: str) -> None:
    assert dh_group_label(prime) == label


# ---------------------------------------------------------------- ClientHello


def parse_hello(data: bytes) -> tuple[tuple[int, int], ClientHello]:
    assert data[0] == 22
    body = data[5:]
    assert int.from_bytes(data[3:5], "big") == len(body)
    assert body[0] == 1  # client_hello
    hello = ClientHello().parse(Parser(bytearray(body[1:])))
    return (data[1], data[2]), hello


@pytest.mark.parametrize(
    ("protocol", "record_version", "client_version"),
    [
        (Protocol.SSL3, (3, 0), (3, 0)),
        (Protocol.TLS10, (3, 1), (3, 1)),
        (Protocol.TLS11, (3, 1), (3, 2)),
        (Protocol.TLS12, (3, 1), (3, 3)),
        (Protocol.TLS13, (3, 1), (3, 3)),
    ],
)
def test_client_hello_versions(protocol: Protocol, record_version: tuple[int, int],
                               client_version: tuple[int, int]) -> None:
    suites = [0x1301, 0x1302] if protocol is Protocol.TLS13 else [0xC02F, 0x0005, 0x000A]
    rv, hello = parse_hello(client_hello(protocol, suites, sni="example.test"))
    assert rv == record_version
    assert tuple(hello.client_version) == client_version
    assert hello.cipher_suites[: len(suites)] == suites
    if protocol is Protocol.SSL3:
        assert hello.extensions is None
        assert hello.cipher_suites[-1] == EMPTY_RENEGOTIATION_INFO_SCSV
        return
    assert hello.getExtension(ExtensionType.server_name).hostNames == (bytearray(b"example.test"),)
    assert hello.getExtension(ExtensionType.renegotiation_info) is not None
    sigs = hello.getExtension(ExtensionType.signature_algorithms)
    assert (sigs is not None) == (protocol.rank >= Protocol.TLS12.rank)
    versions = hello.getExtension(ExtensionType.supported_versions)
    shares = hello.getExtension(ExtensionType.key_share)
    if protocol is Protocol.TLS13:
        assert versions.versions == [(3, 4)]
        assert [s.group for s in shares.client_shares] == [29, 23]
        assert [len(s.key_exchange) for s in shares.client_shares] == [32, 65]
        assert len(hello.session_id) == 32
    else:
        assert versions is None and shares is None and len(hello.session_id) == 0


def test_client_hello_without_sni_and_with_fallback() -> None:
    _, hello = parse_hello(client_hello(Protocol.TLS12, [0xC02F], sni=None, fallback_scsv=True))
    assert hello.getExtension(ExtensionType.server_name) is None
    assert hello.cipher_suites == [0xC02F, FALLBACK_SCSV]


def test_client_hello_groups_and_empty_key_share() -> None:
    _, hello = parse_hello(client_hello(Protocol.TLS13, [0x1301], groups=(256, 23), key_share_groups=()))
    assert hello.getExtension(ExtensionType.supported_groups).groups == [256, 23]
    assert hello.getExtension(ExtensionType.key_share).client_shares == []


@pytest.mark.parametrize("count", range(1, 160, 3))
def test_client_hello_avoids_the_256_to_511_byte_window(count: int) -> None:
    data = client_hello(Protocol.TLS12, list(range(0xC000, 0xC000 + count)), sni="a.example")
    assert not 256 <= len(data) < 512
    parse_hello(data)  # still well formed with padding


@pytest.mark.parametrize(
    ("sni", "sent"),
    [("www.example.test.", b"www.example.test"), ("bücher.example", b"xn--bcher-kva.example"),
     ("x" * 70 + ".example", b"x" * 70 + b".example"), ("", None), (None, None)],
)
def test_sni_encoding(sni: str | None, sent: bytes | None) -> None:
    _, hello = parse_hello(client_hello(Protocol.TLS12, [0xC02F], sni=sni))
    ext_sni = hello.getExtension(ExtensionType.server_name)
    assert (ext_sni.hostNames[0] if ext_sni else None) == sent


# -------------------------------------------- held against tlslite-ng's encoder and parser


def tlslite_client_hello(protocol: Protocol, suites: list[int], random: bytes, session_id: bytes, *,
                         sni: bytes | None, groups: tuple[int, ...], shares: dict[int, bytes],
                         key_share_groups: tuple[int, ...], fallback: bool) -> bytes:
    """The hello posture sends, built with tlslite-ng's message classes (the reference)."""
    cipher_suites = list(suites) + ([EMPTY_RENEGOTIATION_INFO_SCSV] if protocol is Protocol.SSL3 else []) \
        + ([FALLBACK_SCSV] if fallback else [])
    extensions = None
    if protocol is not Protocol.SSL3:
        extensions = []
        if sni:
            extensions.append(ext.SNIExtension().create(bytearray(sni)))
        extensions.append(ext.SupportedGroupsExtension().create(list(groups)))
        extensions.append(ext.ECPointFormatsExtension().create([0]))
        extensions.append(ext.RenegotiationInfoExtension().create(bytearray()))
        if protocol.rank >= Protocol.TLS12.rank:
            extensions.append(ext.SignatureAlgorithmsExtension().create(list(_SIGNATURE_SCHEMES)))
        if protocol is Protocol.TLS13:
            extensions.append(ext.SupportedVersionsExtension().create([(3, 4)]))
            extensions.append(ext.ClientKeyShareExtension().create(
                [ext.KeyShareEntry().create(g, bytearray(shares[g])) for g in key_share_groups]))
        size = 5 + 4 + 2 + 32 + 1 + len(session_id) + 2 + 2 * len(cipher_suites) + 2 + 2 \
            + sum(len(e.write()) for e in extensions)
        if 0xFF <= size < 0x200:
            extensions.append(ext.PaddingExtension().create(max(1, 0x200 - size - 4)))
    version = (3, 3) if protocol is Protocol.TLS13 else protocol.wire
    body = bytes(ClientHello().create(version, bytearray(random), bytearray(session_id), cipher_suites,
                                      extensions=extensions).write())
    return bytes([22, *((3, 0) if protocol is Protocol.SSL3 else (3, 1))]) + len(body).to_bytes(2, "big") + body


@pytest.mark.parametrize("protocol", list(Protocol))
@pytest.mark.parametrize("count", [1, 3, 40, 90, 128])
@pytest.mark.parametrize(("sni", "groups", "key_share_groups", "fallback"), [
    ("www.example.test", GROUPS_MODERN, (29, 23), False),
    (None, (256, 23), (), True),
    ("x" * 200 + ".example", (29,), (29,), False),
])
def test_client_hello_is_byte_for_byte_what_tlslite_builds(
    monkeypatch: pytest.MonkeyPatch, protocol: Protocol, count: int, sni: str | None,
    groups: tuple[int, ...], key_share_groups: tuple[int, ...], fallback: bool,
) -> None:
    draws = iter([bytes(range(32)), bytes(range(32, 64))])
    monkeypatch.setattr(hello_module.os, "urandom", lambda n: next(draws)[:n])
    suites = list(range(0xC000, 0xC000 + count))
    ours = client_hello(protocol, suites, sni=sni, groups=groups, key_share_groups=key_share_groups,
                        fallback_scsv=fallback)
    tls13 = protocol is Protocol.TLS13
    reference = tlslite_client_hello(
        protocol, suites, bytes(range(32, 64)) if tls13 else bytes(range(32)),
        bytes(range(32)) if tls13 else b"", sni=sni.encode() if sni else None, groups=groups,
        shares=hello_module._key_shares(), key_share_groups=key_share_groups, fallback=fallback)
    assert ours == reference


_COMMON_SETS = [
    [],
    [ext.RenegotiationInfoExtension().create(bytearray())],
    [ext.TLSExtension(extType=0x1234).create(bytearray(b"opaque")),
     ext.RenegotiationInfoExtension().create(bytearray()), ext.ALPNExtension().create([bytearray(b"h2")])],
]
# (extensions, is a HelloRetryRequest): tlslite reads a key share by the kind of hello, as servers send them.
SERVER_EXTENSION_SETS = [
    *((e, retry) for e in _COMMON_SETS for retry in (False, True)),
    ([ext.SrvSupportedVersionsExtension().create((3, 4)),
      ext.ServerKeyShareExtension().create(ext.KeyShareEntry().create(29, bytearray(32)))], False),
    ([ext.SrvSupportedVersionsExtension().create((3, 4)), ext.HRRKeyShareExtension().create(23)], True),
]


@pytest.mark.parametrize(("extensions", "retry"), SERVER_EXTENSION_SETS)
@pytest.mark.parametrize("session_id", [b"", bytes(32)])
def test_server_hello_reads_what_tlslite_writes(extensions: list[object], retry: bool, session_id: bytes) -> None:
    random = bytearray(HRR_RANDOM) if retry else bytearray(range(32))
    msg = ServerHello().create((3, 3), random, bytearray(session_id), 0xC02F, extensions=extensions or None)
    body = bytes(msg.write())[4:]
    fields = read_server_hello(body)
    parsed = ServerHello().parse(Parser(bytearray(len(body).to_bytes(3, "big") + body)))
    assert fields.version == tuple(parsed.server_version)
    assert fields.suite == parsed.cipher_suite
    assert fields.retry is retry
    assert sorted(fields.extensions) == sorted(e.extType for e in parsed.extensions or [])
    for e in parsed.extensions or []:
        assert fields.extensions[e.extType] == bytes(e.extData)


@pytest.mark.parametrize("cut", [0, 10, 34, 35, 37, 40, 42, 44])
def test_truncated_server_hello_is_malformed(cut: int) -> None:
    msg = ServerHello().create((3, 3), bytearray(range(32)), bytearray(), 0xC02F,
                               extensions=[ext.RenegotiationInfoExtension().create(bytearray())])
    body = bytes(msg.write())[4:]
    with pytest.raises(ValueError):
        read_server_hello(body[:cut])
    read_server_hello(body)  # whole, it reads
    with pytest.raises(ValueError):
        read_server_hello(body + b"\x00")  # a stray byte after the extensions
