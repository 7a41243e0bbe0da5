"""Pure judging of captured chains (probes.tls.cert, probes.tls.trust): no network."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from probes.base import ProtocolFailure
from probes.catalog import load_catalog
from probes.tls.cert import (
    CertCheck,
    CertReport,
    SubjectNames,
    cert_findings,
    dns_name_matches,
    hostname_matches,
    judge_chain,
    subject_names,
)
from probes.tls.model import Settings as TlsSettings
from probes.tls.trust import (
    TrustMethod,
    TrustReason,
    TrustStore,
    judge_trust,
    load_trust_store,
    parse_pem_bundle,
    system_anchors,
    validation_time,
)
from tests.support.certs import Authority, Issued, PrivateKey, make_key, sign_legacy

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)


@dataclass
class Pki:
    trusted: Authority
    other: Authority  # a CA no store here knows
    flat: Authority  # a trusted root that signs leaves itself (no intermediate)
    ec: PrivateKey
    rsa2048: PrivateKey
    rsa1024: PrivateKey
    ec192: PrivateKey
    ec224: PrivateKey

    @property
    def inter(self) -> Issued:
        assert self.trusted.intermediate is not None
        return self.trusted.intermediate

    @property
    def other_inter(self) -> Issued:
        assert self.other.intermediate is not None
        return self.other.intermediate

    @property
    def store(self) -> TrustStore:
        return TrustStore.of([self.trusted.root.cert, self.flat.root.cert])


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki(
        trusted=Authority("judge root"),
        other=Authority("stranger root"),
        flat=Authority("flat root", intermediate=False),
        ec=make_key("ec", 256),
        rsa2048=make_key("rsa", 2048),
        rsa1024=make_key("rsa", 1024),
        ec192=make_key("ec", 192),
        ec224=make_key("ec", 224),
    )


def der(*certs: Issued | x509.Certificate) -> list[bytes]:
    out = []
    for c in certs:
        cert = c.cert if isinstance(c, Issued) else c
        out.append(cert.public_bytes(serialization.Encoding.DER))
    return out


def judge(
    pki: Pki, *certs: Issued | x509.Certificate, host: str = "a.test", now: dt.datetime = NOW, warn: int = 30,
    store: TrustStore | None = None,
) -> CertReport:
    return judge_chain(der(*certs), host, now, store or pki.store, warn)


def checks(report: CertReport) -> set[CertCheck]:
    return set(report.verdicts)


def ca(
    name: str, parent: Issued | None, key: PrivateKey, hash_alg: hashes.SHA1 | None = None,
    eku: list[x509.ObjectIdentifier] | None = None, validity: tuple[dt.datetime, dt.datetime] | None = None,
) -> Issued:
    """A CA certificate with a chosen key, signature hash and validity (the shared Authority always uses
    P-256/SHA-256)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    not_before, not_after = validity or (NOW - 30 * DAY, NOW + 3650 * DAY)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.cert.subject if parent else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if parent is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), critical=False
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    signer = parent.key if parent else key
    if hash_alg is not None:
        return Issued(sign_legacy(builder, signer, hash_alg), key)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def under(root: Issued, intermediate: Issued) -> Authority:
    """An Authority made of these two certificates, to issue leaves from ``intermediate``."""
    authority = Authority.__new__(Authority)
    authority.root, authority.intermediate = root, intermediate
    return authority


# ---------------------------------------------------------------- a clean chain


def test_clean_modern_chain_has_no_verdict(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec)
    report = judge(pki, leaf, pki.inter)
    assert report.verdicts == {}
    assert report.trust.trusted and report.trust.method is TrustMethod.VERIFIER
    assert report.trust.anchor == "CN=judge root"
    cert = report.certificate
    assert cert["subject"] == "CN=a.test" and cert["sans"] == ["DNS:a.test"]
    assert cert["issuer"] == "CN=judge root intermediate"
    assert cert["serial"] == format(leaf.cert.serial_number, "x")
    assert cert["key_type"] == "EC" and cert["key_bits"] == 256 and cert["key_curve"] == "secp256r1"
    assert cert["signature_algorithm"] == "ecdsa-with-SHA256" and cert["signature_hash"] == "sha256"
    assert str(cert["not_after"]).endswith("Z") and cert["days_left"] in (364, 365)
    assert [c["position"] for c in report.chain] == ["leaf", "intermediate"]
    assert report.chain[1]["subject"] == "CN=judge root intermediate"
    assert all(len(str(c["fingerprint_sha256"])) == 64 for c in report.chain)


