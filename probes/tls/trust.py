"""Does a captured certificate chain lead to a trust anchor, and if not, why?

Trust is decided twice, on purpose:

1. ``cryptography``'s x509 verifier (path building, CA extension policy, a leaf
   whose extended key usage allows server authentication), first at the scan's
   own time (the path a client builds today), then at a validation time inside
   the certificates' validity, so dates never decide trust: the dates of every
   certificate on the path found are judged on their own (:mod:`probes.tls.cert`);
2. when it refuses, our own walk over the signatures of each link, which accepts
   any key size and hash. The verifier enforces the CA/Browser Forum algorithm
   policy (no SHA-1, no RSA under 2048 on issuers, no P-192), and those defects
   have their own checks (weak_key, weak_signature): they must never surface as
   "untrusted" as well.

The walk also says *why* an untrusted chain fails: a self-signed leaf, a chain
the server sent only part of (the leaf's issuer is nowhere: incomplete_chain),
a chain that ends at a CA the store does not know (unknown_ca), or a leaf whose
extended key usage does not allow server authentication (wrong_purpose: a
clientAuth-only certificate, which clients refuse as "unsuitable certificate
purpose").
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from probes.files import DATA_MAX, FileRefused, read_capped
from vocab import one_line

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.S)
_PEM_BEGIN = re.compile(rb"-----BEGIN CERTIFICATE-----")
_PEM_ANY = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----")  # a PEM block of another kind (a key, PKCS7...)
_MAX_DEPTH = 10


class TrustReason(enum.StrEnum):
    SELF_SIGNED = "self_signed"
    UNKNOWN_CA = "unknown_ca"
    INCOMPLETE_CHAIN = "incomplete_chain"
    WRONG_PURPOSE = "wrong_purpose"  # the leaf's extended key usage excludes serverAuth


class TrustMethod(enum.StrEnum):
    VERIFIER = "verifier"  # cryptography's x509 verifier accepted the chain
    SIGNATURES = "signatures"  # our own walk found a signed path to an anchor


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class TrustStore:
    """Trust anchors, indexed for path building."""

    anchors: tuple[x509.Certificate, ...]
    sources: tuple[str, ...] = ()
    _by_subject: dict[bytes, list[x509.Certificate]] = field(default_factory=dict, repr=False, compare=False)
    _fingerprints: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    verifier_store: Store | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, anchors: Sequence[x509.Certificate], sources: Sequence[str] = ()) -> TrustStore:
        unique: dict[str, x509.Certificate] = {}
        for cert in anchors:
            unique.setdefault(fingerprint(cert), cert)
        by_subject: dict[bytes, list[x509.Certificate]] = {}
        for cert in unique.values():
            by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)
        certs = tuple(unique.values())
        return cls(certs, tuple(sources), by_subject, frozenset(unique), Store(list(certs)) if certs else None)

    def issuers_of(self, cert: x509.Certificate) -> list[x509.Certificate]:
        return self._by_subject.get(cert.issuer.public_bytes(), [])

    def holds(self, cert: x509.Certificate) -> bool:
        return fingerprint(cert) in self._fingerprints

    def __len__(self) -> int:
        return len(self.anchors)


def parse_pem_bundle(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle; one unparsable entry does not lose the others.

    Lenient, for the system's store; a bundle the user names is judged first by :func:`bundle_problem`.
    """
    out = []
    with warnings.catch_warnings():
        # Some long-lived roots have non-positive serials; cryptography warns, we still trust them.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for block in _PEM_BLOCK.findall(data):
            try:
                out.append(x509.load_pem_x509_certificate(block))
            except ValueError:
                continue
    return out


