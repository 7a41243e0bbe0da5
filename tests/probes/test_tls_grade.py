"""grade(): the SSL Labs rating rules, table-driven over hand-made scans (no network)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from probes.tls.grade import HSTS_MIN_AGE, CertVerdict, Grade, grade
from probes.tls.suites import SuiteScan

TLS13 = ["TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"]
MODERN12 = ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
CBC10 = ["TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_AES_128_CBC_SHA"]
GOOD = CertVerdict(trusted=True, hostname_ok=True, expired=False, not_yet_valid=False,
                   key_type="RSA", key_bits=2048, signature_hash="sha256")
YEAR = 31_536_000


def scan(suites: dict[str, list[str]], *, preferred: dict[str, str] | None = None,
         groups: tuple[str, ...] = ("x25519",), reneg: bool | None = True, fallback: bool | None = True,
         address: str = "192.0.2.10") -> SuiteScan:
    protocols = {p: p in suites for p in ("SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3")}
    picks = {p: s[0] for p, s in suites.items()}
    picks.update(preferred or {})
    return SuiteScan(address=address, port=443, protocols=protocols, suites={p: tuple(s) for p, s in suites.items()},
                     preferred=picks, groups=groups, connections=10, secure_renegotiation=reneg,
                     fallback_scsv=fallback)


MODERN = scan({"TLSv1.2": MODERN12, "TLSv1.3": TLS13})

CASES: list[tuple[str, CertVerdict | None, list[SuiteScan], int | None, str, list[str]]] = [
    # id, cert, scans, hsts max-age, expected grade, substrings expected among the caps
    ("modern with long HSTS", GOOD, [MODERN], YEAR, "A+", []),
    ("modern without HSTS", GOOD, [MODERN], None, "A", ["A+ needs HSTS"]),
    ("HSTS just under 180 days", GOOD, [MODERN], HSTS_MIN_AGE - 1, "A", ["A+ needs HSTS"]),
    ("no secure renegotiation is a warning", GOOD, [replace(MODERN, secure_renegotiation=False)], YEAR, "A-",
     ["warning: secure renegotiation"]),
    ("no TLS_FALLBACK_SCSV", GOOD, [replace(MODERN, fallback_scsv=False)], YEAR, "A", ["TLS_FALLBACK_SCSV"]),
    ("TLS 1.3 only", GOOD, [scan({"TLSv1.3": TLS13})], YEAR, "A+", []),
    ("TLS 1.0 and 1.1 next to 1.2", GOOD, [scan({"TLSv1.0": CBC10, "TLSv1.1": CBC10, "TLSv1.2": MODERN12})], YEAR,
     "B", ["TLSv1.0 and TLSv1.1 accepted"]),
    ("TLS 1.0 only", GOOD, [scan({"TLSv1.0": CBC10})], YEAR, "C", ["TLS 1.2 not supported", "no AEAD"]),
    ("SSLv3 with CBC (POODLE)", GOOD, [scan({"SSLv3": CBC10[1:], "TLSv1.2": MODERN12})], YEAR, "C", ["POODLE"]),
    ("SSLv3 with RC4 only", GOOD, [scan({"SSLv3": ["TLS_RSA_WITH_RC4_128_SHA"], "TLSv1.2": MODERN12})], YEAR,
     "B", ["SSLv3 accepted", "RC4 accepted"]),
    ("SSLv3 only", GOOD, [scan({"SSLv3": ["TLS_RSA_WITH_AES_128_CBC_SHA"]})], YEAR, "F", ["only SSLv3"]),
    ("RC4 accepted, not negotiated", GOOD, [scan({"TLSv1.2": [*MODERN12, "TLS_RSA_WITH_RC4_128_SHA"]})], YEAR,
     "B", ["RC4 accepted"]),
    ("RC4 negotiated with TLS 1.2", GOOD, [scan({"TLSv1.2": ["TLS_RSA_WITH_RC4_128_SHA", *MODERN12]})], YEAR,
     "C", ["RC4 negotiated"]),
    ("3DES accepted last", GOOD, [scan({"TLSv1.2": [*MODERN12, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"],
                                        "TLSv1.3": TLS13})], YEAR, "A+", []),
    ("3DES negotiated with TLS 1.2", GOOD, [scan({"TLSv1.2": ["TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", *MODERN12]})],
     YEAR, "C", ["64-bit block"]),
    ("NULL suite accepted", GOOD, [scan({"TLSv1.2": [*MODERN12, "TLS_RSA_WITH_NULL_SHA256"]})], YEAR, "F",
     ["unencrypted (NULL)"]),
    ("anonymous suite accepted", GOOD, [scan({"TLSv1.2": [*MODERN12, "TLS_ECDH_anon_WITH_AES_128_CBC_SHA"]})], YEAR,
     "F", ["anonymous"]),
    ("EXPORT suite accepted", GOOD, [scan({"TLSv1.0": ["TLS_RSA_EXPORT_WITH_RC4_40_MD5"], "TLSv1.2": MODERN12})],
     YEAR, "F", ["EXPORT"]),
    ("static RSA only: no forward secrecy", GOOD,
     [scan({"TLSv1.2": ["TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_CBC_SHA"]}, groups=())], YEAR,
     "B", ["no forward secrecy"]),
    ("server prefers RSA over ECDHE", GOOD,
     [scan({"TLSv1.2": ["TLS_RSA_WITH_AES_128_GCM_SHA256", *MODERN12]})], YEAR, "B", ["no forward secrecy"]),
    ("CBC only: no AEAD", GOOD, [scan({"TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"]})], YEAR, "B",
     ["no AEAD"]),
    ("1024-bit RSA key", replace(GOOD, key_bits=1024), [MODERN], YEAR, "B", ["certificate key of 1024 bits"]),
    ("512-bit RSA key", replace(GOOD, key_bits=512), [MODERN], YEAR, "F", ["certificate key of 512 bits"]),
    ("P-256 key", replace(GOOD, key_type="EC", key_bits=256), [MODERN], YEAR, "A+", []),
    ("P-192 key counts as 1024 bits", replace(GOOD, key_type="ec", key_bits=192), [MODERN], YEAR, "B",
     ["certificate key of 192 bits"]),
    ("MD5 signature: T, F underneath", replace(GOOD, signature_hash="md5"), [MODERN], YEAR, "T",
     ["signed with md5 (browsers distrust it): grade T (F if trusted)", "signed with md5: grade F"]),
    ("SHA-1 signature (leaf or intermediate) is T", replace(GOOD, signature_hash="sha1"), [MODERN], YEAR, "T",
     ["signed with sha1 (browsers distrust it): grade T (A if trusted)", "SHA-2"]),
    ("1024-bit DH parameters", GOOD, [scan({"TLSv1.2": ["TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"]}, groups=("dh1024",))],
     YEAR, "B", ["DH parameters of 1024 bits"]),
    ("512-bit DH parameters", GOOD, [scan({"TLSv1.2": ["TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"]}, groups=("dh512",))],
     YEAR, "F", ["Logjam"]),
    ("untrusted chain", replace(GOOD, trusted=False), [MODERN], YEAR, "T", ["not trusted: grade T (A+ if trusted)"]),
    ("expired", replace(GOOD, expired=True), [MODERN], YEAR, "T", ["expired"]),
    ("not yet valid", replace(GOOD, not_yet_valid=True), [MODERN], None, "T", ["not yet valid: grade T (A if"]),
    ("name mismatch wins over trust", replace(GOOD, hostname_ok=False, trusted=False), [MODERN], YEAR, "M",
     ["does not match"]),
    ("no certificate verdict", None, [MODERN], YEAR, "A+", []),
    ("no certificate verdict, RSA key exchange only", None,
     [scan({"TLSv1.2": ["TLS_RSA_WITH_AES_128_GCM_SHA256"]}, groups=())], YEAR, "B", ["not measured"]),
    ("worst address wins", GOOD, [MODERN, scan({"TLSv1.0": CBC10, "TLSv1.2": MODERN12}, address="192.0.2.11")],
     YEAR, "B", ["TLSv1.0 accepted"]),
    ("no scans", GOOD, [], YEAR, "F", ["no SSL/TLS version accepted"]),
]


@pytest.mark.parametrize(("name", "cert", "scans", "hsts", "expected", "caps"), CASES, ids=[c[0] for c in CASES])
def test_grade(name: str, cert: CertVerdict | None, scans: list[SuiteScan], hsts: int | None, expected: str,
               caps: list[str]) -> None:
    result = grade(cert, scans, hsts)
    assert result.grade == expected, result.caps
    for text in caps:
        assert any(text in c for c in result.caps), (text, result.caps)
    if expected == "A+":
        assert not any("capped" in c for c in result.caps)


@pytest.mark.parametrize(
    ("cert", "scans", "scores"),
    [
        # protocol, key exchange, cipher, total: 30/30/40 weights of the guide
        (GOOD, [MODERN], (100, 90, 90, 93)),
        (GOOD, [scan({"TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]})], (100, 90, 80, 89)),
        (replace(GOOD, key_bits=4096), [scan({"TLSv1.3": TLS13}, groups=("secp384r1",))], (100, 100, 90, 96)),
        (GOOD, [scan({"TLSv1.0": CBC10, "TLSv1.2": MODERN12})], (95, 90, 90, 92)),
        (GOOD, [scan({"SSLv3": ["TLS_RSA_WITH_AES_128_CBC_SHA"], "TLSv1.2": MODERN12})], (90, 90, 90, 90)),
        (GOOD, [scan({"TLSv1.2": [*MODERN12, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"]})], (100, 90, 60, 81)),
        (GOOD, [scan({"TLSv1.2": [*MODERN12, "TLS_RSA_WITH_NULL_SHA256"]})], (100, 90, 50, 0)),
        (replace(GOOD, key_bits=1024), [scan({"TLSv1.0": ["TLS_RSA_EXPORT_WITH_DES40_CBC_SHA"]})], (90, 40, 20, 47)),
    ],
)
def test_category_scores(cert: CertVerdict, scans: list[SuiteScan], scores: tuple[int, int, int, int]) -> None:
    result = grade(cert, scans)
    assert (result.protocol_score, result.key_exchange_score, result.cipher_score, result.score) == scores


def test_grade_json() -> None:
    result = grade(GOOD, [MODERN], YEAR)
    assert result.to_json() == {"grade": "A+", "score": 93, "protocol_score": 100, "key_exchange_score": 90,
                                "cipher_score": 90, "caps": []}
    assert isinstance(result, Grade)