def test_clean_rsa_2048_leaf_directly_under_a_root(pki: Pki) -> None:
    leaf = pki.flat.leaf("a.test", key=pki.rsa2048)
    report = judge(pki, leaf)
    assert report.verdicts == {}
    assert report.certificate["key_type"] == "RSA" and report.certificate["key_bits"] == 2048


# ---------------------------------------------------------------- dates


def test_expired_is_critical_fact_and_never_also_expiring_soon(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec, not_before=NOW - 400 * DAY, not_after=NOW - 3 * DAY)
    report = judge(pki, leaf, pki.inter)
    assert checks(report) == {CertCheck.EXPIRED}  # trust is judged inside the validity: still trusted
    ev = report.verdicts[CertCheck.EXPIRED]
    assert ev["days_left"] == -3 and ev["days_expired"] == 3
    assert ev["not_after"] == (NOW - 3 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_not_yet_valid(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec, not_before=NOW + 5 * DAY, not_after=NOW + 300 * DAY)
    report = judge(pki, leaf, pki.inter)
    assert checks(report) == {CertCheck.NOT_YET_VALID}
    assert report.verdicts[CertCheck.NOT_YET_VALID]["days_until_valid"] == 5


@pytest.mark.parametrize(
    ("days_left", "warn", "expected"),
    [
        (10, 30, {CertCheck.EXPIRING_SOON}),
        (30, 30, {CertCheck.EXPIRING_SOON}),  # the boundary day still warns
        (31, 30, set()),
        (10, 5, set()),
        (10, 0, set()),
        (200, 365, {CertCheck.EXPIRING_SOON}),
    ],
)
def test_expiring_soon_window(pki: Pki, days_left: int, warn: int, expected: set[CertCheck]) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec, not_after=NOW + days_left * DAY)
    report = judge(pki, leaf, pki.inter, warn=warn)
    assert checks(report) == expected
    if expected:
        ev = report.verdicts[CertCheck.EXPIRING_SOON]
        assert ev["days_left"] == days_left and ev["warning_days"] == warn


def test_validation_time_sits_inside_every_validity(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec, not_before=NOW - 400 * DAY, not_after=NOW - 3 * DAY)
    when = validation_time([leaf.cert, pki.inter.cert])
    assert leaf.cert.not_valid_before_utc <= when <= leaf.cert.not_valid_after_utc
    assert pki.inter.cert.not_valid_before_utc <= when


def test_expired_intermediate_is_expired_though_the_chain_is_trusted(pki: Pki) -> None:
    """Clients check every certificate's dates on the path they build, not the leaf's alone."""
    old = ca("old intermediate", pki.trusted.root, pki.ec, validity=(NOW - 700 * DAY, NOW - 5 * DAY))
    leaf = under(pki.trusted.root, old).leaf("a.test", key=pki.ec, not_before=NOW - 100 * DAY)
    report = judge(pki, leaf, old)
    assert checks(report) == {CertCheck.EXPIRED} and report.expired and report.trust.trusted
    ev = report.verdicts[CertCheck.EXPIRED]
    assert (ev["position"], ev["subject"], ev["days_expired"]) == ("intermediate", "CN=old intermediate", 5)
    assert [c["position"] for c in ev["certificates"]] == ["intermediate"]
    # Issued after its issuer expired (no moment when both were valid): the same verdict.
    late = under(pki.trusted.root, old).leaf("a.test", key=pki.ec)
    assert checks(judge(pki, late, old)) == {CertCheck.EXPIRED}
    # Leaf and intermediate both expired: the leaf first, each listed.
    both = under(pki.trusted.root, old).leaf("a.test", key=pki.ec, not_before=NOW - 400 * DAY,
                                             not_after=NOW - 2 * DAY)
    ev = judge(pki, both, old).verdicts[CertCheck.EXPIRED]
    assert ev["position"] == "leaf" and ev["days_expired"] == 2
    assert [c["position"] for c in ev["certificates"]] == ["leaf", "intermediate"]


def test_intermediate_not_yet_valid(pki: Pki) -> None:
    early = ca("early intermediate", pki.trusted.root, pki.ec, validity=(NOW + 3 * DAY, NOW + 700 * DAY))
    leaf = under(pki.trusted.root, early).leaf("a.test", key=pki.ec)
    report = judge(pki, leaf, early)
    assert checks(report) == {CertCheck.NOT_YET_VALID} and report.not_yet_valid
    ev = report.verdicts[CertCheck.NOT_YET_VALID]
    assert (ev["position"], ev["days_until_valid"]) == ("intermediate", 3)


