"""Probe ``tls`` (certificates) end to end, against real TLS servers on 127.0.0.x with generated certificates."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from probes.base import ErrorKind, Limits, ProbeResult, RunStatus, Target
from probes.net.dns import resolve
from probes.net.handshake import permissive_context, sni_for
from probes.net.web import parse_hsts
from probes.registry import load_probe
from probes.tls.probe import TlsProbe
from probes.tls.trust import system_anchors
from tests.support.certs import Authority, Issued, PrivateKey, make_key, write_pair
from tests.support.context import make_target, probe_context
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, Running, http_server, raw_server, server_context

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
FAST = Limits(connect_timeout=2.0, request_deadline=3.0, probe_deadline=20.0)


@dataclass
class Keys:
    ec: PrivateKey
    rsa2048: PrivateKey
    rsa1024: PrivateKey
    ec192: PrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(make_key("ec", 256), make_key("rsa", 2048), make_key("rsa", 1024), make_key("ec", 192))


@pytest.fixture(scope="module")
def stranger() -> Authority:
    return Authority("stranger root")


@pytest.fixture
def cert_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the certificate half alone (the strength half has its own tests below, and takes longer)."""

    async def certificates_only(self: TlsProbe, *args: object) -> None:
        return None

    monkeypatch.setattr(TlsProbe, "_strength", certificates_only)


@dataclass
class Served:
    pem: bytes
    key: bytes


def serving(authority: Authority, leaf: Issued, *, intermediate: bool = True) -> Served:
    return Served(authority.chain_pem(leaf, include_intermediate=intermediate), leaf.key_pem)


@contextmanager
def tls_server(served: Served, tmp: Path, *, host: str = "127.0.0.2", port: int = 0,
               routes: dict[str, Any] | None = None) -> Iterator[Running]:
    name = f"s{abs(hash((served.pem, host, port)))}"
    cert, key = write_pair(tmp, name, served.pem, served.key)
    with http_server(routes, host=host, port=port, tls=server_context(cert, key)) as srv:
        yield srv