def bundle_problem(data: bytes, shown: str) -> str | None:
    """Why the CA bundle ``data`` (the file ``shown``) cannot be used as given, in one line; None: every
    ``-----BEGIN CERTIFICATE-----`` block in it is a certificate, and there is at least one.

    The bundle's certificates are added to the system store (:func:`load_trust_store`), so a bundle that
    yields none, or only some, leaves the CAs it was meant to add unknown: every asset they issued for
    would be reported untrusted. Posture refuses it, rather than scan with half a trust store.
    """
    blocks = list(_PEM_BLOCK.finditer(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for n, match in enumerate(blocks, 1):
            try:
                x509.load_pem_x509_certificate(match.group())
            except ValueError as exc:
                line = data.count(b"\n", 0, match.start()) + 1
                return (f"{shown}: certificate {n} of {len(blocks)} (line {line}) does not parse "
                        f"({one_line(exc, named=False, limit=200)}); posture uses a CA bundle only when it can read "
                        "every certificate in it")
    starts = {m.start() for m in blocks}
    cut = next((b for b in _PEM_BEGIN.finditer(data) if b.start() not in starts), None)
    if cut is not None:
        line = data.count(b"\n", 0, cut.start()) + 1
        return f"{shown}: the -----BEGIN CERTIFICATE----- at line {line} has no END line (the file is cut short?)"
    if blocks:
        return None
    if data[:1] == b"\x30":  # an ASN.1 SEQUENCE: DER, as .der, .cer and .crt files often are
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                x509.load_der_x509_certificate(data)
        except ValueError:
            what = "holds binary DER data, not PEM certificates"
        else:
            what = "is a DER (binary) certificate, not PEM"
        return (f"{shown} {what}: convert it with openssl x509 -inform der -in {shown} -out {shown}.pem and name "
                "that file")
    other = _PEM_ANY.search(data)
    held = f"-----BEGIN {other.group(1).decode()}----- blocks, " if other is not None else ""
    return (f"{shown} holds no PEM certificate ({held}no -----BEGIN CERTIFICATE-----): it would add no CA to the "
            "system's trust store")


def ca_bundle_problem(path: str) -> str | None:
    """:func:`bundle_problem` for the file at ``path`` (an unreadable file too); None: usable."""
    try:
        data = read_capped(path, DATA_MAX)
    except FileRefused as exc:
        return str(exc)
    return bundle_problem(data, path)


@cache
def system_anchors() -> tuple[tuple[x509.Certificate, ...], str]:
    """The operating system's CA bundle (Debian's ca-certificates), read once per process."""
    paths = ssl.get_default_verify_paths()
    for candidate in (os.environ.get("SSL_CERT_FILE"), paths.cafile, SYSTEM_BUNDLE, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            try:
                return tuple(parse_pem_bundle(read_capped(candidate, DATA_MAX))), candidate
            except FileRefused:
                continue
    certs: list[x509.Certificate] = []
    capath = paths.capath or paths.openssl_capath
    if capath and Path(capath).is_dir():
        for entry in sorted(Path(capath).iterdir()):
            if entry.is_file() and entry.suffix in (".pem", ".crt", ".0"):
                with contextlib.suppress(FileRefused):
                    certs.extend(parse_pem_bundle(read_capped(entry, DATA_MAX)))
    return tuple(certs), capath or ""


def load_trust_store(ca_bundle: str | None = None) -> TrustStore:
    """System anchors plus ``ca_bundle``'s; cached per process (per bundle file version)."""
    if ca_bundle is None:
        return _store(None, 0.0)
    try:
        mtime = Path(ca_bundle).stat().st_mtime
    except OSError:
        mtime = -1.0
    return _store(ca_bundle, mtime)


@lru_cache(maxsize=8)
def _store(ca_bundle: str | None, mtime: float) -> TrustStore:
    system, source = system_anchors()
    anchors = list(system)
    sources = [source] if source else []
    if ca_bundle is not None:
        try:
            anchors.extend(parse_pem_bundle(read_capped(ca_bundle, DATA_MAX)))
            sources.append(ca_bundle)
        except FileRefused:
            sources.append(f"{ca_bundle} (unreadable)")
    return TrustStore.of(anchors, sources)


@dataclass(frozen=True)
class TrustVerdict:
    trusted: bool
    reason: TrustReason | None = None
    method: TrustMethod | None = None
    path: tuple[str, ...] = ()  # subjects from the leaf to the anchor (or as far as the walk got)
    anchor: str | None = None
    missing_issuer: str | None = None  # issuer named by the last certificate reached, found nowhere
    ca_issuers: tuple[str, ...] = ()  # AIA caIssuers URLs of that certificate: where the gap could be filled
    verifier_error: str | None = None
    # The path's certificates, leaf first (the anchor last when trusted): whose dates a client checks.
    certificates: tuple[x509.Certificate, ...] = field(default=(), repr=False, compare=False)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"trusted": self.trusted, "path": list(self.path)}
        if self.method is not None:
            out["method"] = self.method.value
        if self.anchor is not None:
            out["anchor"] = self.anchor
        if self.reason is not None:
            out["reason"] = self.reason.value
        if self.missing_issuer is not None:
            out["missing_issuer"] = self.missing_issuer
        if self.ca_issuers:
            out["ca_issuers"] = list(self.ca_issuers)
        if self.verifier_error is not None:
            out["verifier_error"] = self.verifier_error
        return out


def judge_trust(
    chain: Sequence[x509.Certificate], store: TrustStore, now: datetime | None = None
) -> TrustVerdict:
    """Whether ``chain`` (leaf first, as the server sent it) reaches an anchor of ``store``.

    With ``now``, the path is first built as a client builds it at that moment (an
    expired cross-certificate the server still sends is passed over for a valid one);
    failing that, inside the chain's validity, so that dates never decide trust.
    """
    leaf, presented = chain[0], list(chain[1:])
    verifier_error: str | None = None
    moments = [when for when in (now, validation_time(chain)) if when is not None]
    for when in moments:
        try:
            verified = _verify(leaf, presented, store, when)
        except (VerificationError, ValueError) as exc:
            verifier_error = one_line(exc, named=False)  # the last: the one dates did not decide
            continue
        return TrustVerdict(
            trusted=True,
            method=TrustMethod.VERIFIER,
            path=tuple(_name(c.subject) for c in verified),
            anchor=_name(verified[-1].subject),
            certificates=tuple(verified),
        )
    verdict = walk_signatures(leaf, presented, store, now)
    return TrustVerdict(
        trusted=verdict.trusted,
        reason=verdict.reason,
        method=TrustMethod.SIGNATURES if verdict.trusted else None,
        path=verdict.path,
        anchor=verdict.anchor,
        missing_issuer=verdict.missing_issuer,
        ca_issuers=verdict.ca_issuers,
        verifier_error=verifier_error,
        certificates=verdict.certificates,
    )


def validation_time(chain: Sequence[x509.Certificate]) -> datetime:
    """A moment inside the leaf's validity (and the chain's, where they overlap).

    The middle of the overlap, so that neither an expired nor a not-yet-valid
    certificate turns into a trust failure: dates have their own checks.
    """
    leaf = chain[0]
    start = max(c.not_valid_before_utc for c in chain)
    end = min(c.not_valid_after_utc for c in chain)
    if start > end:
        start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if start > end:  # a leaf that ends before it begins: nothing is inside; pick its start
        return start
    return start + (end - start) / 2


def _allows_server_auth(eku: x509.ExtendedKeyUsage) -> bool:
    return ExtendedKeyUsageOID.SERVER_AUTH in eku or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku


def _ca_eku(policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    # The client verifier would demand clientAuth on CAs that carry an EKU; we are
    # judging a server, so demand what a browser does: serverAuth or anyExtendedKeyUsage.
    if eku is not None and not _allows_server_auth(eku):
        raise ValueError("CA certificate's extended key usage does not allow server authentication")


def _ee_eku(policy: Policy, cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
    # The same for the leaf: a clientAuth-only certificate is refused ("unsuitable certificate purpose").
    if eku is not None and not _allows_server_auth(eku):
        raise ValueError("leaf certificate's extended key usage does not allow server authentication")


def serves_tls(cert: x509.Certificate) -> bool:
    """Whether ``cert``'s extended key usage allows TLS server authentication: it has none (no
    restriction), or one with serverAuth or anyExtendedKeyUsage (RFC 5280 4.2.1.12, as OpenSSL's
    sslserver purpose and browsers read it)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    except ValueError:  # a malformed extension allows nothing
        return False
    return _allows_server_auth(eku)


def _verify(
    leaf: x509.Certificate, presented: list[x509.Certificate], store: TrustStore, when: datetime
) -> list[x509.Certificate]:
    if store.verifier_store is None:
        raise ValueError("the trust store is empty")
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _ca_eku
    )
    # Any extension on the leaf, but an extended key usage must allow server authentication.
    ee_policy = ExtensionPolicy.permit_all().may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _ee_eku)
    # The client verifier needs no reference name: the host name has its own check.
    verifier = (
        PolicyBuilder()
        .store(store.verifier_store)
        .time(when)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    return list(verifier.verify(leaf, presented).chain)


def walk_signatures(
    leaf: x509.Certificate, presented: Sequence[x509.Certificate], store: TrustStore, now: datetime | None = None
) -> TrustVerdict:
    """Follow issuer links by name and signature, whatever the algorithm, up to an anchor.

    Among presented issuers, one valid at ``now`` is followed first. A path that reaches an
    anchor from a leaf whose extended key usage excludes server authentication is wrong_purpose.
    """
    current, path, seen = leaf, [leaf], {fingerprint(leaf)}
    for _ in range(_MAX_DEPTH):
        if store.holds(current):
            return _trusted(path, current)
        for anchor in store.issuers_of(current):
            if signed_by(current, anchor):
                return _trusted([*path, anchor], anchor)
        candidates = [
            c for c in presented
            if c.subject == current.issuer and fingerprint(c) not in seen and _may_issue(c) and signed_by(current, c)
        ]
        if not candidates:
            break
        if now is not None:
            candidates.sort(key=lambda c: not c.not_valid_before_utc <= now <= c.not_valid_after_utc)
        current = candidates[0]
        path.append(current)
        seen.add(fingerprint(current))
    names = tuple(_name(c.subject) for c in path)
    if current.subject == current.issuer:
        reason = TrustReason.SELF_SIGNED if current is leaf else TrustReason.UNKNOWN_CA
        return TrustVerdict(trusted=False, reason=reason, path=names, certificates=tuple(path))
    # The last certificate reached names an issuer that is neither in the store nor
    # sent. If the server sent nothing above the leaf, what is missing is its
    # intermediate; if it did send CA certificates, it sent its chain and that chain
    # leads to a CA this store does not know. (Telling an intermediate from a private
    # root for sure would need the AIA fetch browsers do; we never connect elsewhere.)
    reason = TrustReason.INCOMPLETE_CHAIN if current is leaf else TrustReason.UNKNOWN_CA
    return TrustVerdict(
        trusted=False,
        reason=reason,
        path=names,
        missing_issuer=_name(current.issuer),
        ca_issuers=ca_issuer_urls(current),
        certificates=tuple(path),
    )


def _trusted(path: list[x509.Certificate], anchor: x509.Certificate) -> TrustVerdict:
    names = tuple(_name(c.subject) for c in path)
    if not serves_tls(path[0]):
        # The chain is sound; the leaf was issued for another purpose (clientAuth only, say).
        return TrustVerdict(trusted=False, reason=TrustReason.WRONG_PURPOSE, path=names, anchor=_name(anchor.subject),
                            certificates=tuple(path))
    return TrustVerdict(trusted=True, path=names, anchor=_name(anchor.subject), certificates=tuple(path))


def _may_issue(cert: x509.Certificate) -> bool:
    """A presented certificate may sign server certificates only as a CA (v1 ones predate the flag)
    whose extended key usage, if it has one, allows server authentication."""
    if cert.version is x509.Version.v1:
        return True
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except (x509.ExtensionNotFound, ValueError):
        return False
    return serves_tls(cert)


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` names and signed ``cert``, with any hash (SHA-1 and MD5 included)."""
    if cert.issuer != issuer.subject:
        return False
    try:
        key = issuer.public_key()
        params = cert.signature_algorithm_parameters
        hash_alg = cert.signature_hash_algorithm
        sig, tbs = cert.signature, cert.tbs_certificate_bytes
        # cryptography names no parameters for legacy algorithms (ecdsa-with-SHA1,
        # md5WithRSAEncryption): the hash alone says what to verify with.
        if isinstance(key, rsa.RSAPublicKey) and hash_alg is not None:
            pad = params if isinstance(params, padding.PKCS1v15 | padding.PSS) else padding.PKCS1v15()
            key.verify(sig, tbs, pad, hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey) and hash_alg is not None:
            key.verify(sig, tbs, params if isinstance(params, ec.ECDSA) else ec.ECDSA(hash_alg))
        elif isinstance(key, dsa.DSAPublicKey) and hash_alg is not None:
            key.verify(sig, tbs, hash_alg)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(sig, tbs)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def ca_issuer_urls(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return ()
    return tuple(
        str(d.access_location.value)
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    )


def _name(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except ValueError:
        return repr(name)
