"""The parts the demo lab shares with tests/support: its zone type and DNS server, its sink, its CA."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from agent.demo.certs import LabAuthority
from agent.demo.dns import LabDns, Zone
from tests.support.certs import Authority
from tests.support.dnsserver import dns_server
from tests.support.sinks import http_sink


def _ask(server: str, port: int, name: str, rdtype: str) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), server, port=port, timeout=3)


def test_zone_lookup_is_case_insensitive_and_follows_an_alias() -> None:
    zone = Zone.of({"WWW.Lab.test.": "127.0.0.5", "two.lab.test": ["127.0.0.6", "::1"]},
                   {"alias.lab.test": "www.lab.test"})
    assert zone.lookup("www.LAB.test") == (None, ("127.0.0.5",))
    assert zone.lookup("two.lab.test.") == (None, ("127.0.0.6", "::1"))
    assert zone.lookup("alias.lab.test") == ("www.lab.test", ("127.0.0.5",))
    assert zone.lookup("other.lab.test") is None


def test_the_lab_dns_and_dnsmasq_serve_one_zone_alike() -> None:
    records = {"www.zone.test": "127.0.0.5", "six.zone.test": ["127.0.0.6", "::1"]}
    cnames = {"alias.zone.test": "www.zone.test"}
    lab = LabDns(Zone.of(records, cnames)).start()
    try:
        with dns_server(records, cnames) as dnsmasq:
            for host, port in (("127.0.0.1", lab.port), (dnsmasq.listen, dnsmasq.port)):
                a = _ask(host, port, "www.zone.test", "A")
                assert [r.address for rr in a.answer for r in rr] == ["127.0.0.5"]
                aaaa = _ask(host, port, "six.zone.test", "AAAA")
                assert [r.address for rr in aaaa.answer for r in rr if rr.rdtype == dns.rdatatype.AAAA] == ["::1"]
                alias = _ask(host, port, "alias.zone.test", "A")
                assert [r.address for rr in alias.answer for r in rr if rr.rdtype == dns.rdatatype.A] == ["127.0.0.5"]
                assert _ask(host, port, "nothere.zone.test", "A").rcode() == dns.rcode.NXDOMAIN
    finally:
        lab.stop()


def test_the_tests_sink_is_the_lab_sink_and_fails_first_when_told(tmp_path: Path) -> None:
    body = json.dumps({"title": "t", "message": "hello"}).encode()
    with http_sink(fail_first=1) as sink:
        request = urllib.request.Request(sink.url("http"), body, {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=5)
            raise AssertionError("the first post should have been refused")
        except urllib.error.HTTPError as exc:
            assert exc.code == 500
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.status == 200
        assert [p.status for p in sink.posts] == [500, 200] and sink.messages() == [{"title": "t", "message": "hello"}]
        assert sink.posts[0].headers["content-type"] == "application/json"
        assert sink.received == []  # no directory: nothing written anywhere


def test_both_authorities_issue_leaves_a_client_verifies(tmp_path: Path) -> None:
    lab = LabAuthority()
    pair = lab.issue(tmp_path, "www.lab.test")
    ssl.create_default_context(cafile=str(lab.write_bundle(tmp_path / "lab-ca.pem")))  # a loadable bundle
    from cryptography import x509

    tests_ca = Authority()
    leaf = tests_ca.leaf("www.tests.test", "127.0.0.9")

    names = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["www.tests.test"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.9"]
    assert tests_ca.intermediate is not None
    leaf.cert.verify_directly_issued_by(tests_ca.intermediate.cert)
    tests_ca.intermediate.cert.verify_directly_issued_by(tests_ca.root.cert)
    lab_leaf = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    lab_leaf.verify_directly_issued_by(lab.cert)