def shared_port(*hosts: str) -> int:
    """A port free on every one of ``hosts`` at once (servers on several addresses share it)."""
    for _ in range(20):
        with socket.socket() as first:
            first.bind((hosts[0], 0))
            port = int(first.getsockname()[1])
            try:
                for h in hosts[1:]:
                    with socket.socket() as s:
                        s.bind((h, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on every address")


async def probe(target: Target, *, ca_bundle: Path | None = None, limits: Limits = FAST) -> ProbeResult:
    async with probe_context(target, ca_bundle=str(ca_bundle) if ca_bundle else None, limits=limits,
                             now=NOW) as ctx:
        return await TlsProbe().run(target, ctx)


def check_ids(result: ProbeResult) -> set[str]:
    return {f.check_id for f in result.findings}


def finding(result: ProbeResult, check_id: str) -> dict[str, Any]:
    [f] = [f for f in result.findings if f.check_id == check_id]
    assert f.key == f"{result.observations['host']}:{result.observations['port']}"
    return dict(f.evidence)


# ---------------------------------------------------------------- the contract


def test_registered_passive_and_applies_to_tls_schemes() -> None:
    probe = load_probe("tls")
    assert isinstance(probe.loaded(), TlsProbe) and probe.name == "tls" and probe.active is False
    for url, applies in [("https://a.test/", True), ("wss://a.test/feed", True), ("tls://a.test:9443", True),
                         ("http://a.test/", False)]:
        assert probe.applies(make_target(url)) is applies


def test_permissive_context_and_sni() -> None:
    ctx = permissive_context()
    assert ctx.verify_mode is ssl.CERT_NONE and not ctx.check_hostname
    assert ctx.minimum_version is ssl.TLSVersion.MINIMUM_SUPPORTED
    assert sni_for("a.test") == "a.test" and sni_for("127.0.0.2") is None and sni_for("::1") is None


@pytest.mark.parametrize(("header", "age"), [
    (None, None), ("", None), ("max-age=31536000", 31536000), ('Max-Age="600"; includeSubDomains', 600),
    ("includeSubDomains; max-age=0", 0), ("max-age=-1", None), ("max-age=abc", None), ("preload", None),
])
def test_hsts_max_age(header: str | None, age: int | None) -> None:
    assert parse_hsts(header).max_age == age  # the one HSTS parser, shared with the http probe


# ---------------------------------------------------------------- every check, both ways, on the wire


@dataclass(frozen=True)
class Case:
    name: str
    expected: dict[str, str | None]  # check id -> untrusted reason (None for other checks)
    names: tuple[str, ...] = ("a.test",)
    host: str = "a.test"
    not_before: dt.timedelta | None = None  # relative to now
    not_after: dt.timedelta | None = None
    key: str = "ec"
    sha1: bool = False
    self_signed: bool = False
    intermediate: bool = True
    issuer: str = "trusted"  # trusted | stranger
    trust_bundle: bool = True
    settings: dict[str, dict[str, Any]] | None = None


CASES = [
    Case("clean", {}),
    Case("clean rsa 2048", {}, key="rsa2048"),
    Case("expired", {"tls.cert.expired": None}, not_before=-400 * DAY, not_after=-2 * DAY),
    Case("not yet valid", {"tls.cert.not_yet_valid": None}, not_before=3 * DAY, not_after=300 * DAY),
    Case("expiring soon", {"tls.cert.expiring_soon": None}, not_after=10 * DAY),
    Case("expiring outside the configured window", {}, not_after=10 * DAY,
         settings={"tls": {"expiry_warning_days": 5}}),
    Case("hostname mismatch", {"tls.cert.hostname_mismatch": None}, names=("other.test",)),
    Case("wildcard match", {}, names=("*.a.test",), host="www.a.test"),
    Case("wildcard does not cover the apex", {"tls.cert.hostname_mismatch": None}, names=("*.a.test",)),
    Case("ip literal host and ip san", {}, names=("127.0.0.2",), host="127.0.0.2"),
    Case("ip literal host and dns san", {"tls.cert.hostname_mismatch": None}, host="127.0.0.2"),
    Case("self signed", {"tls.cert.untrusted": "self_signed"}, self_signed=True),
    Case("unknown ca", {"tls.cert.untrusted": "unknown_ca"}, issuer="stranger"),
    Case("incomplete chain", {"tls.cert.untrusted": "incomplete_chain"}, intermediate=False),
    Case("test ca without ca_bundle", {"tls.cert.untrusted": "unknown_ca"}, trust_bundle=False),
    Case("weak rsa 1024 key", {"tls.cert.weak_key": None}, key="rsa1024"),
    Case("sha1 signature", {"tls.cert.weak_signature": None}, sha1=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_certificate_checks(
    case: Case, cert_only: None, authority: Authority, stranger: Authority, ca_bundle: Path, keys: Keys,
    tmp_path: Path,
) -> None:
    issuer = authority if case.issuer == "trusted" else stranger
    leaf = issuer.leaf(
        *case.names,
        key=getattr(keys, case.key),
        not_before=NOW + case.not_before if case.not_before is not None else None,
        not_after=NOW + case.not_after if case.not_after is not None else None,
        hash_alg=hashes.SHA1() if case.sha1 else None,
        self_signed=case.self_signed,
    )
    served = serving(issuer, leaf, intermediate=case.intermediate and not case.self_signed)
    with tls_server(served, tmp_path) as srv:
        target = make_target(f"https://{case.host}:{srv.port}/", addresses=("127.0.0.2",), settings=case.settings)
        result = await probe(target, ca_bundle=ca_bundle if case.trust_bundle else None)
    assert result.status is RunStatus.OK, result.error
    assert check_ids(result) == set(case.expected)
    for check_id, reason in case.expected.items():
        evidence = finding(result, check_id)
        assert evidence["addresses"] == ["127.0.0.2"]
        if reason is not None:
            assert evidence["reason"] == reason
    obs = result.observations["addresses"]["127.0.0.2"]
    assert obs["status"] == "ok"
    assert obs["certificate"]["fingerprint_sha256"] == obs["chain"][0]["fingerprint_sha256"]
    assert len(obs["chain"]) == (2 if served.pem.count(b"BEGIN CERTIFICATE") == 2 else 1)
    assert "suites" not in result.observations and "grade" not in result.observations


async def test_observations_of_a_clean_address(
    cert_only: None, authority: Authority, ca_bundle: Path, keys: Keys, tmp_path: Path
) -> None:
    leaf = authority.leaf("a.test", "www.a.test", key=keys.rsa2048)
    with tls_server(serving(authority, leaf), tmp_path) as srv:
        result = await probe(make_target(f"https://a.test:{srv.port}/", addresses=("127.0.0.2",)),
                             ca_bundle=ca_bundle)
    assert result.findings == () and result.status is RunStatus.OK
    obs = result.observations
    assert json.loads(json.dumps(obs)) == obs  # stored as JSON evidence as it is
    assert obs["host"] == "a.test" and obs["sni"] == "a.test" and obs["skipped_addresses"] == {}
    assert obs["trust_store"]["sources"] == [system_anchors()[1], str(ca_bundle)]
    assert obs["trust_store"]["anchors"] == len(system_anchors()[0]) + 1
    assert obs["expiry_warning_days"] == 30
    addr = obs["addresses"]["127.0.0.2"]
    assert addr["protocol"] == "TLSv1.3" and addr["cipher"].startswith("TLS_") and addr["cipher_bits"] >= 128
    cert = addr["certificate"]
    assert cert["subject"] == "CN=a.test" and cert["sans"] == ["DNS:a.test", "DNS:www.a.test"]
    assert cert["issuer"] == "CN=posture test root intermediate"
    assert cert["serial"] == format(leaf.cert.serial_number, "x")
    assert cert["not_before"] == leaf.cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cert["not_after"] == leaf.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cert["days_left"] in (364, 365)
    assert (cert["key_type"], cert["key_bits"]) == ("RSA", 2048)
    assert cert["signature_algorithm"] == "ecdsa-with-SHA256"
    assert [(c["position"], c["subject"]) for c in addr["chain"]] == [
        ("leaf", "CN=a.test"), ("intermediate", "CN=posture test root intermediate")]
    assert addr["trust"]["trusted"] and addr["trust"]["anchor"] == "CN=posture test root"
    assert addr["hostname_match"] is True


async def test_a_p192_server_is_a_typed_handshake_error(
    cert_only: None, authority: Authority, keys: Keys, tmp_path: Path
) -> None:
    """OpenSSL serves a P-192 certificate only to clients that offer that curve, and Python's ssl
    cannot make its client offer it: such a server is a protocol error here, and the weak-EC verdict
    is covered by the pure judge (tests/probes/test_tls_cert.py::test_weak_leaf_keys)."""
    leaf = authority.leaf("a.test", key=keys.ec192)
    with tls_server(serving(authority, leaf), tmp_path) as srv:
        result = await probe(make_target(f"https://a.test:{srv.port}/", addresses=("127.0.0.2",)))
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is ErrorKind.PROTOCOL and "127.0.0.2" in result.error.message
    assert result.observations["addresses"]["127.0.0.2"]["errors"]["certificate"]["kind"] == "protocol"


# ---------------------------------------------------------------- several addresses


async def test_two_addresses_evidence_names_the_bad_one(
    cert_only: None, authority: Authority, ca_bundle: Path, keys: Keys, tmp_path: Path
) -> None:
    good = authority.leaf("a.test", key=keys.ec)
    expired = authority.leaf("a.test", key=keys.ec, not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    port = shared_port("127.0.0.2", "127.0.0.3")
    with tls_server(serving(authority, good), tmp_path, host="127.0.0.2", port=port), \
            tls_server(serving(authority, expired), tmp_path, host="127.0.0.3", port=port):
        target = make_target(f"https://a.test:{port}/", addresses=("127.0.0.2", "127.0.0.3"))
        result = await probe(target, ca_bundle=ca_bundle)
    assert result.status is RunStatus.OK
    assert check_ids(result) == {"tls.cert.expired"}
    evidence = finding(result, "tls.cert.expired")
    assert evidence["addresses"] == ["127.0.0.3"] and evidence["days_left"] == -1
    assert evidence["fingerprint_sha256"] == result.observations["addresses"]["127.0.0.3"]["chain"][0][
        "fingerprint_sha256"]
    assert set(result.observations["addresses"]) == {"127.0.0.2", "127.0.0.3"}


async def test_same_defect_on_two_addresses_is_one_finding(
    cert_only: None, authority: Authority, keys: Keys, tmp_path: Path
) -> None:
    leaf = authority.leaf("a.test", key=keys.ec, self_signed=True)
    port = shared_port("127.0.0.2", "127.0.0.3")
    with tls_server(serving(authority, leaf, intermediate=False), tmp_path, host="127.0.0.2", port=port), \
            tls_server(serving(authority, leaf, intermediate=False), tmp_path, host="127.0.0.3", port=port):
        target = make_target(f"https://a.test:{port}/", addresses=("127.0.0.2", "127.0.0.3"))
        result = await probe(target)
    [only] = result.findings
    assert only.check_id == "tls.cert.untrusted" and only.key == f"a.test:{port}"
    assert only.evidence["addresses"] == ["127.0.0.2", "127.0.0.3"] and only.evidence["reason"] == "self_signed"
    assert "by_address" not in only.evidence


def _garbage(sock: socket.socket) -> None:
    sock.recv(1024)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\nthis is not TLS at all" * 4)


def _silent_until(release: threading.Event) -> Callable[[socket.socket], None]:
    def behaviour(sock: socket.socket) -> None:
        release.wait(5)

    return behaviour


def _hang_up(sock: socket.socket) -> None:
    sock.recv(1024)
    sock.close()


@pytest.mark.parametrize(("hostile", "kind"), [("garbage", ErrorKind.PROTOCOL), ("hang up", ErrorKind.PROTOCOL),
                                                ("closed", ErrorKind.CONNECT), ("silent", ErrorKind.TIMEOUT)])
async def test_a_hostile_address_is_a_typed_error_and_the_other_is_kept(
    hostile: str, kind: ErrorKind, cert_only: None, authority: Authority, ca_bundle: Path, keys: Keys,
    tmp_path: Path,
) -> None:
    soon = authority.leaf("a.test", key=keys.ec, not_after=NOW + 7 * DAY)
    port = shared_port("127.0.0.2", "127.0.0.3")
    release = threading.Event()
    behaviours = {"garbage": _garbage, "hang up": _hang_up, "silent": _silent_until(release)}
    with ExitStack() as stack:
        stack.callback(release.set)
        stack.enter_context(tls_server(serving(authority, soon), tmp_path, host="127.0.0.2", port=port))
        if hostile in behaviours:
            stack.enter_context(raw_server(behaviours[hostile], host="127.0.0.3", port=port))
        target = make_target(f"https://a.test:{port}/", addresses=("127.0.0.2", "127.0.0.3"))
        result = await probe(target, ca_bundle=ca_bundle,
                             limits=replace(FAST, connect_timeout=0.5 if hostile == "silent" else 2.0))
    assert result.status is RunStatus.ERROR and result.error is not None
    assert result.error.kind is kind and result.error.message.startswith("127.0.0.3: ")
    assert check_ids(result) == {"tls.cert.expiring_soon"}
    assert finding(result, "tls.cert.expiring_soon")["addresses"] == ["127.0.0.2"]
    addresses = result.observations["addresses"]
    assert addresses["127.0.0.2"]["status"] == "ok" and addresses["127.0.0.2"]["certificate"]["days_left"] == 7
    assert addresses["127.0.0.3"]["status"] == "error"
    assert addresses["127.0.0.3"]["errors"]["certificate"]["kind"] == kind.value


async def test_probe_deadline_keeps_finished_addresses(
    cert_only: None, authority: Authority, ca_bundle: Path, keys: Keys, tmp_path: Path
) -> None:
    soon = authority.leaf("a.test", key=keys.ec, not_after=NOW + 7 * DAY)
    port = shared_port("127.0.0.2", "127.0.0.3")
    release = threading.Event()
    with ExitStack() as stack:
        stack.callback(release.set)
        stack.enter_context(tls_server(serving(authority, soon), tmp_path, host="127.0.0.2", port=port))
        stack.enter_context(raw_server(_silent_until(release), host="127.0.0.3", port=port))
        target = make_target(f"https://a.test:{port}/", addresses=("127.0.0.2", "127.0.0.3"))
        result = await probe(target, ca_bundle=ca_bundle, limits=replace(FAST, probe_deadline=0.5))
    assert result.error is not None and result.error.kind is ErrorKind.TIMEOUT
    assert check_ids(result) == {"tls.cert.expiring_soon"}
    assert result.observations["addresses"]["127.0.0.2"]["status"] == "ok"
    assert result.observations["addresses"]["127.0.0.3"]["errors"]["certificate"]["kind"] == "timeout"


async def test_skipped_addresses_are_recorded_not_failed(
    cert_only: None, authority: Authority, ca_bundle: Path, keys: Keys, tmp_path: Path
) -> None:
    leaf = authority.leaf("a.test", key=keys.ec)
    with tls_server(serving(authority, leaf), tmp_path) as srv:
        target = replace(make_target(f"https://a.test:{srv.port}/", addresses=("127.0.0.2",)),
                         skipped_addresses={"2001:db8::1": "no IPv6 route"})
        result = await probe(target, ca_bundle=ca_bundle)
    assert result.status is RunStatus.OK and result.findings == ()
    assert result.observations["skipped_addresses"] == {"2001:db8::1": "no IPv6 route"}
    assert list(result.observations["addresses"]) == ["127.0.0.2"]
    nothing = await probe(replace(target, addresses=()))
    assert nothing.status is RunStatus.SKIPPED and nothing.observations["skipped_addresses"]


async def test_names_resolved_through_dns_and_tls_scheme(
    cert_only: None, dns_factory: type[DnsServer], authority: Authority, ca_bundle: Path, keys: Keys,
    tmp_path: Path,
) -> None:
    """A tls:// gateway whose name resolves (through a loopback DNS server) to two addresses."""
    dns = dns_factory({"gw.test": ["127.0.0.2", "127.0.0.3"]}).start()
    res = await resolve("gw.test", dns.address)
    assert sorted(res.usable) == ["127.0.0.2", "127.0.0.3"]
    good = authority.leaf("gw.test", key=keys.ec)
    wrong = authority.leaf("quotes.test", key=keys.ec)
    port = shared_port(*res.usable)
    with tls_server(serving(authority, good), tmp_path, host="127.0.0.2", port=port), \
            tls_server(serving(authority, wrong), tmp_path, host="127.0.0.3", port=port):
        target = make_target(f"tls://gw.test:{port}", addresses=res.usable)
        result = await probe(target, ca_bundle=ca_bundle)
    assert check_ids(result) == {"tls.cert.hostname_mismatch"}
    evidence = finding(result, "tls.cert.hostname_mismatch")
    assert evidence["addresses"] == ["127.0.0.3"] and evidence["sans"] == ["DNS:quotes.test"]


# ---------------------------------------------------------------- with the strength half


async def test_whole_probe_grades_when_the_strength_half_is_installed(
    authority: Authority, ca_bundle: Path, keys: Keys, tmp_path: Path
) -> None:
    assert importlib.util.find_spec("probes.tls.suites") is not None, "the strength half (issue 4) is installed"
    leaf = authority.leaf("a.test", key=keys.ec)
    hsts = {"/": Reply(200, "ok", headers={"Strict-Transport-Security": "max-age=31536000"})}
    with tls_server(serving(authority, leaf), tmp_path, routes=hsts) as srv:
        result = await probe(make_target(f"https://a.test:{srv.port}/", addresses=("127.0.0.2",)),
                             ca_bundle=ca_bundle)
    assert result.status is RunStatus.OK, result.error
    assert result.findings == ()
    obs = result.observations
    assert obs["addresses"]["127.0.0.2"]["status"] == "ok"
    assert obs["suites"]["127.0.0.2"]["protocols"]["TLSv1.3"] is True
    assert obs["hsts_max_age"] == 31536000
    assert obs["grade"]["grade"] == "A+"


@pytest.mark.parametrize(("setting", "grade", "checks"), [
    (None, "A+", set()),  # six months: the default threshold (180 days) is met by both
    ("365d", "A", {"http.hsts.short_max_age"}),  # a stricter setting moves both together
])
async def test_hsts_grade_and_http_finding_use_one_threshold(
    authority: Authority, ca_bundle: Path, keys: Keys, tmp_path: Path,
    setting: str | None, grade: str, checks: set[str],
) -> None:
    from probes.http.probe import HttpProbe

    leaf = authority.leaf("a.test", key=keys.ec)
    six_months = {"/": Reply(200, "ok", headers={"Strict-Transport-Security": "max-age=15768000"})}
    with tls_server(serving(authority, leaf), tmp_path, routes=six_months) as srv:
        http: dict[str, Any] = {"http_port": closed_port()}
        if setting:
            http["hsts_min_age"] = setting
        # The agent passes [http] hsts_min_age to both probes (the tls probe never reads the http section).
        web = {"hsts_min_age": setting} if setting else {}
        target = make_target(f"https://a.test:{srv.port}/", addresses=("127.0.0.2",),
                             settings={"http": http, "web": web})
        result = await probe(target, ca_bundle=ca_bundle)
        async with probe_context(target, limits=FAST) as ctx:
            plain = await HttpProbe().run(target, ctx)
    assert result.status is RunStatus.OK, result.error
    assert result.observations["hsts_max_age"] == 15768000
    assert result.observations["grade"]["grade"] == grade
    assert plain.status is RunStatus.OK, plain.error
    assert {f.check_id for f in plain.findings} == checks


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


async def test_whole_probe_keeps_certificates_when_an_address_is_hostile(
    authority: Authority, keys: Keys, tmp_path: Path
) -> None:
    """Strength half included: a self-signed good address is graded T, a garbage one is an error."""
    leaf = authority.leaf("a.test", key=keys.ec, self_signed=True)
    port = shared_port("127.0.0.2", "127.0.0.3")
    with tls_server(serving(authority, leaf, intermediate=False), tmp_path, host="127.0.0.2", port=port), \
            raw_server(_garbage, host="127.0.0.3", port=port):
        target = make_target(f"wss://a.test:{port}/feed", addresses=("127.0.0.2", "127.0.0.3"))
        result = await probe(target)
    assert result.error is not None and result.error.kind is ErrorKind.PROTOCOL
    assert check_ids(result) == {"tls.cert.untrusted"}
    assert finding(result, "tls.cert.untrusted")["addresses"] == ["127.0.0.2"]
    obs = result.observations
    assert list(obs["suites"]) == ["127.0.0.2"]
    assert obs["grade"]["grade"] == "T"
    assert obs["hsts_max_age"] is None  # the page sends none
    assert json.loads(json.dumps(obs)) == obs
    assert all(json.dumps(dict(f.evidence)) for f in result.findings)
    bad = obs["addresses"]["127.0.0.3"]
    assert bad["status"] == "error" and set(bad["errors"]) == {"certificate", "suites"}


# ---------------------------------------------------------------- chains clients refuse, graded T


@dataclass(frozen=True)
class Refused:
    """A chain each part of which looks fine alone, but that clients (curl, openssl, browsers) refuse."""

    name: str
    check: str
    facts: dict[str, Any]  # evidence the finding must carry
    cap: str  # what the grade's first reason says
    intermediate: tuple[dt.timedelta, dt.timedelta] | None = None  # its validity, relative to now
    eku: tuple[str, ...] | None = None  # the leaf's extended key usages
    sha1: bool = False


REFUSED = [
    Refused("expired intermediate", "tls.cert.expired",
            {"position": "intermediate", "subject": "CN=dated root intermediate", "days_expired": 5},
            "certificate has expired", intermediate=(-700 * DAY, -5 * DAY)),
    Refused("intermediate not yet valid", "tls.cert.not_yet_valid",
            {"position": "intermediate", "subject": "CN=dated root intermediate", "days_until_valid": 5},
            "certificate is not yet valid", intermediate=(5 * DAY, 700 * DAY)),
    Refused("clientAuth-only leaf", "tls.cert.untrusted", {"reason": "wrong_purpose"},
            "certificate chain is not trusted", eku=("clientAuth",)),
    Refused("sha1-signed leaf", "tls.cert.weak_signature", {"hash": "sha1", "position": "leaf"},
            "signed with sha1", sha1=True),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
async def test_chains_clients_refuse_are_findings_and_grade_t(
    case: Refused, authority: Authority, ca_bundle: Path, keys: Keys, tmp_path: Path
) -> None:
    from cryptography.x509.oid import ExtendedKeyUsageOID

    issuer, bundle = authority, ca_bundle
    if case.intermediate is not None:
        start, end = case.intermediate
        issuer = Authority("dated root", intermediate_validity=(NOW + start, NOW + end))
        bundle = issuer.write_trust(tmp_path / "dated-root.pem")
    usages = {"clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH, "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH}
    leaf = issuer.leaf("a.test", key=keys.ec, not_before=NOW - 100 * DAY, not_after=NOW + 200 * DAY,
                       hash_alg=hashes.SHA1() if case.sha1 else None,
                       eku=[usages[u] for u in case.eku] if case.eku is not None else None)
    hsts = {"/": Reply(200, "ok", headers={"Strict-Transport-Security": "max-age=31536000"})}
    with tls_server(serving(issuer, leaf), tmp_path, routes=hsts) as srv:
        result = await probe(make_target(f"https://a.test:{srv.port}/", addresses=("127.0.0.2",)),
                             ca_bundle=bundle)
    assert result.status is RunStatus.OK, result.error
    assert case.check in check_ids(result)
    evidence = finding(result, case.check)
    assert evidence["addresses"] == ["127.0.0.2"]
    assert {k: evidence.get(k) for k in case.facts} == case.facts
    grade = result.observations["grade"]
    assert grade["grade"] == "T", grade["caps"]
    assert case.cap in grade["caps"][0] and "grade T (A" in grade["caps"][0]  # A or A+ once trusted