def test_an_expired_certificate_off_the_path_is_not_judged(pki: Pki) -> None:
    """An expired cross-certificate of the root, still sent along (as many sites sent Let's Encrypt's
    DST-signed ISRG Root X1), is passed over for the valid root clients hold: no verdict."""
    cross = ca("judge root", pki.other.root, pki.trusted.root.key, validity=(NOW - 900 * DAY, NOW - 30 * DAY))
    leaf = pki.trusted.leaf("a.test", key=pki.ec)
    report = judge(pki, leaf, pki.inter, cross)
    assert report.verdicts == {} and not report.expired
    assert report.trust.trusted and report.trust.method is TrustMethod.VERIFIER
    # A root the server sends, expired, is the client's own business: no verdict either.
    old_root = ca("old root", None, pki.ec, validity=(NOW - 900 * DAY, NOW - 30 * DAY))
    assert CertCheck.EXPIRED not in judge(pki, leaf, pki.inter, old_root).verdicts


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("a.test", "a.test", True),
        ("A.Test", "a.test", True),
        ("a.test.", "a.test", True),
        ("b.test", "a.test", False),
        ("*.a.test", "www.a.test", True),
        ("*.a.test", "WWW.A.TEST", True),
        ("*.a.test", "a.test", False),  # the wildcard is one label, never none
        ("*.a.test", "x.www.a.test", False),  # nor two
        ("w*.a.test", "www.a.test", False),  # partial-label wildcards are refused (RFC 9525)
        ("www.*.test", "www.a.test", False),  # only the leftmost label
        ("*.test", "a.test", False),  # never directly under a single label
        ("*", "a", False),
        ("*.a.test", "xn--bcher-kva.a.test", False),  # never an IDN A-label
        ("xn--bcher-kva.test", "bücher.test", True),  # U-labels compare as A-labels
        ("", "a.test", False),
    ],
)
def test_dns_name_matching(pattern: str, host: str, ok: bool) -> None:
    assert dns_name_matches(pattern, host) is ok


def test_hostname_mismatch_both_ways(pki: Pki) -> None:
    inter = pki.inter
    wrong = judge(pki, pki.trusted.leaf("other.test", "www.other.test", key=pki.ec), inter)
    assert checks(wrong) == {CertCheck.HOSTNAME_MISMATCH}
    ev = wrong.verdicts[CertCheck.HOSTNAME_MISMATCH]
    assert ev["host"] == "a.test" and ev["sans"] == ["DNS:other.test", "DNS:www.other.test"]
    wildcard = pki.trusted.leaf("*.a.test", key=pki.ec)
    assert checks(judge(pki, wildcard, inter, host="www.a.test")) == set()
    assert checks(judge(pki, wildcard, inter, host="a.test")) == {CertCheck.HOSTNAME_MISMATCH}


def test_common_name_alone_never_matches(pki: Pki) -> None:
    no_san = pki.trusted.leaf(key=pki.ec)  # CN=leaf, no subjectAltName
    report = judge(pki, no_san, pki.inter, host="leaf")
    assert checks(report) == {CertCheck.HOSTNAME_MISMATCH}
    ev = report.verdicts[CertCheck.HOSTNAME_MISMATCH]
    assert ev["common_names"] == ["leaf"] and "no subjectAltName" in str(ev["note"])


def test_ip_literal_host_matches_ip_sans_only(pki: Pki) -> None:
    inter = pki.inter
    by_ip = pki.trusted.leaf("127.0.0.2", key=pki.ec)
    assert judge(pki, by_ip, inter, host="127.0.0.2").verdicts == {}
    assert checks(judge(pki, by_ip, inter, host="127.0.0.3")) == {CertCheck.HOSTNAME_MISMATCH}
    v6 = pki.trusted.leaf("::1", key=pki.ec)
    assert hostname_matches("0:0::1", subject_names(v6.cert))
    # An IP written as a DNS name is not an IP identity.
    assert not hostname_matches("127.0.0.2", SubjectNames(dns=("127.0.0.2",), present=True))
    assert hostname_matches("127.0.0.2", SubjectNames(ips=("127.0.0.2",), present=True))


