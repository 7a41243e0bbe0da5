"""Certificates made in the tests: a CA hierarchy and leaves with every defect
the TLS probe judges (expired, not yet valid, wrong name, self-signed, unknown
CA, missing intermediate, expired intermediate, short keys, SHA-1 signatures,
an extended key usage that is not serverAuth). Plain roots and leaves come
from the demo lab's builders (:mod:`agent.demo.certs`); the defects are made here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from agent.demo.certs import ca_builder, leaf_builder

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def make_key(kind: str = "rsa", bits: int = 2048) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    curve = {192: ec.SECP192R1(), 224: ec.SECP224R1(), 256: ec.SECP256R1(), 384: ec.SECP384R1()}[bits]
    return ec.generate_private_key(curve)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )


class Authority:
    """A root CA, optionally with an intermediate that signs leaves.

    ``intermediate_validity``: the intermediate's (not_before, not_after), e.g. one that has expired.
    """

    def __init__(self, name: str = "posture test root", *, intermediate: bool = True,
                 intermediate_validity: tuple[dt.datetime, dt.datetime] | None = None) -> None:
        self.root = _ca(name, None)
        self.intermediate = _ca(f"{name} intermediate", self.root) if intermediate else None
        if self.intermediate is not None and intermediate_validity is not None:
            cert = _rebuilt(self.intermediate.cert, validity=intermediate_validity).sign(self.root.key, hashes.SHA256())
            self.intermediate = Issued(cert, self.intermediate.key)

    @property
    def issuer(self) -> Issued:
        return self.intermediate or self.root

    def write_trust(self, path: Path) -> Path:
        path.write_bytes(self.root.cert_pem)
        return path

    def leaf(
        self,
        *names: str,
        key: PrivateKey | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        hash_alg: hashes.HashAlgorithm | None = None,
        self_signed: bool = False,
        eku: Sequence[x509.ObjectIdentifier] | None = None,
    ) -> Issued:
        """A leaf for ``names``; ``eku``: its extended key usages instead of serverAuth."""
        key = key or make_key()
        now = _now()
        builder = leaf_builder(
            names, key.public_key(), self.issuer.cert.subject if not self_signed else _subject(names),
            not_before=not_before or now - dt.timedelta(days=1), not_after=not_after or now + dt.timedelta(days=365),
            issuer_key=None if self_signed else self.issuer.key.public_key(),
        )
        sign_key = key if self_signed else self.issuer.key
        if eku is not None:
            builder = _rebuilt(builder.sign(sign_key, hashes.SHA256()), eku=eku)
        if isinstance(hash_alg, hashes.SHA1 | hashes.MD5):
            return Issued(sign_legacy(builder, sign_key, hash_alg), key)
        cert = builder.sign(sign_key, hash_alg or hashes.SHA256())
        return Issued(cert, key)

    def chain_pem(self, leaf: Issued, *, include_intermediate: bool = True) -> bytes:
        pem = leaf.cert_pem
        if include_intermediate and self.intermediate is not None:
            pem += self.intermediate.cert_pem
        return pem


def _subject(names: tuple[str, ...]) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "leaf")])


def _ca(name: str, parent: Issued | None) -> Issued:
    key = make_key("ec", 256)
    builder = ca_builder(name, key.public_key(), issuer=parent.cert if parent else None,
                         issuer_key=parent.key.public_key() if parent else None, days=3650,
                         path_length=None if parent is None else 0)
    return Issued(builder.sign(parent.key if parent else key, hashes.SHA256()), key)


def _rebuilt(cert: x509.Certificate, *, validity: tuple[dt.datetime, dt.datetime] | None = None,
             eku: Sequence[x509.ObjectIdentifier] | None = None) -> x509.CertificateBuilder:
    """``cert``'s fields and extensions, to sign again, with another validity or extended key usage."""
    not_before, not_after = validity or (cert.not_valid_before_utc, cert.not_valid_after_utc)
    extensions = [e for e in cert.extensions if eku is None or not isinstance(e.value, x509.ExtendedKeyUsage)]
    builder = x509.CertificateBuilder(
        issuer_name=cert.issuer, subject_name=cert.subject, public_key=cert.public_key(),
        serial_number=cert.serial_number, not_valid_before=not_before, not_valid_after=not_after,
        extensions=extensions,
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return builder


# cryptography (>= 45) refuses to sign with SHA-1 or MD5, so such certificates are
# built as SHA-256 ones and re-signed: the TBS's AlgorithmIdentifier is swapped
# for the legacy one and the DER re-assembled around a signature made with the
# low-level key API, which still accepts those hashes.
_ALG_IDS = {
    ("rsa", "sha256"): bytes.fromhex("300d06092a864886f70d01010b0500"),
    ("rsa", "sha1"): bytes.fromhex("300d06092a864886f70d0101050500"),
    ("rsa", "md5"): bytes.fromhex("300d06092a864886f70d0101040500"),
    ("ec", "sha256"): bytes.fromhex("300a06082a8648ce3d040302"),
    ("ec", "sha1"): bytes.fromhex("300906072a8648ce3d0401"),
}


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_content(tlv: bytes) -> bytes:
    first = tlv[1]
    if first < 0x80:
        return tlv[2:]
    return tlv[2 + (first & 0x7F):]


def sign_legacy(builder: x509.CertificateBuilder, sign_key: PrivateKey,
                hash_alg: hashes.HashAlgorithm) -> x509.Certificate:
    kind = "rsa" if isinstance(sign_key, rsa.RSAPrivateKey) else "ec"
    if (kind, hash_alg.name) not in _ALG_IDS:
        raise ValueError(f"no {hash_alg.name} signature for {kind} keys")
    modern = builder.sign(sign_key, hashes.SHA256())
    old_id, new_id = _ALG_IDS[(kind, "sha256")], _ALG_IDS[(kind, hash_alg.name)]
    tbs = _der(0x30, _der_content(modern.tbs_certificate_bytes).replace(old_id, new_id, 1))
    if isinstance(sign_key, rsa.RSAPrivateKey):
        signature = sign_key.sign(tbs, padding.PKCS1v15(), hash_alg)
    else:
        signature = sign_key.sign(tbs, ec.ECDSA(hash_alg))
    return x509.load_der_x509_certificate(_der(0x30, tbs + new_id + _der(0x03, b"\x00" + signature)))


def write_pair(directory: Path, name: str, chain_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(chain_pem)
    key_path.write_bytes(key_pem)
    return cert_path, key_path
