"""Raw TLS hellos: build a ClientHello, read what the server answers.

Pure functions, no I/O. The scanner (:mod:`probes.tls.suites`) writes the
bytes of :func:`client_hello` to a plain TCP connection and feeds whatever
comes back to a :class:`FlightReader` until it returns a :class:`ServerReply`.
This is how testssl.sh and nmap's ssl-enum-ciphers see SSLv3, RC4 and 3DES
although the local OpenSSL refuses them: nothing here needs the server's
handshake to complete, only its first answer.

Messages are built and read here, byte by byte (RFC 8446 4.1.2-4.1.4 and 4.2,
RFC 5246 7.4.1): a scan sends a few dozen hellos per address and a general TLS
library's message objects cost more than the connection. The tests hold both
directions against tlslite-ng's encoder and parser; tlslite itself is loaded
only for the RFC 7919 primes, when a server sends a DH ServerKeyExchange.
"""

from __future__ import annotations

import enum
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache

from probes.net.scope import normalise_host
from probes.tls.iana import ALERTS, GROUPS
from probes.tls.suite_data import KexFamily, Protocol

# Record content types and handshake message types (RFC 8446 B.1, B.3).
_CHANGE_CIPHER_SPEC, _ALERT, _HANDSHAKE, _APPLICATION_DATA = 20, 21, 22, 23
_CLIENT_HELLO = 1
# Extension types (IANA TLS ExtensionType Values).
_EXT_SNI, _EXT_GROUPS, _EXT_POINT_FORMATS, _EXT_SIGNATURE_ALGORITHMS, _EXT_PADDING = 0, 10, 11, 13, 21
_EXT_SUPPORTED_VERSIONS, _EXT_KEY_SHARE, _EXT_RENEGOTIATION_INFO = 43, 51, 0xFF01
# ServerHello.random of a HelloRetryRequest (RFC 8446 4.1.3).
HRR_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()
_HELLO_REQUEST, _SERVER_HELLO, _CERTIFICATE, _SERVER_KEY_EXCHANGE = 0, 2, 11, 12
_CERTIFICATE_REQUEST, _SERVER_HELLO_DONE, _CERTIFICATE_STATUS = 13, 14, 22
_MAX_RECORD = (1 << 14) + 2048  # TLSCiphertext bound (RFC 5246 6.2.3)
MAX_HANDSHAKE = (1 << 24) - 1  # a handshake message's uint24 length (RFC 5246 7.4): the protocol's limit
# A first flight may carry a Certificate message of any size the protocol allows, then the
# ServerKeyExchange: read that much before giving up on a decisive message.
FLIGHT_LIMIT = MAX_HANDSHAKE + (1 << 16)

EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF  # RFC 5746 3.3
FALLBACK_SCSV = 0x5600  # RFC 7507
INAPPROPRIATE_FALLBACK = 86
HANDSHAKE_FAILURE = 40
PROTOCOL_VERSION = 70

# Named groups offered, strongest-first in the order modern clients use.
GROUPS_MODERN: tuple[int, ...] = (29, 23, 30, 25, 24, 256, 257, 258, 259, 260)
# Ascending by security: a client-order server answers with the weakest it takes.
GROUPS_WEAKEST_FIRST: tuple[int, ...] = (256, 23, 29, 257, 258, 24, 259, 260, 30, 25)
X25519, SECP256R1 = 29, 23

_SIGNATURE_SCHEMES = (
    (4, 3), (5, 3), (6, 3), (8, 7), (8, 8), (8, 4), (8, 5), (8, 6), (8, 9), (8, 10), (8, 11),
    (4, 1), (5, 1), (6, 1), (3, 1), (3, 3), (2, 1), (2, 3), (2, 2),
)


