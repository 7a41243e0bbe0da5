"""Judging captured certificate chains: pure functions, no I/O.

One :func:`judge_chain` call per address turns the DER chain the server sent
into facts (the observations) and verdicts (check -> evidence), each check on
its own; :func:`cert_findings` merges the verdicts of every address of one
host:port into one finding per check whose evidence lists the addresses.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from probes.base import JSON, Finding, ProtocolFailure
from probes.net.scope import normalise_host
from probes.tls.trust import TrustStore, TrustVerdict, fingerprint, judge_trust

DEFAULT_EXPIRY_WARNING_DAYS = 30
MIN_RSA_DSA_BITS = 2048
MIN_EC_BITS = 256
WEAK_HASHES = frozenset({"sha1", "md5", "md2", "md4"})
_BROKEN_HASHES = frozenset({"md5", "md2", "md4"})  # the worst of the weak
# subjectAltNames written into a record: a shared certificate may carry thousands (the
# protocol allows a 16 MB certificate message); all are matched, this many are listed.
MAX_LISTED_SANS = 100


class CertCheck(enum.StrEnum):
    EXPIRED = "tls.cert.expired"
    NOT_YET_VALID = "tls.cert.not_yet_valid"
    EXPIRING_SOON = "tls.cert.expiring_soon"
    HOSTNAME_MISMATCH = "tls.cert.hostname_mismatch"
    UNTRUSTED = "tls.cert.untrusted"
    WEAK_KEY = "tls.cert.weak_key"
    WEAK_SIGNATURE = "tls.cert.weak_signature"


class Position(enum.StrEnum):
    LEAF = "leaf"
    INTERMEDIATE = "intermediate"
    ROOT = "root"  # a self-signed CA the server sent along


@dataclass(frozen=True)
class KeyInfo:
    type: str  # RSA | DSA | EC | Ed25519 | Ed448 | unknown
    bits: int
    curve: str | None = None

    @property
    def weak(self) -> bool:
        if self.type in ("RSA", "DSA"):
            return self.bits < MIN_RSA_DSA_BITS
        if self.type == "EC":
            return self.bits < MIN_EC_BITS
        return False

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"key_type": self.type, "key_bits": self.bits}
        if self.curve:
            out["key_curve"] = self.curve
        return out


def key_info(cert: x509.Certificate) -> KeyInfo:
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return KeyInfo("unknown", 0)
    if isinstance(key, rsa.RSAPublicKey):
        return KeyInfo("RSA", key.key_size)
    if isinstance(key, dsa.DSAPublicKey):
        return KeyInfo("DSA", key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey):
        return KeyInfo("EC", key.curve.key_size, key.curve.name)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyInfo("Ed25519", 256)
    if isinstance(key, ed448.Ed448PublicKey):
        return KeyInfo("Ed448", 448)
    return KeyInfo("unknown", 0)


def signature_hash(cert: x509.Certificate) -> str | None:
    try:
        alg = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return alg.name if alg is not None else None


def signature_algorithm(cert: x509.Certificate) -> str:
    oid = cert.signature_algorithm_oid
    name = getattr(oid, "_name", None)
    return name if isinstance(name, str) and name != "Unknown OID" else oid.dotted_string


def iso_utc(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def name_text(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except ValueError:
        return repr(name)


def common_names(name: x509.Name) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]


@dataclass(frozen=True)
class SubjectNames:
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    present: bool = False  # whether the certificate has a subjectAltName extension at all

    def to_json(self) -> list[str]:
        return [f"DNS:{d}" for d in self.dns] + [f"IP:{i}" for i in self.ips]

    def listed(self) -> dict[str, JSON]:
        """``sans`` for a record: at most :data:`MAX_LISTED_SANS`, with ``sans_total`` when cut."""
        every = self.to_json()
        if len(every) <= MAX_LISTED_SANS:
            return {"sans": list(every)}
        return {"sans": list(every[:MAX_LISTED_SANS]), "sans_total": len(every)}


def subject_names(cert: x509.Certificate) -> SubjectNames:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return SubjectNames()
    except ValueError:  # a malformed extension matches nothing
        return SubjectNames(present=True)
    dns = tuple(str(n) for n in san.get_values_for_type(x509.DNSName))
    ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return SubjectNames(dns, ips, True)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _ascii_host(host: str) -> str:
    """Certificate names and the asset's name compared in one normal form (A-labels, lowercase)."""
    return normalise_host(host)


