"""Certificates judged where the local TLS library cannot get them: legacy-only servers, huge certificates.

Real servers on loopback (``openssl s_server``, gnutls-serv in a private network
namespace, Python's ssl server) with certificates from the tests' CA. Each case
checks the scan is complete (status ok) and the certificate verdicts are there.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from probes.base import Limits, ProbeResult, RunStatus, Target
from probes.http.probe import HttpProbe
from probes.net.handshake import permissive_context
from probes.tls.hello import FlightReader, Outcome, certificate_list
from probes.tls.probe import TlsProbe
from tests.support.certs import Authority, Issued, make_key, write_pair
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, http_server, server_context
from tests.support.tls_servers import gnutls_probe, openssl_server, tls_record

HOST = "gw.legacy.test"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
FAST = Limits(connect_timeout=3.0, request_deadline=5.0, probe_deadline=40.0)


async def probe(target: Target, ca_bundle: Path) -> ProbeResult:
    async with probe_context(target, ca_bundle=str(ca_bundle), limits=FAST, now=NOW) as ctx:
        return await TlsProbe().run(target, ctx)


def ids(result: ProbeResult) -> set[str]:
    return {f.check_id for f in result.findings}


def pem_pair(tmp: Path, authority: Authority, leaf: Issued, name: str) -> tuple[Path, Path]:
    return write_pair(tmp, name, authority.chain_pem(leaf), leaf.key_pem)


def chain_args(tmp: Path, authority: Authority, name: str) -> tuple[str, ...]:
    """``openssl s_server`` sends only the first certificate of -cert: the intermediate goes in -cert_chain."""
    assert authority.intermediate is not None
    path = tmp / f"{name}-chain.pem"
    path.write_bytes(authority.intermediate.cert_pem)
    return ("-cert_chain", str(path))


# ---------------------------------------------------------------- the reader, pure


def certificate_message(chain: list[bytes]) -> bytes:
    entries = b"".join(len(c).to_bytes(3, "big") + c for c in chain)
    body = len(entries).to_bytes(3, "big") + entries
    return bytes([11]) + len(body).to_bytes(3, "big") + body


def test_certificate_list_parses_and_refuses_bad_lengths() -> None:
    body = certificate_message([b"leaf", b"ca"])[4:]
    assert certificate_list(body) == (b"leaf", b"ca")
    assert certificate_list(body[:-1]) is None
    assert certificate_list(b"\x00\x00\x00") == ()
    assert certificate_list(b"\x00\x00\x04\x00\x00\x05ab") is None


def test_reader_takes_a_certificate_message_far_over_64_kib() -> None:
    from tests.support.tls_servers import server_hello_message

    big = bytes(range(256)) * 4096  # 1 MiB "certificate"
    flight = server_hello_message((3, 3), 0x002F) + certificate_message([big, b"ca"]) + b"\x0e\x00\x00\x00"
    records = b"".join(tls_record(22, flight[i:i + 16384]) for i in range(0, len(flight), 16384))
    reader = FlightReader(certificates=True)
    reply = None
    for i in range(0, len(records), 5000):
        reply = reader.feed(records[i:i + 5000])
        if reply is not None:
            break
    assert reply is not None and reply.outcome is Outcome.HELLO
    assert reply.certificates == (big, b"ca")
    # Without asking for the chain the reader still answers at the ServerHello.
    plain = FlightReader().feed(records[:16384 + 5])
    assert plain is not None and plain.certificates == () and plain.suite == 0x002F


# ---------------------------------------------------------------- legacy-only servers


CERTS: dict[str, dict[str, Any]] = {
    "good": {"names": (HOST,), "expect": set()},
    "expired-wrong-name": {
        "names": ("other.test",), "not_before": NOW - dt.timedelta(days=40), "not_after": NOW - dt.timedelta(days=3),
        "expect": {"tls.cert.expired", "tls.cert.hostname_mismatch"},
    },
    "weak-key-sha1": {"names": (HOST,), "key": ("rsa", 1024), "hash": hashes.SHA1(),
                      "expect": {"tls.cert.weak_key", "tls.cert.weak_signature"}},
    "untrusted": {"names": (HOST,), "stranger": True, "expect": {"tls.cert.untrusted"}},
}


def issue(authority: Authority, case: dict[str, Any]) -> tuple[Authority, Issued]:
    ca = Authority("stranger root") if case.get("stranger") else authority
    kind, bits = case.get("key", ("rsa", 2048))  # RSA: static-RSA, RC4 and NULL suites need it
    leaf = ca.leaf(*case["names"], key=make_key(kind, bits), not_before=case.get("not_before"),
                   not_after=case.get("not_after"),
                   hash_alg=case.get("hash"))
    return ca, leaf


@pytest.mark.parametrize("case", list(CERTS))
async def test_null_only_server_gets_a_certificate_verdict(
    authority: Authority, ca_bundle: Path, tmp_path: Path, case: str
) -> None:
    ca, leaf = issue(authority, CERTS[case])
    cert, key = pem_pair(tmp_path, ca, leaf, case)
    with openssl_server(cert, key, "127.0.5.11", *chain_args(tmp_path, ca, case), "-tls1_2",
                        "-cipher", "NULL-SHA256:NULL-SHA:@SECLEVEL=0") as ep:
        result = await probe(make_target(f"tls://{HOST}:{ep.port}", (ep.host,)), ca_bundle)
    assert result.status is RunStatus.OK, result.error
    obs: Any = result.observations["addresses"][ep.host]
    assert obs["status"] == "ok" and obs["chain_source"] == "raw_handshake"
    assert "NULL" in obs["cipher"] and obs["tls_library_error"]
    assert obs["certificate"]["not_after"]
    found = ids(result)
    assert "tls.cipher.weak" in found
    certs = {f for f in found if f.startswith("tls.cert.")}
    assert certs == CERTS[case]["expect"]
    assert result.observations["grade"]["grade"] in ("F", "T", "M")  # NULL: F; untrusted T; mismatch M


@pytest.mark.parametrize("bits", [512, 768])
def test_small_dhe_only_server_gets_a_certificate_verdict(
    authority: Authority, ca_bundle: Path, tmp_path: Path, bits: int
) -> None:
    """OpenSSL 3 refuses to serve (and to accept) DH under 1024 bits; GnuTLS still serves it, as old gateways do."""
    dh = tmp_path / f"dh{bits}.pem"
    made = subprocess.run(["openssl", "dhparam", "-out", str(dh), str(bits)], capture_output=True, check=False)
    assert made.returncode == 0, made.stderr.decode()
    _, leaf = issue(authority, CERTS["good"])
    cert, key = pem_pair(tmp_path, authority, leaf, f"dh{bits}")
    priority = "NONE:+VERS-TLS1.2:+VERS-TLS1.0:+AES-128-CBC:+DHE-RSA:+SHA1:+COMP-NULL:+SIGN-ALL:%PROFILE_VERY_WEAK"
    result = gnutls_probe(cert, key, priority, host=HOST, ca_bundle=ca_bundle, dhparams=dh)
    assert result["status"] == "ok", (result["error"], result["observations"])
    obs = result["observations"]["addresses"]["127.0.0.1"]
    assert obs["status"] == "ok" and obs["trust"]["trusted"] is True and obs["hostname_match"] is True
    assert obs["chain_source"] == "raw_handshake" and obs["tls_library_error"]
    assert f"dh{bits}" in result["observations"]["suites"]["127.0.0.1"]["groups"]  # seen, and judged weak
    assert {f for f in result["findings"] if f.startswith("tls.cert.")} == set()
    weak = result["findings"]["tls.cipher.weak"]  # Logjam territory: a critical finding, not only a grade
    assert weak["dh_groups"] == {"127.0.0.1": f"dh{bits}"} and weak["dh_bits"] == bits
    assert all("weak_dh" in why for why in weak["reasons"].values())
    assert result["severities"]["tls.cipher.weak"] == "critical"
    assert result["observations"]["grade"]["grade"] == "F"


@pytest.mark.parametrize(("label", "priority", "case"), [
    ("rc4-only", "NONE:+VERS-TLS1.2:+VERS-TLS1.0:+ARCFOUR-128:+RSA:+SHA1:+COMP-NULL:+SIGN-ALL:+CURVE-ALL", "good"),
    ("3des-only", "NONE:+VERS-TLS1.2:+VERS-TLS1.0:+3DES-CBC:+RSA:+SHA1:+COMP-NULL:+SIGN-ALL:+CURVE-ALL", "good"),
    ("rc4-expired", "NONE:+VERS-TLS1.2:+ARCFOUR-128:+RSA:+SHA1:+COMP-NULL:+SIGN-ALL:+CURVE-ALL",
     "expired-wrong-name"),
])
def test_gnutls_rc4_or_3des_only_gets_a_certificate_verdict(
    authority: Authority, ca_bundle: Path, tmp_path: Path, label: str, priority: str, case: str
) -> None:
    _, leaf = issue(authority, CERTS[case])
    cert, key = pem_pair(tmp_path, authority, leaf, label)
    result = gnutls_probe(cert, key, priority, host=HOST, ca_bundle=ca_bundle)
    assert result["status"] == "ok", result["error"]
    obs = result["observations"]["addresses"]["127.0.0.1"]
    assert obs["status"] == "ok" and obs["trust"]["trusted"] is True
    assert "tls.cipher.weak" in result["findings"]
    assert {f for f in result["findings"] if f.startswith("tls.cert.")} == CERTS[case]["expect"]
    weak = result["findings"]["tls.cipher.weak"]["reasons"]
    assert any(("rc4" if "rc4" in label else "3des") in r for r in weak.values())


# ---------------------------------------------------------------- a 10,000-name certificate


@pytest.fixture(scope="module")
def huge(authority: Authority) -> Issued:
    names = (HOST, *(f"n{i:05d}.shard.legacy.test" for i in range(9999)))
    return authority.leaf(*names, key=make_key("ec", 256))


def test_the_huge_certificate_is_over_openssls_default_bound(huge: Issued) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    assert len(huge.cert.public_bytes(Encoding.DER)) > 250_000


async def test_huge_certificate_is_judged_and_the_site_reached(
    authority: Authority, ca_bundle: Path, tmp_path: Path, huge: Issued
) -> None:
    cert, key = pem_pair(tmp_path, authority, huge, "huge")
    hsts = {"/": Reply(200, "ok", headers={"Strict-Transport-Security": "max-age=31536000"})}
    with http_server(hsts, host="127.0.5.13", tls=server_context(cert, key)) as srv:
        target = make_target(f"https://{HOST}:{srv.port}/", ("127.0.5.13",),
                             settings={"http": {"http_port": 1}})
        result = await probe(target, ca_bundle)
        async with probe_context(target, limits=FAST) as ctx:
            web = await HttpProbe().run(target, ctx)
    assert result.status is RunStatus.OK, result.error
    obs: Any = result.observations["addresses"]["127.0.5.13"]
    assert obs["status"] == "ok" and obs["trust"]["trusted"] is True and obs["hostname_match"] is True
    assert obs["certificate"]["sans_total"] == 10_000 and len(obs["certificate"]["sans"]) == 100  # record bounded
    assert {f for f in ids(result) if f.startswith("tls.cert.")} == set()
    assert web.status is RunStatus.OK, web.error
    assert "http.hsts.missing" not in {f.check_id for f in web.findings}


async def test_huge_certificate_through_the_raw_handshake_alone(
    authority: Authority, ca_bundle: Path, tmp_path: Path, huge: Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where OpenSSL's bound cannot be lifted, the raw handshake's chain is judged instead."""
    import probes.net.handshake as handshake

    monkeypatch.setattr(handshake, "allow_large_certificates", lambda ctx: False)
    permissive_context.cache_clear()  # one context per process: make it again, without the lift
    try:
        await _huge_through_raw_handshake(authority, ca_bundle, tmp_path, huge)
    finally:
        permissive_context.cache_clear()


