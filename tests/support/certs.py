"""Certificates made in the tests: a CA hierarchy and leaves with every defect
the TLS probe judges (expired, not yet valid, wrong name, self-signed, unknown
CA, missing intermediate, short keys, SHA-1 signatures)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

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
    """A root CA, optionally with an intermediate that signs leaves."""

    def __init__(self, name: str = "posture test root", *, intermediate: bool = True) -> None:
        self.root = _ca(name, None)
        self.intermediate = _ca(f"{name} intermediate", self.root) if intermediate else None

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
    ) -> Issued:
        key = key or make_key()
        now = _now()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "leaf")])
        issuer_name = subject if self_signed else self.issuer.cert.subject
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=1))
            .not_valid_after(not_after or now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issuer.key.public_key()), critical=False
            )
        sign_key = key if self_signed else self.issuer.key
        cert = builder.sign(sign_key, hash_alg or hashes.SHA256())
        return Issued(cert, key)

    def chain_pem(self, leaf: Issued, *, include_intermediate: bool = True) -> bytes:
        pem = leaf.cert_pem
        if include_intermediate and self.intermediate is not None:
            pem += self.intermediate.cert_pem
        return pem


def _ca(name: str, parent: Issued | None) -> Issued:
    key = make_key("ec", 256)
    now = _now()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.cert.subject if parent else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if parent is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), critical=False
        )
    cert = builder.sign(parent.key if parent else key, hashes.SHA256())
    return Issued(cert, key)


def write_pair(directory: Path, name: str, chain_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(chain_pem)
    key_path.write_bytes(key_pem)
    return cert_path, key_path
