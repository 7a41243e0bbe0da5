"""The lab's own certificate authority: a root that signs one leaf per lab site.

Keys are EC P-256 (fast to make, and not weak by posture's rules). The root is
written to a PEM file that the demo's scan trusts through ``ca_bundle``;
nothing is ever added to the machine's trust store. The tests' CA
(tests/support/certs.py) builds its roots and leaves with the same builders.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class KeyPair:
    """A certificate (with its chain, leaf first) and its key, as PEM files."""

    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def ca_builder(name: str, public_key: PublicKey, *, issuer: x509.Certificate | None = None,
               issuer_key: PublicKey | None = None, days: int = 365,
               path_length: int | None = 0) -> x509.CertificateBuilder:
    """A CA certificate for ``name``, to sign: a root (no ``issuer``) or one signed by ``issuer``
    (whose public key is ``issuer_key``). Valid from 30 days ago for ``days`` days."""
    now = _now()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer_key is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key),
                                        critical=False)
    return builder


def leaf_builder(names: Sequence[str], public_key: PublicKey, issuer_name: x509.Name, *,
                 not_before: dt.datetime, not_after: dt.datetime,
                 issuer_key: PublicKey | None = None) -> x509.CertificateBuilder:
    """A server certificate for ``names`` (DNS names or IP addresses; the first is the CN), to sign.
    ``issuer_key`` None: no authority key identifier (a self-signed leaf)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "leaf")])
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
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if issuer_key is not None:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key),
                                        critical=False)
    return builder


class LabAuthority:
    """A root CA made for one demo run; it exists only in the run's directory."""

    def __init__(self, name: str = "posture lab root CA (demo only)") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = ca_builder(name, self.key.public_key(), days=365, path_length=0).sign(self.key, hashes.SHA256())

    def write_bundle(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, directory: Path, host: str, *, expired: bool = False) -> KeyPair:
        """A server certificate for ``host``: valid for 90 days, or one that expired last month."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        if expired:
            not_before, not_after = now - dt.timedelta(days=120), now - dt.timedelta(days=30)
        else:
            not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=90)
        cert = leaf_builder([host], key.public_key(), self.cert.subject, not_before=not_before, not_after=not_after,
                            issuer_key=self.key.public_key()).sign(self.key, hashes.SHA256())
        pair = KeyPair(directory / f"{host}.crt", directory / f"{host}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(_pem_key(key))
        pair.key.chmod(0o600)
        return pair
