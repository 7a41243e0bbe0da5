"""An SSL Labs-style grade for a TLS service, computed from suite scans and a certificate verdict.

Pure. Rules implemented, each from a published SSL Labs source:

*SSL Server Rating Guide* (Qualys SSL Labs; docs/SSL_Server_Rating_Guide.xml
in github.com/ssllabs/research, version 2009e, and its wiki successor
"SSL Server Rating Guide", version 2009q, 31 January 2020):

* score = 30% protocol support + 30% key exchange + 40% cipher strength; a zero
  in any category makes the score zero; A >= 80, B >= 65, C >= 50, D >= 35,
  E >= 20, else F.
* protocol support: (best + worst protocol) / 2 with SSL 3.0 80, TLS 1.0 90,
  TLS 1.1 95, TLS 1.2 100 (TLS 1.3, added by rule 2009r, scores 100 here).
* key exchange: anonymous 0; key or DH parameter < 512 bits 20; exportable 40;
  < 1024 40; < 2048 80; < 4096 90; >= 4096 100. DHE/ECDHE strength is the
  weaker of the group and the certificate key (the guide's 2009e note).
* cipher strength: (strongest + weakest) / 2 with 0 bits 0, < 128 20,
  < 256 80, >= 256 100.
* M for a certificate name mismatch, T for a certificate that is not trusted
  (untrusted, expired, not yet valid, the leaf or an intermediate); the score
  is kept for the record.
* A- for an A with warnings; A+ for an A with no warnings and HSTS with a long
  max-age (2009e).

Grade caps, from the SSL Labs announcements that amend the guide (blog.qualys.com):

* "SSL Labs: Stricter Security Requirements for 2014": key < 2048 bits caps at
  B, < 1024 bits is F, MD5 certificate signatures are F; no secure
  renegotiation is a warning (A-).
* "SSL Labs End of Year 2014 Updates": SSL 3 caps at B, at C when a CBC suite
  is usable with it (POODLE), F when only SSL 3 is offered; RC4 caps at B; A+
  needs TLS_FALLBACK_SCSV and a SHA-2 signature.
* "SSL Labs 1.17: RC4, Obsolete Crypto, and Logjam" and "SSL Labs: Increased
  Penalty When TLS 1.2 Is Not Supported" (May 2015): RC4 with TLS 1.1 or newer
  caps at C; no TLS 1.2 caps at C.
* "SSL Labs Grading Changes January 2017": 3DES and every 64-bit block cipher
  negotiated with TLS 1.1 or newer caps at C.
* "SSL Labs Grading Update: Forward Secrecy, Authenticated Encryption and
  ROBOT" (March 2018, rule 2009p): no forward secrecy caps at B, no AEAD suite
  caps at B.
* "SSL Labs Grade Change for TLS 1.0 and TLS 1.1 Protocols" (January 2020,
  rule 2009q): TLS 1.0 or 1.1 caps at B.

posture's readings where SSL Labs relies on what it alone observes:

* "negotiated with modern clients" is read as: the suite the server picks
  from a full offer in modern-client order (``SuiteScan.preferred``).
* anonymous key exchange and NULL encryption zero their category, hence F;
  EXPORT suites are F (FREAK); DH parameters follow the key-size caps.
* a SHA-1 (or MD5) signature on the leaf or an intermediate, never the root,
  is T: browsers refuse such chains since January 2017 and SSL Labs no longer
  trusts them; an MD5 one is F underneath (the 2014 rule above).
* HSTS "long max-age" is at least 180 days (15552000 s).
* several addresses: each is graded and the worst grade stands, with the
  reasons of all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from probes.net.web import DEFAULT_HSTS_MIN_AGE
from probes.tls.suite_data import LEGACY_PROTOCOLS, KexFamily, Protocol, Suite, Weakness, suite_table
from probes.tls.suites import LOGJAM_DH_BITS, MIN_DH_BITS, SuiteScan, dh_bits, negotiates_forward_secrecy

ORDER = ("A+", "A", "A-", "B", "C", "D", "E", "F")  # best first; T and M stand outside it
HSTS_MIN_AGE = DEFAULT_HSTS_MIN_AGE  # 180 days, shared with the http probe's HSTS check
_WEAK_SIGNATURE_HASHES = frozenset({"sha1", "md5", "md4", "md2"})
_PROTOCOL_SCORE = {Protocol.SSL3: 80, Protocol.TLS10: 90, Protocol.TLS11: 95, Protocol.TLS12: 100,
                   Protocol.TLS13: 100}


@dataclass(frozen=True)
class CertVerdict:
    trusted: bool
    hostname_ok: bool
    expired: bool
    not_yet_valid: bool
    key_type: str  # rsa, dsa, ec, ed25519, ed448 (case-insensitive)
    key_bits: int
    # sha256, sha1, md5... None when unknown: the weakest of the leaf's and its intermediates' (never the root's)
    signature_hash: str | None


@dataclass(frozen=True)
class Grade:
    grade: str  # "A+","A","A-","B","C","D","E","F","T","M"
    score: int | None
    protocol_score: int | None
    key_exchange_score: int | None
    cipher_score: int | None
    caps: tuple[str, ...]  # reasons that capped the grade, human readable

    def to_json(self) -> dict[str, Any]:
        return {
            "grade": self.grade,
            "score": self.score,
            "protocol_score": self.protocol_score,
            "key_exchange_score": self.key_exchange_score,
            "cipher_score": self.cipher_score,
            "caps": list(self.caps),
        }


def grade(cert: CertVerdict | None, scans: Sequence[SuiteScan], hsts_max_age: int | None = None, *,
          hsts_min_age: int = HSTS_MIN_AGE) -> Grade:
    graded = [_grade_scan(cert, scan, hsts_max_age, hsts_min_age) for scan in scans if scan.accepted()]
    if not graded:
        return _trust(cert, Grade("F", None, None, None, None, ("no SSL/TLS version accepted",)))
    worst = max(graded, key=lambda g: ORDER.index(g.grade))
    caps: list[str] = []
    for g in graded:
        caps.extend(c for c in g.caps if c not in caps)
    return _trust(cert, Grade(worst.grade, worst.score, worst.protocol_score, worst.key_exchange_score,
                              worst.cipher_score, tuple(caps)))


def _trust(cert: CertVerdict | None, base: Grade) -> Grade:
    """M and T replace the letter; the reasons say what it would be otherwise."""
    if cert is None:
        return base
    if not cert.hostname_ok:
        letter, why = "M", "certificate does not match the host name"
    elif cert.expired:
        letter, why = "T", "certificate has expired"
    elif cert.not_yet_valid:
        letter, why = "T", "certificate is not yet valid"
    elif not cert.trusted:
        letter, why = "T", "certificate chain is not trusted"
    elif (cert.signature_hash or "").lower() in _WEAK_SIGNATURE_HASHES:
        letter, why = "T", f"certificate chain signed with {cert.signature_hash} (browsers distrust it)"
    else:
        return base
    caps = (f"{why}: grade {letter} ({base.grade} if trusted)", *base.caps)
    return Grade(letter, base.score, base.protocol_score, base.key_exchange_score, base.cipher_score, caps)


class _Caps:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.warnings: list[str] = []

    def cap(self, letter: str, reason: str) -> None:
        self.items.append((letter, f"{reason}: grade capped at {letter}" if letter != "F" else f"{reason}: grade F"))

    def note(self, reason: str) -> None:
        """A reason worth reporting that does not lower the grade by itself."""
        self.items.append(("A+", reason))

    def limit(self) -> str:
        return max((letter for letter, _ in self.items), key=ORDER.index, default="A+")


def _grade_scan(cert: CertVerdict | None, scan: SuiteScan, hsts_max_age: int | None, hsts_min_age: int) -> Grade:
    table = suite_table()
    accepted = scan.accepted()
    by_protocol = {p: table.lookup(scan.suites.get(p.value, ())) for p in accepted}
    suites = [s for group in by_protocol.values() for s in group]
    caps = _Caps()

    protocol_score = (_PROTOCOL_SCORE[accepted[-1]] + _PROTOCOL_SCORE[accepted[0]]) // 2
    cipher_scores = [_cipher_score(s.bits) for s in suites] or [0]
    cipher_score = (max(cipher_scores) + min(cipher_scores)) // 2
    kex_scores = [_kex_score(s, cert, scan.groups) for s in suites]
    known = [k for k in kex_scores if k is not None]
    if known:
        kex_score = (max(known) + min(known)) // 2
    else:
        kex_score = 90
        caps.note("key exchange not measured (no certificate verdict): 2048 bits assumed")
    zero = 0 in cipher_scores or 0 in known
    score = 0 if zero else round(0.3 * protocol_score + 0.3 * kex_score + 0.4 * cipher_score)
    if zero:
        caps.cap("F", "anonymous or unencrypted (NULL) suites accepted")

    _protocol_caps(scan, by_protocol, caps)
    _suite_caps(scan, suites, caps)
    _key_caps(cert, scan.groups, caps)
    if scan.secure_renegotiation is False:
        caps.warnings.append("secure renegotiation (RFC 5746) not supported")

    letter = max(_letter(score), caps.limit(), key=ORDER.index)
    if letter == "A":
        letter = _polish(cert, scan, hsts_max_age, hsts_min_age, caps)
    reasons = tuple(r for _, r in caps.items) + tuple(f"warning: {w}" for w in caps.warnings)
    return Grade(letter, score, protocol_score, kex_score, cipher_score, reasons)


def _polish(cert: CertVerdict | None, scan: SuiteScan, hsts_max_age: int | None, hsts_min_age: int,
            caps: _Caps) -> str:
    """A becomes A- with warnings, A+ with nothing to hold it back."""
    if caps.warnings:
        return "A-"
    missing = []
    if hsts_max_age is None or hsts_max_age < hsts_min_age:
        missing.append(f"HSTS max-age of at least {hsts_min_age} s")
    if scan.fallback_scsv is False:
        missing.append("TLS_FALLBACK_SCSV support")
    if cert is not None and (cert.signature_hash or "").lower() in _WEAK_SIGNATURE_HASHES:
        missing.append("a SHA-2 certificate signature")
    if missing:
        caps.note(f"A+ needs {', '.join(missing)}")
        return "A"
    return "A+"


def _protocol_caps(scan: SuiteScan, by_protocol: dict[Protocol, list[Suite]], caps: _Caps) -> None:
    accepted = set(by_protocol)
    if accepted == {Protocol.SSL3}:
        caps.cap("F", "only SSLv3 is accepted")
    elif Protocol.SSL3 in accepted:
        cbc = any(s.block and not s.aead for s in by_protocol[Protocol.SSL3])
        caps.cap("C" if cbc else "B", "SSLv3 accepted with CBC suites (POODLE)" if cbc else "SSLv3 accepted")
    legacy_tls = sorted(p.value for p in accepted & LEGACY_PROTOCOLS if p is not Protocol.SSL3)
    if legacy_tls:
        caps.cap("B", f"{' and '.join(legacy_tls)} accepted")
    if not accepted & {Protocol.TLS12, Protocol.TLS13}:
        caps.cap("C", "TLS 1.2 not supported")


def _suite_caps(scan: SuiteScan, suites: Sequence[Suite], caps: _Caps) -> None:
    table = suite_table()
    modern = [table.by_name(scan.preferred.get(p.value, "")) for p in (Protocol.TLS11, Protocol.TLS12)]
    negotiated = [s for s in modern if s is not None]
    if any(Weakness.RC4 in s.flags for s in negotiated):
        caps.cap("C", "RC4 negotiated with TLS 1.1 or newer")
    elif any(Weakness.RC4 in s.flags for s in suites):
        caps.cap("B", "RC4 accepted")
    if any(Weakness.BLOCK64 in s.flags for s in negotiated):
        caps.cap("C", "64-bit block cipher (3DES) negotiated with TLS 1.1 or newer")
    if any(Weakness.EXPORT in s.flags for s in suites):
        caps.cap("F", "EXPORT suites accepted (FREAK)")
    if not negotiates_forward_secrecy(scan):
        caps.cap("B", "no forward secrecy with modern clients")
    if not any(s.aead for s in suites):
        caps.cap("B", "no AEAD suites")


def _key_caps(cert: CertVerdict | None, groups: Iterable[str], caps: _Caps) -> None:
    if cert is not None:
        bits = _cert_equivalent(cert)
        if bits is not None and bits < 1024:
            caps.cap("F", f"certificate key of {cert.key_bits} bits ({cert.key_type})")
        elif bits is not None and bits < 2048:
            caps.cap("B", f"certificate key of {cert.key_bits} bits ({cert.key_type})")
        if (cert.signature_hash or "").lower() in {"md5", "md4", "md2"}:
            caps.cap("F", f"certificate signed with {cert.signature_hash}")
    dh = [b for b in (dh_bits(g) for g in groups) if b is not None]
    if dh and min(dh) < LOGJAM_DH_BITS:
        caps.cap("F", f"DH parameters of {min(dh)} bits (Logjam)")
    elif dh and min(dh) < MIN_DH_BITS:
        caps.cap("B", f"DH parameters of {min(dh)} bits")


def _letter(score: int) -> str:
    for floor, letter in ((80, "A"), (65, "B"), (50, "C"), (35, "D"), (20, "E")):
        if score >= floor:
            return letter
    return "F"


def _cipher_score(bits: int) -> int:
    if bits == 0:
        return 0
    if bits < 128:
        return 20
    return 80 if bits < 256 else 100


def _strength_score(bits: int) -> int:
    for bound, score in ((512, 20), (1024, 40), (2048, 80), (4096, 90)):
        if bits < bound:
            return score
    return 100


def _kex_score(suite: Suite, cert: CertVerdict | None, groups: Sequence[str]) -> int | None:
    if Weakness.ANON in suite.flags:
        return 0
    if Weakness.EXPORT in suite.flags:
        return 40
    cert_bits = _cert_equivalent(cert) if cert is not None else None
    group_bits: int | None = None
    if suite.forward_secret or suite.kx.endswith("_anon"):
        family = [b for b in (_group_equivalent(g, suite) for g in groups) if b is not None]
        group_bits = min(family) if family else None
    known = [b for b in (cert_bits, group_bits) if b is not None]
    return _strength_score(min(known)) if known else None


# RSA-equivalent strength of EC keys and groups: NIST SP 800-57 Part 1 Rev. 5, Table 2.
def _ec_equivalent(bits: int) -> int:
    for floor, rsa in ((512, 15360), (384, 7680), (256, 3072), (224, 2048), (160, 1024)):
        if bits >= floor:
            return rsa
    return 512


def _cert_equivalent(cert: CertVerdict) -> int | None:
    kind = cert.key_type.lower()
    if kind in {"rsa", "dsa"}:
        return cert.key_bits
    if kind in {"ec", "ecdsa"}:
        return _ec_equivalent(cert.key_bits)
    return {"ed25519": 3072, "ed448": 7680}.get(kind)


_EC_GROUP = re.compile(r"^(?:secp|sect|brainpoolp)(\d+)")


def _group_equivalent(group: str, suite: Suite) -> int | None:
    """The group's strength if it can serve ``suite``'s key exchange, else None."""
    name = group.lower()
    ff = dh_bits(name)
    ec: int | None = {"x25519": 3072, "x448": 7680}.get(name)
    if ec is None and (found := _EC_GROUP.match(name)):
        ec = _ec_equivalent(int(found.group(1)))
    if suite.tls13:  # only named groups exist in TLS 1.3; dhNNNN came from a TLS 1.2 DHE suite
        return ec if ec is not None else (ff if name.startswith("ffdhe") else None)
    return ff if suite.kex_family is KexFamily.FF else ec