# ---------------------------------------------------------------- trust


def test_self_signed_leaf(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec, self_signed=True)
    report = judge(pki, leaf)
    assert checks(report) == {CertCheck.UNTRUSTED}
    assert report.verdicts[CertCheck.UNTRUSTED]["reason"] == "self_signed"
    assert report.certificate["self_signed"] is True
    # The same certificate, pinned as an anchor (a private service's own cert in ca_bundle), is trusted.
    assert judge(pki, leaf, store=TrustStore.of([leaf.cert])).verdicts == {}


def test_unknown_ca_when_the_chain_leads_to_a_stranger(pki: Pki) -> None:
    leaf = pki.other.leaf("a.test", key=pki.ec)
    report = judge(pki, leaf, pki.other_inter)
    assert checks(report) == {CertCheck.UNTRUSTED}
    ev = report.verdicts[CertCheck.UNTRUSTED]
    assert ev["reason"] == "unknown_ca" and ev["missing_issuer"] == "CN=stranger root"
    # A stranger root sent along changes nothing.
    with_root = judge(pki, leaf, pki.other_inter, pki.other.root)
    assert with_root.verdicts[CertCheck.UNTRUSTED]["reason"] == "unknown_ca"
    assert with_root.chain[2]["position"] == "root"


def test_incomplete_chain_when_the_intermediate_is_not_sent(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec)
    report = judge(pki, leaf)
    assert checks(report) == {CertCheck.UNTRUSTED}
    ev = report.verdicts[CertCheck.UNTRUSTED]
    assert ev["reason"] == "incomplete_chain" and ev["missing_issuer"] == "CN=judge root intermediate"
    # A wrong intermediate is no better than none.
    wrong = judge(pki, leaf, pki.other_inter)
    assert wrong.verdicts[CertCheck.UNTRUSTED]["reason"] == "incomplete_chain"


def test_order_of_the_sent_chain_does_not_matter(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec)
    report = judge(pki, leaf, pki.trusted.root, pki.inter)
    assert report.verdicts == {}