class Outcome(enum.StrEnum):
    HELLO = "hello"  # a ServerHello: the offer was accepted
    RETRY = "retry"  # a TLS 1.3 HelloRetryRequest: accepted, wants another key share
    ALERT = "alert"  # refused with an alert
    CLOSED = "closed"  # closed or reset without an alert
    GARBAGE = "garbage"  # something that is not a TLS answer
    TIMEOUT = "timeout"  # nothing decisive before the attempt's time ran out


@dataclass(frozen=True)
class ServerReply:
    outcome: Outcome
    version: Protocol | None = None  # negotiated version (supported_versions wins)
    suite: int | None = None
    group: str | None = None  # key-exchange group seen: named group or dh<bits>
    alert: int | None = None
    secure_renegotiation: bool | None = None  # renegotiation_info echoed (TLS <= 1.2)
    detail: str = ""
    certificates: tuple[bytes, ...] = ()  # the chain as sent (DER, leaf first), when it was asked for

    @property
    def accepted(self) -> bool:
        return self.outcome in (Outcome.HELLO, Outcome.RETRY)

    @property
    def alert_name(self) -> str | None:
        if self.alert is None:
            return None
        return ALERTS.get(self.alert, f"alert_{self.alert}")


def group_name(group_id: int) -> str:
    return GROUPS.get(group_id, f"group_0x{group_id:04X}")


@cache
def _ffdhe_primes() -> dict[int, str]:
    from tlslite import mathtls

    return {p: f"ffdhe{p.bit_length()}" for _g, p in mathtls.RFC7919_GROUPS}


def dh_group_label(prime: int) -> str:
    """``ffdheNNNN`` for an RFC 7919 prime, ``dhNNNN`` for any other (its size in bits)."""
    return _ffdhe_primes().get(prime, f"dh{prime.bit_length()}")


@cache
def _key_shares() -> dict[int, bytes]:
    """One x25519 and one P-256 public key per process: posture never completes a
    handshake, so the private halves are never used and reuse leaks nothing."""
    from cryptography.hazmat.primitives.asymmetric import ec, x25519
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    x = x25519.X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    p = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {X25519: x, SECP256R1: p.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)}


def client_hello(
    protocol: Protocol,
    suites: Sequence[int],
    *,
    sni: str | None = None,
    groups: Sequence[int] = GROUPS_MODERN,
    key_share_groups: Sequence[int] = (X25519, SECP256R1),
    fallback_scsv: bool = False,
) -> bytes:
    """One TLS record carrying a ClientHello that offers ``suites`` at ``protocol``.

    SSLv3 hellos carry no extensions (real SSLv3 clients sent none, and some
    SSLv3 stacks choke on them) and signal secure renegotiation with the SCSV.
    TLS 1.3 hellos use the 1.2 legacy version plus supported_versions and
    key_share, as RFC 8446 4.1.2 requires.
    """
    cipher_suites = list(suites)
    if protocol is Protocol.SSL3:
        cipher_suites.append(EMPTY_RENEGOTIATION_INFO_SCSV)
    if fallback_scsv:
        cipher_suites.append(FALLBACK_SCSV)
    session_id = os.urandom(32) if protocol is Protocol.TLS13 else b""  # RFC 8446 D.4
    extensions = b""
    if protocol is not Protocol.SSL3:
        extensions = _extensions(protocol, _sni_bytes(sni), tuple(groups), tuple(key_share_groups))
        # record 5 + handshake 4 + version 2 + random 32 + session id + suites + compression 2 + extensions
        size = 5 + 4 + 2 + 32 + 1 + len(session_id) + 2 + 2 * len(cipher_suites) + 2 + 2 + len(extensions)
        if 0xFF <= size < 0x200:  # some TLS terminators hang on hellos of 256-511 bytes (RFC 7685 1)
            extensions += _extension(_EXT_PADDING, bytes(max(1, 0x200 - size - 4)))
        extensions = _vector(extensions, 2)
    major, minor = Protocol.TLS12.wire if protocol is Protocol.TLS13 else protocol.wire
    body = b"".join((
        bytes((major, minor)), os.urandom(32), _vector(session_id, 1),
        _vector(b"".join(s.to_bytes(2, "big") for s in cipher_suites), 2),
        b"\x01\x00",  # one compression method: null
        extensions,
    ))
    message = bytes((_CLIENT_HELLO,)) + len(body).to_bytes(3, "big") + body
    record_version = (3, 0) if protocol is Protocol.SSL3 else (3, 1)
    return bytes((_HANDSHAKE, *record_version)) + len(message).to_bytes(2, "big") + message