def dns_name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 §6.4 as browsers apply it (RFC 9525): exact, or ``*`` as the whole leftmost label.

    The wildcard stands for exactly one non-empty label, never a partial label
    (``f*.example.com``), never below a single label (``*.com``), never an IDN
    A-label.
    """
    pattern, host = _ascii_host(pattern), _ascii_host(host)
    if not pattern or not host:
        return False
    if "*" not in pattern:
        return pattern == host
    p_labels, h_labels = pattern.split("."), host.split(".")
    if p_labels[0] != "*" or "*" in ".".join(p_labels[1:]) or len(p_labels) < 3:
        return False
    if len(h_labels) != len(p_labels) or not h_labels[0] or h_labels[0].startswith("xn--"):
        return False
    return h_labels[1:] == p_labels[1:]


def hostname_matches(host: str, names: SubjectNames) -> bool:
    """Whether the certificate's subjectAltName covers ``host``.

    The subject CN is not consulted: RFC 9525 and every current browser ignore it.
    """
    if _is_ip(host):
        wanted = ipaddress.ip_address(host.strip("[]"))
        return any(ipaddress.ip_address(ip) == wanted for ip in names.ips)
    return any(dns_name_matches(pattern, host) for pattern in names.dns)


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def cert_summary(cert: x509.Certificate, position: Position) -> dict[str, JSON]:
    return {
        "position": position.value,
        "subject": name_text(cert.subject),
        "issuer": name_text(cert.issuer),
        "fingerprint_sha256": fingerprint(cert),
    }


@dataclass(frozen=True)
class CertReport:
    """What one address's chain says: facts for the record, verdicts for findings."""

    certificate: dict[str, JSON]
    chain: list[dict[str, JSON]]
    trust: TrustVerdict
    hostname_ok: bool
    key: KeyInfo
    signature_hash: str | None  # the leaf's
    expired: bool  # the leaf, or an intermediate on the trust path
    not_yet_valid: bool  # likewise
    verdicts: dict[CertCheck, dict[str, JSON]] = field(default_factory=dict)
    unparsable: int = 0
    weakest_hash: str | None = None  # the weakest signature hash of the leaf and the path's intermediates

    def observations(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {
            "certificate": self.certificate,
            "chain": self.chain,
            "trust": self.trust.to_json(),
            "hostname_match": self.hostname_ok,
        }
        if self.unparsable:
            out["unparsable_certificates"] = self.unparsable
        return out


def parse_chain(chain_der: Sequence[bytes]) -> tuple[list[x509.Certificate], int]:
    """The certificates, leaf first; intermediates that do not parse are dropped and counted."""
    if not chain_der:
        raise ProtocolFailure("the server presented no certificate")
    try:
        leaf = x509.load_der_x509_certificate(chain_der[0])
    except ValueError as exc:
        raise ProtocolFailure(f"the server's certificate does not parse: {exc}") from None
    certs, dropped = [leaf], 0
    for der in chain_der[1:]:
        try:
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            dropped += 1
    return certs, dropped


def judge_chain(
    chain_der: Sequence[bytes],
    host: str,
    now: datetime,
    store: TrustStore,
    expiry_warning_days: int = DEFAULT_EXPIRY_WARNING_DAYS,
) -> CertReport:
    """Every certificate verdict for one address's chain, each decided on its own."""
    certs, dropped = parse_chain(chain_der)
    leaf = certs[0]
    positions = [Position.LEAF] + [
        Position.ROOT if is_self_signed(c) else Position.INTERMEDIATE for c in certs[1:]
    ]
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    days_left = _days_left(not_after, now)
    names = subject_names(leaf)
    key = key_info(leaf)
    leaf_hash = signature_hash(leaf)
    trust = judge_trust(certs, store, now)
    hostname_ok = hostname_matches(host, names)
    certificate: dict[str, JSON] = {
        "subject": name_text(leaf.subject),
        **names.listed(),
        "issuer": name_text(leaf.issuer),
        "serial": format(leaf.serial_number, "x"),
        "not_before": iso_utc(not_before),
        "not_after": iso_utc(not_after),
        "days_left": days_left,
        **key.to_json(),
        "signature_algorithm": signature_algorithm(leaf),
        "signature_hash": leaf_hash,
        "fingerprint_sha256": fingerprint(leaf),
        "self_signed": is_self_signed(leaf),
    }
    ident = {k: certificate[k] for k in ("subject", "fingerprint_sha256")}
    verdicts: dict[CertCheck, dict[str, JSON]] = {}
    # Dates: the leaf and every intermediate a client checks on the path it builds (never the root).
    checked = [(leaf, Position.LEAF), *((c, Position.INTERMEDIATE) for c in _path_intermediates(trust, store))]
    expired = [_expired_facts(c, p, now) for c, p in checked if now > c.not_valid_after_utc]
    not_yet_valid = [_not_yet_valid_facts(c, p, now) for c, p in checked if now < c.not_valid_before_utc]
    if expired:
        verdicts[CertCheck.EXPIRED] = {**_dated_first(expired), "certificates": list(expired)}
    if not_yet_valid:
        verdicts[CertCheck.NOT_YET_VALID] = {**_dated_first(not_yet_valid), "certificates": list(not_yet_valid)}
    if now <= not_after and not_after - now <= timedelta(days=expiry_warning_days):
        verdicts[CertCheck.EXPIRING_SOON] = {
            **ident, "not_after": certificate["not_after"], "days_left": days_left,
            "warning_days": expiry_warning_days,
        }
    if not hostname_ok:
        verdicts[CertCheck.HOSTNAME_MISMATCH] = {
            **ident, "host": host, **names.listed(), "common_names": common_names(leaf.subject),
            **({} if names.present else {"note": "the certificate has no subjectAltName"}),
        }
    if not trust.trusted:
        verdicts[CertCheck.UNTRUSTED] = {
            **ident, "reason": trust.reason.value if trust.reason else None, "issuer": certificate["issuer"],
            **{k: v for k, v in trust.to_json().items() if k in ("path", "missing_issuer", "ca_issuers")},
        }
    weak_keys = _weak_certs(certs, positions, lambda c: key_info(c).weak, lambda c: key_info(c).to_json())
    if weak_keys:
        verdicts[CertCheck.WEAK_KEY] = {**_first(weak_keys, ("key_type", "key_bits")), "certificates": weak_keys}
    weak_sigs = _weak_certs(
        certs, positions, lambda c: (signature_hash(c) or "") in WEAK_HASHES,
        lambda c: {"hash": signature_hash(c), "signature_algorithm": signature_algorithm(c)},
    )
    if weak_sigs:
        verdicts[CertCheck.WEAK_SIGNATURE] = {
            **_first(weak_sigs, ("hash", "signature_algorithm")), "certificates": weak_sigs,
        }
    return CertReport(
        certificate=certificate,
        chain=[cert_summary(c, p) for c, p in zip(certs, positions, strict=True)],
        trust=trust,
        hostname_ok=hostname_ok,
        key=key,
        signature_hash=leaf_hash,
        expired=bool(expired),
        not_yet_valid=bool(not_yet_valid),
        verdicts=verdicts,
        unparsable=dropped,
        weakest_hash=_weakest_hash([c for c, _ in checked]),
    )


def _days_left(not_after: datetime, now: datetime) -> int:
    return int((not_after - now) / timedelta(days=1))  # whole days, toward zero on both sides


def _path_intermediates(trust: TrustVerdict, store: TrustStore) -> list[x509.Certificate]:
    """The certificates between the leaf and the anchor on the path trust was judged on.

    A root (self-signed) and an anchor of the store are the client's own: their dates
    and signatures are not what it checks.
    """
    return [c for c in trust.certificates[1:] if not is_self_signed(c) and not store.holds(c)]


def _dated_first(facts: list[dict[str, JSON]]) -> dict[str, JSON]:
    return {k: v for k, v in facts[0].items() if k != "issuer"}


def _expired_facts(cert: x509.Certificate, position: Position, now: datetime) -> dict[str, JSON]:
    not_after = cert.not_valid_after_utc
    return {
        **cert_summary(cert, position), "not_after": iso_utc(not_after), "days_left": _days_left(not_after, now),
        "days_expired": math.floor((now - not_after) / timedelta(days=1)),
    }


def _not_yet_valid_facts(cert: x509.Certificate, position: Position, now: datetime) -> dict[str, JSON]:
    not_before = cert.not_valid_before_utc
    return {
        **cert_summary(cert, position), "not_before": iso_utc(not_before),
        "days_until_valid": math.ceil((not_before - now) / timedelta(days=1)),
    }


def _weakest_hash(certs: Sequence[x509.Certificate]) -> str | None:
    """MD5 (or older) before SHA-1 before the first certificate's own hash."""
    hashes = [signature_hash(c) for c in certs]
    for weak in (_BROKEN_HASHES, WEAK_HASHES):
        found = next((h for h in hashes if h in weak), None)
        if found is not None:
            return found
    return hashes[0] if hashes else None


def _weak_certs(
    certs: Sequence[x509.Certificate],
    positions: Sequence[Position],
    weak: Callable[[x509.Certificate], bool],
    facts: Callable[[x509.Certificate], dict[str, JSON]],
) -> list[dict[str, JSON]]:
    # A root's own key and self-signature are not what a client relies on (it
    # holds the root); the leaf and the intermediates are.
    return [
        {**cert_summary(c, p), **facts(c)}
        for c, p in zip(certs, positions, strict=True)
        if p is not Position.ROOT and weak(c)
    ]


def _first(items: list[dict[str, JSON]], keys: Sequence[str]) -> dict[str, JSON]:
    first = items[0]
    return {k: first[k] for k in keys} | {"position": first["position"]}


def cert_findings(host: str, port: int, reports: Sequence[tuple[str, CertReport]]) -> list[Finding]:
    """One finding per check for ``host:port``, its evidence naming the addresses affected.

    The facts are those of the first affected address; where other addresses
    serve a different certificate, ``by_address`` holds each one's facts.
    """
    key = f"{host}:{port}"
    findings = []
    for check in CertCheck:
        hits = [(addr, r.verdicts[check]) for addr, r in reports if check in r.verdicts]
        if not hits:
            continue
        evidence: dict[str, JSON] = {"addresses": [a for a, _ in hits], **hits[0][1]}
        if any(facts != hits[0][1] for _, facts in hits[1:]):
            evidence["by_address"] = dict(hits)
        findings.append(Finding(check_id=check.value, key=key, evidence=evidence))
    return findings