async def _huge_through_raw_handshake(authority: Authority, ca_bundle: Path, tmp_path: Path, huge: Issued) -> None:
    assert permissive_context() is not None
    cert, key = pem_pair(tmp_path, authority, huge, "huge-raw")
    with http_server({}, host="127.0.5.14", tls=server_context(cert, key)) as srv:
        result = await probe(make_target(f"tls://{HOST}:{srv.port}", ("127.0.5.14",)), ca_bundle)
    assert result.status is RunStatus.OK, result.error
    obs: Any = result.observations["addresses"]["127.0.5.14"]
    assert obs["chain_source"] == "raw_handshake" and obs["protocol"] == "TLSv1.2"
    assert "EXCESSIVE_MESSAGE_SIZE" in obs["tls_library_error"]
    assert obs["trust"]["trusted"] is True and obs["hostname_match"] is True
    assert {f for f in ids(result) if f.startswith("tls.cert.")} == set()


def test_openssls_certificate_bound_is_lifted_on_client_contexts() -> None:
    import ssl

    from probes.net.tlsctx import MAX_CERT_LIST, allow_large_certificates

    assert MAX_CERT_LIST == (1 << 24) - 1
    assert allow_large_certificates(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)) is True
    assert allow_large_certificates(permissive_context()) is True  # already lifted: still says so


def test_huge_certificate_records_are_bounded_but_every_name_is_matched(huge: Issued, ca_bundle: Path) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    from probes.tls.cert import MAX_LISTED_SANS, CertCheck, judge_chain
    from probes.tls.trust import load_trust_store

    store = load_trust_store(str(ca_bundle))
    der = (huge.cert.public_bytes(Encoding.DER),)
    last = judge_chain(der, "n09998.shard.legacy.test", NOW, store)  # the very last name still matches
    assert last.hostname_ok
    wrong = judge_chain(der, "other.test", NOW, store)
    evidence = wrong.verdicts[CertCheck.HOSTNAME_MISMATCH]
    assert len(evidence["sans"]) == MAX_LISTED_SANS and evidence["sans_total"] == 10_000  # type: ignore[arg-type]