def _vector(data: bytes, width: int) -> bytes:
    """``data`` behind its length in ``width`` bytes (RFC 8446 3.4)."""
    return len(data).to_bytes(width, "big") + data


def _extension(kind: int, data: bytes) -> bytes:
    return kind.to_bytes(2, "big") + _vector(data, 2)


@lru_cache(maxsize=256)
def _extensions(protocol: Protocol, sni: bytes | None, groups: tuple[int, ...],
                key_share_groups: tuple[int, ...]) -> bytes:
    """The encoded extensions of a hello (they do not depend on the suites), padding aside.

    Built once per shape: a scan sends dozens of hellos that differ only in suites.
    """
    built: list[bytes] = []
    if sni:
        built.append(_extension(_EXT_SNI, _vector(b"\x00" + _vector(sni, 2), 2)))  # host_name(0)
    built.append(_extension(_EXT_GROUPS, _vector(b"".join(g.to_bytes(2, "big") for g in groups), 2)))
    built.append(_extension(_EXT_POINT_FORMATS, _vector(b"\x00", 1)))  # uncompressed
    built.append(_extension(_EXT_RENEGOTIATION_INFO, _vector(b"", 1)))
    if protocol.rank >= Protocol.TLS12.rank:
        schemes = bytes(b for pair in _SIGNATURE_SCHEMES for b in pair)
        built.append(_extension(_EXT_SIGNATURE_ALGORITHMS, _vector(schemes, 2)))
    if protocol is Protocol.TLS13:
        shares = _key_shares()
        built.append(_extension(_EXT_SUPPORTED_VERSIONS, _vector(bytes(Protocol.TLS13.wire), 1)))
        entries = b"".join(g.to_bytes(2, "big") + _vector(shares[g], 2) for g in key_share_groups)
        built.append(_extension(_EXT_KEY_SHARE, _vector(entries, 2)))
    return b"".join(built)


def _sni_bytes(sni: str | None) -> bytes | None:
    """The host name as SNI carries it (A-labels, no trailing dot); None when it cannot be one."""
    if not sni:
        return None
    name = normalise_host(sni)
    return name.encode("ascii") if name and name.isascii() and len(name) < 256 else None