def test_intermediate_extended_key_usage(pki: Pki) -> None:
    """A CA restricted to serverAuth issues server certificates; one restricted to clientAuth does not."""
    server_only = ca("server-only intermediate", pki.trusted.root, pki.ec, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    leaf = under(pki.trusted.root, server_only).leaf("a.test", key=pki.ec)
    report = judge(pki, leaf, server_only)
    assert report.verdicts == {} and report.trust.method is TrustMethod.VERIFIER
    client_only = ca("client-only intermediate", pki.trusted.root, pki.ec, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    leaf = under(pki.trusted.root, client_only).leaf("a.test", key=pki.ec)
    assert checks(judge(pki, leaf, client_only)) == {CertCheck.UNTRUSTED}


@pytest.mark.parametrize(("usages", "trusted"), [
    ([ExtendedKeyUsageOID.CLIENT_AUTH], False),
    ([ExtendedKeyUsageOID.CODE_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION], False),
    ([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH], True),
    ([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], True),
])
def test_leaf_extended_key_usage_must_allow_server_authentication(
    pki: Pki, usages: list[x509.ObjectIdentifier], trusted: bool
) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec, eku=usages)
    report = judge(pki, leaf, pki.inter)
    assert report.trust.trusted is trusted
    if trusted:
        assert report.verdicts == {} and report.trust.method is TrustMethod.VERIFIER
    else:
        assert checks(report) == {CertCheck.UNTRUSTED}
        ev = report.verdicts[CertCheck.UNTRUSTED]
        assert ev["reason"] == "wrong_purpose" and ev["path"] == [
            "CN=a.test", "CN=judge root intermediate", "CN=judge root"]
        assert "extended key usage" in (report.trust.verifier_error or "")


def test_wrong_purpose_through_the_signature_walk(pki: Pki) -> None:
    """The verifier refuses a SHA-1 leaf before its purpose; the walk still tells the purpose apart."""
    leaf = pki.trusted.leaf("a.test", key=pki.ec, hash_alg=hashes.SHA1(), eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    report = judge(pki, leaf, pki.inter)
    assert checks(report) == {CertCheck.UNTRUSTED, CertCheck.WEAK_SIGNATURE}
    assert report.verdicts[CertCheck.UNTRUSTED]["reason"] == "wrong_purpose"
    # Pinned as an anchor itself, a clientAuth-only certificate still cannot serve TLS.
    pinned = pki.trusted.leaf("a.test", key=pki.ec, self_signed=True, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    assert judge(pki, pinned, store=TrustStore.of([pinned.cert])).verdicts[CertCheck.UNTRUSTED][
        "reason"] == "wrong_purpose"
    # A self-signed one nobody pinned is self_signed first.
    assert judge(pki, pinned).verdicts[CertCheck.UNTRUSTED]["reason"] == "self_signed"


def test_no_anchor_at_all_is_unknown_or_incomplete_never_an_error(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec)
    empty = TrustStore.of([])
    verdict = judge_trust([leaf.cert, pki.inter.cert], empty)
    assert not verdict.trusted and verdict.reason is TrustReason.UNKNOWN_CA


# ---------------------------------------------------------------- weak keys and hashes never mean untrusted


@pytest.mark.parametrize(("key_name", "bits", "weak"), [
    ("rsa1024", 1024, True), ("ec192", 192, True), ("ec224", 224, True), ("rsa2048", 2048, False), ("ec", 256, False),
])
def test_weak_leaf_keys(pki: Pki, key_name: str, bits: int, weak: bool) -> None:
    leaf = pki.trusted.leaf("a.test", key=getattr(pki, key_name))
    report = judge(pki, leaf, pki.inter)
    assert checks(report) == ({CertCheck.WEAK_KEY} if weak else set())
    assert report.certificate["key_bits"] == bits
    if weak:
        ev = report.verdicts[CertCheck.WEAK_KEY]
        assert ev["key_bits"] == bits and ev["position"] == "leaf"
        assert ev["key_type"] == ("RSA" if key_name.startswith("rsa") else "EC")


def test_weak_intermediate_key_is_weak_key_not_untrusted(pki: Pki) -> None:
    inter = ca("weak intermediate", pki.trusted.root, pki.rsa1024)
    leaf = under(pki.trusted.root, inter).leaf("a.test", key=pki.ec)
    report = judge(pki, leaf, inter)
    assert checks(report) == {CertCheck.WEAK_KEY}
    # cryptography's verifier refuses a 1024-bit issuer; the signature walk still finds the anchor.
    assert report.trust.trusted and report.trust.method is TrustMethod.SIGNATURES
    assert report.trust.verifier_error
    ev = report.verdicts[CertCheck.WEAK_KEY]
    assert ev["position"] == "intermediate" and ev["key_bits"] == 1024


def test_sha1_leaf_is_weak_signature_not_untrusted(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.ec, hash_alg=hashes.SHA1())
    report = judge(pki, leaf, pki.inter)
    assert checks(report) == {CertCheck.WEAK_SIGNATURE}
    ev = report.verdicts[CertCheck.WEAK_SIGNATURE]
    assert ev["hash"] == "sha1" and ev["signature_algorithm"] == "ecdsa-with-SHA1" and ev["position"] == "leaf"
    assert report.trust.trusted


def test_sha1_intermediate_is_weak_signature_but_a_sha1_root_is_not(pki: Pki) -> None:
    root = ca("legacy root", None, pki.rsa2048, hashes.SHA1())
    inter = ca("legacy intermediate", root, pki.ec, hashes.SHA1())
    issued = under(root, inter).leaf("a.test", key=pki.ec)
    store = TrustStore.of([root.cert])
    report = judge(pki, issued, inter, root, store=store)
    assert checks(report) == {CertCheck.WEAK_SIGNATURE}
    ev = report.verdicts[CertCheck.WEAK_SIGNATURE]
    assert [c["position"] for c in ev["certificates"]] == ["intermediate"]
    assert report.trust.trusted
    # What the grade sees: the intermediate's SHA-1, though the leaf is SHA-256; never the root's.
    assert (report.signature_hash, report.weakest_hash) == ("sha256", "sha1")
    sha256_inter = ca("modern intermediate", root, pki.ec)
    clean = under(root, sha256_inter).leaf("a.test", key=pki.ec)
    assert judge(pki, clean, sha256_inter, root, store=store).weakest_hash == "sha256"


def test_md5_self_signed_rsa_leaf(pki: Pki) -> None:
    leaf = pki.trusted.leaf("a.test", key=pki.rsa1024, hash_alg=hashes.MD5(), self_signed=True)
    report = judge(pki, leaf)
    assert checks(report) == {CertCheck.UNTRUSTED, CertCheck.WEAK_KEY, CertCheck.WEAK_SIGNATURE}
    assert report.verdicts[CertCheck.UNTRUSTED]["reason"] == "self_signed"
    assert report.verdicts[CertCheck.WEAK_SIGNATURE]["hash"] == "md5"
    # Trusted as a pinned anchor, it is still weak, never untrusted.
    pinned = judge(pki, leaf, store=TrustStore.of([leaf.cert]))
    assert checks(pinned) == {CertCheck.WEAK_KEY, CertCheck.WEAK_SIGNATURE}


# ---------------------------------------------------------------- parsing


def test_garbage_and_empty_chains_are_protocol_failures(pki: Pki) -> None:
    with pytest.raises(ProtocolFailure):
        judge_chain([], "a.test", NOW, pki.store)
    with pytest.raises(ProtocolFailure):
        judge_chain([b"\x30\x03\x02\x01\x00"], "a.test", NOW, pki.store)
    leaf = pki.trusted.leaf("a.test", key=pki.ec)
    report = judge_chain([*der(leaf, pki.inter), b"junk"], "a.test", NOW, pki.store)
    assert report.unparsable == 1 and report.verdicts == {}


# ---------------------------------------------------------------- findings


def test_findings_merge_addresses_per_check(pki: Pki) -> None:
    inter = pki.inter
    expired = pki.trusted.leaf("a.test", key=pki.ec, not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    other_expired = pki.trusted.leaf("a.test", key=pki.ec, not_before=NOW - 90 * DAY, not_after=NOW - 2 * DAY)
    good = pki.trusted.leaf("a.test", key=pki.ec)
    reports = [
        ("127.0.0.2", judge(pki, good, inter)),
        ("127.0.0.3", judge(pki, expired, inter)),
        ("127.0.0.4", judge(pki, expired, inter)),
    ]
    findings = cert_findings("a.test", 8443, reports)
    assert [f.check_id for f in findings] == ["tls.cert.expired"]
    f = findings[0]
    assert f.key == "a.test:8443" and f.severity is None  # the catalog's default applies
    assert f.evidence["addresses"] == ["127.0.0.3", "127.0.0.4"] and "by_address" not in f.evidence
    reports.append(("127.0.0.5", judge(pki, other_expired, inter)))
    f = cert_findings("a.test", 8443, reports)[0]
    assert f.evidence["addresses"] == ["127.0.0.3", "127.0.0.4", "127.0.0.5"]
    assert f.evidence["days_left"] == -1
    assert f.evidence["by_address"]["127.0.0.5"]["days_left"] == -2


def test_every_check_is_in_the_catalog() -> None:
    catalog = load_catalog()
    assert all(check.value in catalog for check in CertCheck)


@pytest.mark.parametrize(("settings", "days"), [
    ({}, 30), ({"expiry_warning_days": 14}, 14), ({"expiry_warning_days": 0}, 0),
])
def test_expiry_warning_days_setting(settings: dict[str, object], days: int) -> None:
    assert TlsSettings.from_json(settings).expiry_warning_days == days


@pytest.mark.parametrize("settings", [{"expiry_warning_days": -1}, {"expiry_warning_days": "14"},
                                      {"expiry_warning_days": True}, {"expiry_warning_days": 3651}, {"days": 3}])
def test_bad_expiry_warning_days_is_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="tls"):
        TlsSettings.from_json(settings)


# ---------------------------------------------------------------- the trust store


def test_store_is_the_system_bundle_plus_ca_bundle_loaded_once(pki: Pki, tmp_path: Path) -> None:
    system, source = system_anchors()
    assert len(system) > 50 and source  # Debian's ca-certificates
    bundle = pki.other.write_trust(tmp_path / "extra.pem")
    store = load_trust_store(str(bundle))
    assert len(store) == len(load_trust_store(None)) + 1
    assert store.holds(pki.other.root.cert) and not load_trust_store(None).holds(pki.other.root.cert)
    assert load_trust_store(str(bundle)) is store  # cached, not re-read per address
    leaf = pki.other.leaf("a.test", key=pki.ec)
    assert judge(pki, leaf, pki.other_inter, store=store).verdicts == {}


def test_pem_bundle_keeps_good_entries_around_a_broken_one(pki: Pki) -> None:
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    certs = parse_pem_bundle(pki.trusted.root.cert_pem + broken + pki.other.root.cert_pem)
    assert [c.subject.rfc4514_string() for c in certs] == ["CN=judge root", "CN=stranger root"]