class FlightReader:
    """Incremental reader of a server's first flight; pure and byte-exact.

    ``kex`` tells which suites are followed by a ServerKeyExchange worth
    reading (the group is the only thing taken from it). With ``certificates``
    the reader also waits for the Certificate message (TLS 1.2 and earlier
    send it in clear) and returns the chain in the reply: how posture judges a
    certificate that the local TLS library cannot or will not handshake for.
    Reading stops at the first decisive message, or after ``limit`` bytes
    (default: a maximal Certificate message plus room for the rest).
    """

    def __init__(self, kex: Mapping[int, KexFamily] | None = None, *, limit: int = FLIGHT_LIMIT,
                 certificates: bool = False) -> None:
        self._kex = kex or {}
        self._limit = limit
        self._want_chain = certificates
        self._buffer = b""
        self._handshake = bytearray()
        self._total = 0
        self._hello: ServerReply | None = None

    def feed(self, data: bytes) -> ServerReply | None:
        """Take more bytes; a reply once one is decided, else None (read more)."""
        self._total += len(data)
        self._buffer += data
        while len(self._buffer) >= 5:
            ctype, major, minor = self._buffer[0], self._buffer[1], self._buffer[2]
            length = int.from_bytes(self._buffer[3:5], "big")
            if ctype not in (_CHANGE_CIPHER_SPEC, _ALERT, _HANDSHAKE, _APPLICATION_DATA) or major != 3 \
                    or minor > 4 or length > _MAX_RECORD:
                return self._garbage(f"not a TLS record: {self._buffer[:5].hex()}")
            if len(self._buffer) < 5 + length:
                break
            payload, self._buffer = self._buffer[5:5 + length], self._buffer[5 + length:]
            reply = self._record(ctype, payload)
            if reply is not None:
                return reply
        if self._total > self._limit:
            return self._hello or self._garbage(f"no ServerHello in the first {self._limit} bytes")
        return None

    def eof(self, detail: str = "connection closed") -> ServerReply:
        """The server closed (or reset) before a decisive message."""
        if self._hello is not None:
            return self._hello
        if self._total == 0:
            return ServerReply(Outcome.CLOSED, detail=detail)
        return self._garbage(f"{detail} after {self._total} bytes without a ServerHello")

    def _garbage(self, detail: str) -> ServerReply:
        return self._hello or ServerReply(Outcome.GARBAGE, detail=detail)

    def _record(self, ctype: int, payload: bytes) -> ServerReply | None:
        if ctype == _ALERT:
            if self._hello is not None:
                return self._hello
            if len(payload) < 2:
                return self._garbage("truncated alert")
            return ServerReply(Outcome.ALERT, alert=payload[1], detail=f"alert level {payload[0]}")
        if ctype == _CHANGE_CIPHER_SPEC:
            return None  # TLS 1.3 middlebox-compatibility CCS: not an answer
        if ctype == _APPLICATION_DATA:
            return self._hello or self._garbage("application data before ServerHello")
        self._handshake += payload
        while len(self._handshake) >= 4:
            mtype = self._handshake[0]
            length = int.from_bytes(self._handshake[1:4], "big")
            if len(self._handshake) < 4 + length:
                if length > self._limit:
                    return self._hello or self._garbage("oversized handshake message")
                return None
            body = bytes(self._handshake[4:4 + length])
            del self._handshake[:4 + length]
            reply = self._message(mtype, body)
            if reply is not None:
                return reply
        return None

    def _message(self, mtype: int, body: bytes) -> ServerReply | None:
        if self._hello is None:
            if mtype == _HELLO_REQUEST:
                return None
            if mtype != _SERVER_HELLO:
                return self._garbage(f"handshake message {mtype} before ServerHello")
            return self._server_hello(body)
        family = self._kex.get(self._hello.suite or -1)
        if mtype == _CERTIFICATE and self._want_chain:
            chain = certificate_list(body)
            if chain is None:
                return replace(self._hello, detail="malformed Certificate message")
            self._hello = replace(self._hello, certificates=chain)
            return None if family is not None else self._hello
        if mtype == _SERVER_KEY_EXCHANGE and family is not None:
            return _with_group(self._hello, _kex_group(family, body))
        if mtype in (_CERTIFICATE, _CERTIFICATE_STATUS, _CERTIFICATE_REQUEST):
            return None
        return self._hello  # ServerHelloDone or anything else ends what we need

    def _server_hello(self, body: bytes) -> ServerReply | None:
        try:
            hello = read_server_hello(body)
        except ValueError as exc:
            return self._garbage(f"malformed ServerHello: {exc}")
        versions = hello.extensions.get(_EXT_SUPPORTED_VERSIONS)
        if versions is not None and len(versions) != 2:
            return self._garbage("malformed ServerHello: supported_versions is not one version")
        wire = (versions[0], versions[1]) if versions else hello.version
        version = Protocol.from_wire(wire)
        if version is None:
            return self._garbage(f"ServerHello with unknown version {wire}")
        share = hello.extensions.get(_EXT_KEY_SHARE)
        if share is not None and len(share) < 2:
            return self._garbage("malformed ServerHello: key_share without a group")
        # A HelloRetryRequest's key_share is the selected group; a ServerHello's starts with its group.
        group = group_name(int.from_bytes(share[:2], "big")) if share is not None else None
        reneg = None
        if version is not Protocol.TLS13:
            reneg = _EXT_RENEGOTIATION_INFO in hello.extensions
        reply = ServerReply(
            Outcome.RETRY if hello.retry else Outcome.HELLO,
            version=version,
            suite=hello.suite,
            group=group,
            secure_renegotiation=reneg,
        )
        if hello.retry or version is Protocol.TLS13 or (reply.suite not in self._kex and not self._want_chain):
            return reply
        self._hello = reply
        return None


@dataclass(frozen=True)
class ServerHelloFields:
    """What posture reads of a ServerHello (or HelloRetryRequest) body."""

    version: tuple[int, int]  # legacy_version; supported_versions, when sent, wins
    retry: bool  # a HelloRetryRequest (RFC 8446 4.1.3)
    suite: int
    extensions: dict[int, bytes]  # type -> extension_data, the first of each type


def read_server_hello(body: bytes) -> ServerHelloFields:
    """Parse a ServerHello body (after the 4-byte handshake header); ValueError when malformed.

    RFC 5246 7.4.1.3 / RFC 8446 4.1.3: version, random, session id, suite,
    compression, then optional extensions that must fill the message exactly.
    """
    if len(body) < 2 + 32 + 1:
        raise ValueError("truncated")
    at = 34
    at += 1 + body[at]  # legacy_session_id_echo
    if at + 3 > len(body):
        raise ValueError("truncated")
    suite = int.from_bytes(body[at:at + 2], "big")
    at += 3  # cipher_suite, legacy_compression_method
    extensions: dict[int, bytes] = {}
    if at < len(body):
        if at + 2 > len(body) or int.from_bytes(body[at:at + 2], "big") != len(body) - at - 2:
            raise ValueError("extensions do not fill the message")
        at += 2
        while at < len(body):
            if at + 4 > len(body):
                raise ValueError("truncated extension")
            kind, size = int.from_bytes(body[at:at + 2], "big"), int.from_bytes(body[at + 2:at + 4], "big")
            at += 4
            if at + size > len(body):
                raise ValueError("truncated extension")
            extensions.setdefault(kind, body[at:at + size])
            at += size
    return ServerHelloFields((body[0], body[1]), body[2:34] == HRR_RANDOM, suite, extensions)


def certificate_list(body: bytes) -> tuple[bytes, ...] | None:
    """The DER certificates of a TLS 1.2-or-earlier Certificate message body (RFC 5246 7.4.2).

    ``opaque ASN.1Cert<1..2^24-1>; ASN.1Cert certificate_list<0..2^24-1>``;
    None when the lengths do not add up.
    """
    if len(body) < 3 or int.from_bytes(body[:3], "big") != len(body) - 3:
        return None
    chain: list[bytes] = []
    at = 3
    while at < len(body):
        if at + 3 > len(body):
            return None
        size = int.from_bytes(body[at:at + 3], "big")
        at += 3
        if size == 0 or at + size > len(body):
            return None
        chain.append(body[at:at + size])
        at += size
    return tuple(chain)


def _kex_group(family: KexFamily, body: bytes) -> str | None:
    """The group a ServerKeyExchange names: its named curve, or its DH prime."""
    if family is KexFamily.EC:
        if len(body) >= 3 and body[0] == 3:  # curve_type named_curve (RFC 8422 5.4)
            return group_name(int.from_bytes(body[1:3], "big"))
        return None
    if len(body) < 2:
        return None
    size = int.from_bytes(body[:2], "big")
    if size == 0 or len(body) < 2 + size:
        return None
    return dh_group_label(int.from_bytes(body[2:2 + size], "big"))


def _with_group(reply: ServerReply, group: str | None) -> ServerReply:
    return reply if group is None else replace(reply, group=group)
