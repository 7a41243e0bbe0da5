"""Table-driven tests of the edge judge, without a network.

The signature file is the table: every entry is turned into a response (or a
CNAME chain) built from its own ``example``, so adding a vendor adds cases.
"""

from __future__ import annotations

import re

import pytest

from probes.base import Severity
from probes.edge.judge import (
    COVERED_REASON,
    UNKNOWN_WAF,
    EdgeVerdict,
    Failure,
    Outcome,
    RequestKind,
    Response,
    detect,
    edge_findings,
    judge_active,
)
from probes.edge.readme_table import signatures_markdown
from probes.edge.signatures import Role, Signal, Signature, load_signatures, parse_signatures
from vocab import DataFileError

SIGS = load_signatures()
ALL = list(SIGS.signatures)
URL = "https://www.broker.test/"


def sig_id(sig: Signature) -> str:
    return f"{sig.vendor}-{sig.signal}-{sig.pattern_text}"[:80]


def response_for(sig: Signature, kind: RequestKind = RequestKind.BASELINE) -> Response:
    """A response carrying ``sig``'s example and nothing else vendor-specific."""
    header = sig.example_header()
    if header is not None:
        return Response(kind, URL, 200, ((header[0].lower(), header[1]),), "<html>ok</html>")
    if sig.signal is Signal.BODY:
        return Response(kind, URL, 403, (("content-type", "text/html"),), sig.example)
    raise AssertionError(f"no response for a {sig.signal} signature")


def verdict_for(sig: Signature) -> EdgeVerdict:
    if sig.signal is Signal.CNAME:
        plain = Response(RequestKind.BASELINE, URL, 200, (("server", "nginx"),), "ok")
        return detect(plain, (), ("www.broker.test.example-dns.test", sig.example), SIGS)
    return detect(response_for(sig), (), (), SIGS)


# ---------------------------------------------------------------- the data file


def test_signature_file_has_version_and_sources() -> None:
    assert SIGS.version
    assert len(ALL) >= 60
    for sig in ALL:
        assert sig.source.strip() and sig.example.strip(), sig_id(sig)


ISSUE_VENDORS = {
    # vendor named in issue 5 -> names in the data file that must be present
    "Cloudflare": ["Cloudflare"],
    "Akamai": ["Akamai"],
    "Imperva/Incapsula": ["Imperva"],
    "F5 BIG-IP (ASM/LTM)": ["F5 BIG-IP"],
    "AWS CloudFront and AWS WAF": ["AWS CloudFront", "AWS WAF"],
    "Azure Front Door/App Gateway": ["Azure Front Door", "Azure Application Gateway"],
    "Fortinet FortiWeb": ["Fortinet FortiWeb"],
    "Barracuda": ["Barracuda"],
    "ModSecurity/OWASP CRS": ["ModSecurity"],
    "Sucuri": ["Sucuri"],
    "Radware": ["Radware"],
    "Citrix NetScaler": ["Citrix NetScaler"],
    "Huawei": ["Huawei Cloud"],
    "Alibaba": ["Alibaba Cloud"],
    "Tencent": ["Tencent Cloud"],
    "Fastly": ["Fastly"],
    "Google Cloud": ["Google Cloud"],
}


ISSUE_16_VENDORS = [
    "Gcore", "CDNetworks", "Wangsu", "Tencent Cloud", "Huawei Cloud", "Alibaba Cloud", "Akamai", "Azure CDN",
    "Google Cloud", "StackPath", "Edgio / Edgecast", "Edgio / Limelight", "Reblaze", "NAXSI",
    "AWS Elastic Load Balancing", "F5 BIG-IP APM", "Fortinet FortiGate", "HiNet CDN", "Imperva", "Cloudflare",
    "F5 BIG-IP", "Fortinet FortiWeb", "Radware",
]
ISSUE_16_CNAMES = [
    "gcdn.co", "cdngc.net", "gslb.cdnetworks.net", "panthercdn.com", "wscdns.com", "wsglb0.com", "lxdns.com",
    "eo.dnse0.com", "eo.dnse3.com", "cdntip.com", "cdnhwc1.com", "cdnhwc5.com", "kunlunsl.com", "tbcache.com",
    "akamaihd.net", "msecnd.net", "googlehosted.com", "llnwd.net", "edgecastcdn.net", "stackpathdns.com",
]


@pytest.mark.parametrize("vendor", ISSUE_16_VENDORS)
def test_every_vendor_in_front_of_taiwan_finance_has_a_conclusive_signature(vendor: str) -> None:
    assert [s for s in ALL if s.vendor == vendor and s.conclusive], vendor


@pytest.mark.parametrize("suffix", ISSUE_16_CNAMES)
def test_cname_suffixes_of_taiwan_finance_cdns(suffix: str) -> None:
    verdict = detect(Response(RequestKind.BASELINE, URL, 200), (), ("www.broker.test", f"e1.{suffix}"), SIGS)
    assert verdict.cdn_vendors, f"{suffix} names no CDN"


@pytest.mark.parametrize("issue_name", sorted(ISSUE_VENDORS))
def test_every_required_vendor_has_a_conclusive_signature(issue_name: str) -> None:
    for vendor in ISSUE_VENDORS[issue_name]:
        conclusive = [s for s in ALL if s.vendor == vendor and s.conclusive]
        assert conclusive, f"{issue_name}: no conclusive signature for {vendor}"


ISSUE_CNAMES = [
    "cloudfront.net", "edgekey.net", "akamaiedge.net", "edgesuite.net", "akamaized.net",
    "cdn.cloudflare.net", "fastly.net", "incapdns.net", "impervadns.net", "azureedge.net",
    "azurefd.net", "cdn.hinet.net",
]


@pytest.mark.parametrize("suffix", ISSUE_CNAMES)
def test_required_cname_suffixes(suffix: str) -> None:
    chain = ("www.broker.test", f"E1234.Edge.{suffix.upper()}.")
    verdict = detect(Response(RequestKind.BASELINE, URL, 200), (), chain, SIGS)
    assert verdict.cdn_vendors, f"{suffix} names no CDN"
    assert verdict.matches[0].request is RequestKind.DNS
    assert verdict.matches[0].matched == f"CNAME e1234.edge.{suffix}"


@pytest.mark.parametrize(
    "name",
    ["notcloudfront.net", "cloudfront.net.evil.test", "fastly.net-cdn.test", "www.broker.test", "hinet.net"],
)
def test_cname_suffix_matches_only_on_label_boundaries(name: str) -> None:
    verdict = detect(Response(RequestKind.BASELINE, URL, 200), (), (name,), SIGS)
    assert verdict.matches == ()


# ---------------------------------------------------------------- every signature, from its example


@pytest.mark.parametrize("sig", ALL, ids=sig_id)
def test_each_signature_recognises_its_example(sig: Signature) -> None:
    verdict = verdict_for(sig)
    assert any(m.signature is sig for m in verdict.matches), f"{sig_id(sig)} does not match its example"
    named = set(verdict.waf_vendors) | set(verdict.cdn_vendors) | set(verdict.proxies)
    if sig.conclusive:
        assert sig.vendor in named
        # Passively, only a WAF-only marker proves a WAF; a CDN selling one proves the CDN.
        assert (sig.vendor in verdict.waf_vendors) is sig.role.proves_waf
        assert (sig.vendor in verdict.cdn_vendors) is sig.role.cdn
        assert (sig.vendor in verdict.proxies) is (sig.role is Role.PROXY)
        assert verdict.waf_present is sig.role.proves_waf
        assert verdict.cdn_present is sig.role.cdn
        if sig.role is Role.BOTH:
            assert verdict.waf_capable == [sig.vendor] and verdict.waf_note is not None
    else:
        # A hint is recorded but names nothing and proves nothing.
        assert sig.vendor not in named
        assert sig.vendor in verdict.waf_hints + verdict.cdn_hints
    # No example may name another vendor: overlapping regexes would mislabel real sites.
    assert named <= {sig.vendor}, f"{sig_id(sig)} example also names {named - {sig.vendor}}"


BODY_SIGS = [s for s in ALL if s.signal is Signal.BODY]
PLAIN_PAGE = "<html><body><h1>Welcome</h1><p>Online trading for our customers.</p></body></html>"


@pytest.mark.parametrize("sig", BODY_SIGS, ids=sig_id)
def test_block_page_markers_count_only_on_error_or_attack_responses(sig: Signature) -> None:
    ok_page = Response(RequestKind.BASELINE, URL, 200, (), sig.example)
    assert detect(ok_page, (), (), SIGS).matches == ()
    plain = Response(RequestKind.BASELINE, URL, 200, (), PLAIN_PAGE)
    on_attack = Response(RequestKind.ATTACK, URL + "?x", 200, (), sig.example)
    assert any(m.signature is sig for m in detect(plain, (on_attack,), (), SIGS).matches)


@pytest.mark.parametrize("sig", BODY_SIGS, ids=sig_id)
def test_block_page_markers_on_the_normal_page_name_nothing(sig: Signature) -> None:
    # The page as normally served carries the marker (a footer, a help page quoting it): the attack
    # answered like the control is the same page, and the origin's own error pages share its template.
    page = Response(RequestKind.BASELINE, URL, 200, (), sig.example)
    for control_status, attack_status in ((200, 200), (404, 400), (200, 500)):
        extras = (Response(RequestKind.CONTROL, URL + "?c", control_status, (), sig.example),
                  Response(RequestKind.ATTACK, URL + "?a", attack_status, (), sig.example))
        verdict = detect(page, extras, (), SIGS)
        assert verdict.matches == (), (control_status, attack_status)
        assert verdict.active.outcome is Outcome.NOT_BLOCKED, verdict.active
        assert not verdict.waf_present
        assert "edge.waf.absent" in {f.check_id for f in edge_findings(verdict, "www.broker.test", {})}


PLAIN_ORIGINS = {
    "nginx": (("server", "nginx/1.24.0"), ("content-type", "text/html"), ("x-frame-options", "DENY")),
    "apache-php": (("server", "Apache/2.4.57 (Debian)"), ("x-powered-by", "PHP/8.2.7"),
                   ("set-cookie", "PHPSESSID=abc123; path=/")),
    "iis-aspnet": (("server", "Microsoft-IIS/10.0"), ("x-powered-by", "ASP.NET"),
                   ("set-cookie", "ASP.NET_SessionId=xyz; path=/; HttpOnly"), ("x-aspnet-version", "4.0.30319")),
    "tomcat": (("set-cookie", "JSESSIONID=0123ABCD; Path=/; HttpOnly"), ("cache-control", "no-cache")),
    "express": (("x-powered-by", "Express"), ("etag", 'W/"5-abc"'), ("x-cache", "HIT"), ("age", "12")),
    "python": (("server", "BaseHTTP/0.6 Python/3.11.2"), ("set-cookie", "csrftoken=abc; SameSite=Lax")),
}


@pytest.mark.parametrize("name", sorted(PLAIN_ORIGINS))
def test_plain_origins_name_nothing(name: str) -> None:
    resp = Response(RequestKind.BASELINE, URL, 200, PLAIN_ORIGINS[name], "<html><body>Welcome</body></html>")
    verdict = detect(resp, (), ("www.broker.test",), SIGS)
    assert verdict.matches == ()
    assert not verdict.waf_present and not verdict.cdn_present


def test_conclusive_signal_wins_over_hint_of_same_vendor() -> None:
    headers = (("set-cookie", "BIGipServerpool=1.2.3; path=/"), ("set-cookie", "TS01a2b3c4=0123456789abcdef"))
    verdict = detect(Response(RequestKind.BASELINE, URL, 200, headers), (), (), SIGS)
    assert verdict.waf_vendors == ["F5 BIG-IP"]
    assert verdict.waf_hints == []


# ---------------------------------------------------------------- active comparison


def resp(kind: RequestKind, status: int | None = 200, server: str | None = "nginx", body: str = "",
         failure: Failure | None = None) -> Response:
    headers = (("server", server),) if server else ()
    return Response(kind, URL, status, headers, body, failure, "detail" if failure else "")


B, C, A = RequestKind.BASELINE, RequestKind.CONTROL, RequestKind.ATTACK
HOME = ("<html><head><title>Fixture Securities</title></head><body><h1>Fixture Securities</h1><p>Online trading, "
        "research reports, account opening and market news for our customers.</p></body></html>")
ACTIVE_TABLE = [
    # (name, baseline, control, attack, outcome, change fragment)
    ("403 on attack", resp(B), resp(C), resp(A, 403), Outcome.BLOCKED, "status 200 -> 403"),
    ("406 on attack", resp(B), resp(C), resp(A, 406), Outcome.BLOCKED, "-> 406"),
    ("429 on attack", resp(B), resp(C), resp(A, 429), Outcome.BLOCKED, "-> 429"),
    ("501 on attack", resp(B), resp(C), resp(A, 501), Outcome.BLOCKED, "-> 501"),
    ("403 where queries 404", resp(B), resp(C, 404), resp(A, 403), Outcome.BLOCKED, "404 -> 403"),
    ("reset on attack", resp(B), resp(C), resp(A, None, None, failure=Failure.DROPPED), Outcome.BLOCKED,
     "connection dropped"),
    # Silence is not a block: a slow server looks the same (the finding stands, saying so).
    ("silence on attack", resp(B), resp(C), resp(A, None, None, failure=Failure.TIMEOUT), Outcome.INCONCLUSIVE,
     "no answer"),
    # A Server header that changes alone is a pooled backend, not a block (issue 16).
    ("server changes", resp(B), resp(C), resp(A, 200, "AkamaiGHost"), Outcome.NOT_BLOCKED, ""),
    ("server changes with a block", resp(B), resp(C), resp(A, 403, "AkamaiGHost"), Outcome.BLOCKED,
     "Server 'nginx' -> 'AkamaiGHost'"),
    ("generic block page at 200", resp(B, body=HOME), resp(C, body=HOME),
     resp(A, 200, body="<html><body><h1>Request Rejected</h1><p>Your support ID is 1234</p></body></html>"),
     Outcome.BLOCKED, "block page (status 200 -> 200"),
    ("generic block page at 418", resp(B, body=HOME), resp(C, body=HOME),
     resp(A, 418, body="<h1>Blocked</h1>"), Outcome.BLOCKED, "-> 418"),
    ("block page at 999", resp(B, body=HOME), resp(C, body=HOME), resp(A, 999, body=""), Outcome.BLOCKED, "-> 999"),
    ("Chinese block page at 200", resp(B, body=HOME), resp(C, body=HOME),
     resp(A, 200, body="<h1>您的請求已被攔截</h1><p>事件編號 88231</p>"), Outcome.BLOCKED, "攔截"),
    ("gateway 502", resp(B, body=HOME), resp(C, body=HOME),
     resp(A, 502, body="<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
          "</body></html>"), Outcome.NOT_BLOCKED, ""),
    ("gateway 503 says denied", resp(B, body=HOME), resp(C, body=HOME),
     resp(A, 503, body="<h1>Service Unavailable</h1><p>Backend access denied: no healthy upstream</p>"),
     Outcome.NOT_BLOCKED, ""),
    ("dynamic page, same words", resp(B, body=HOME), resp(C, body=HOME + "<p>quote 101.5</p>"),
     resp(A, 200, body=HOME + "<p>quote 99.2</p>"), Outcome.NOT_BLOCKED, ""),
    ("page that always mentions blocking", resp(B, body=HOME + "<p>Blocked accounts: call us</p>"),
     resp(C, body=HOME + "<p>Blocked accounts: call us</p>"), resp(A, body=HOME + "<p>Blocked accounts: call us</p>"),
     Outcome.NOT_BLOCKED, ""),
    ("app error page without block words", resp(B, body=HOME), resp(C, body=HOME),
     resp(A, 500, body="<h1>Internal Server Error</h1><p>Something went wrong.</p>"), Outcome.NOT_BLOCKED, ""),
    ("block page at 200", resp(B), resp(C), resp(A, 200, body="The requested URL was rejected. Please "
     "consult with your administrator."), Outcome.BLOCKED, "block page of F5 BIG-IP"),
    ("origin 404s queries", resp(B), resp(C, 404), resp(A, 404), Outcome.NOT_BLOCKED, ""),
    ("origin 405s queries", resp(B), resp(C, 405), resp(A, 405), Outcome.NOT_BLOCKED, ""),
    ("origin 403s queries", resp(B), resp(C, 403), resp(A, 403), Outcome.NOT_BLOCKED, ""),
    ("site is all 403", resp(B, 403), resp(C, 403), resp(A, 403), Outcome.NOT_BLOCKED, ""),
    ("app rejects quote 400", resp(B), resp(C), resp(A, 400), Outcome.NOT_BLOCKED, ""),
    ("app errors 500", resp(B), resp(C), resp(A, 500), Outcome.NOT_BLOCKED, ""),
    ("same page", resp(B), resp(C), resp(A), Outcome.NOT_BLOCKED, ""),
    ("same marker on both", resp(B), resp(C, 404, body="Powered By Incapsula"),
     resp(A, 404, body="Powered By Incapsula"), Outcome.NOT_BLOCKED, ""),
    ("unstable server pool", resp(B, 200, "nginx"), resp(C, 200, "Apache"), resp(A, 200, "IIS"),
     Outcome.NOT_BLOCKED, ""),
    ("control failed", resp(B), resp(C, None, None, failure=Failure.DROPPED), resp(A, 403),
     Outcome.INCONCLUSIVE, ""),
    ("attack refused", resp(B), resp(C), resp(A, None, None, failure=Failure.REFUSED),
     Outcome.INCONCLUSIVE, ""),
]


@pytest.mark.parametrize(("baseline", "control", "attack", "outcome", "change"),
                         [t[1:] for t in ACTIVE_TABLE], ids=[t[0] for t in ACTIVE_TABLE])
def test_active_comparison(baseline: Response, control: Response, attack: Response,
                           outcome: Outcome, change: str) -> None:
    result = judge_active(baseline, control, attack, SIGS.signatures, block_words=SIGS.block_words)
    assert result.outcome is outcome, result
    if outcome is Outcome.BLOCKED:
        assert any(change in c for c in result.changes), result.changes
        assert all(c.startswith("attack request") for c in result.changes)
    else:
        assert result.changes == ()
    assert result.requests == (control, attack)


def test_active_not_run_without_extras() -> None:
    result = judge_active(resp(B), None, None, SIGS.signatures, not_run_reason="off")
    assert (result.outcome, result.reason, result.requests) == (Outcome.NOT_RUN, "off", ())


def test_blocked_attack_proves_unknown_waf() -> None:
    verdict = detect(resp(B), (resp(C), resp(A, 403)), (), SIGS)
    assert verdict.waf_present and verdict.waf_names == [UNKNOWN_WAF]
    assert verdict.waf_vendors == []
    assert verdict.waf_json()["vendors"] == [UNKNOWN_WAF]


def test_blocked_attack_with_block_page_names_the_vendor() -> None:
    page = next(s for s in ALL if s.vendor == "ModSecurity" and s.signal is Signal.BODY).example
    verdict = detect(resp(B), (resp(C), resp(A, 403, body=page)), (), SIGS)
    assert verdict.waf_names == ["ModSecurity"]
    assert verdict.matches[0].request is RequestKind.ATTACK


# ---------------------------------------------------------------- findings and declarations


def plain_verdict() -> EdgeVerdict:
    return detect(resp(B), (resp(C), resp(A)), ("www.broker.test",), SIGS)


def test_plain_origin_raises_both_findings_keyed_by_host() -> None:
    findings = edge_findings(plain_verdict(), "www.broker.test", {})
    assert [(f.check_id, f.key, f.severity) for f in findings] == [
        ("edge.waf.absent", "www.broker.test", None),
        ("edge.cdn.absent", "www.broker.test", None),
    ]
    for f in findings:
        assert f.evidence["covered_by_declaration"] is False
        observed = f.evidence["observed"]
        assert observed["active"] == "not_blocked"
        assert observed["baseline"]["status"] == 200


@pytest.mark.parametrize(
    ("declared", "covered"),
    [
        ({"ddos": "HiNet clean pipe, contract 2024-117"}, {"edge.cdn.absent"}),
        ({"cdn": "Akamai via reseller, PO 88"}, {"edge.cdn.absent"}),
        ({"waf": "F5 ASM in blocking mode, SQLi/XSS only"}, {"edge.waf.absent"}),
        ({"waf": "FortiWeb", "ddos": "Chief Telecom clean pipe"}, {"edge.waf.absent", "edge.cdn.absent"}),
        ({"waf": "  "}, set()),
        ({"other": "something"}, set()),
    ],
)
def test_declared_controls_cover_findings(declared: dict[str, str], covered: set[str]) -> None:
    findings = edge_findings(plain_verdict(), "www.broker.test", declared)
    assert {f.check_id for f in findings} == {"edge.waf.absent", "edge.cdn.absent"}
    for f in findings:
        if f.check_id in covered:
            assert f.severity is Severity.INFO and f.severity_reason == COVERED_REASON
            assert f.evidence["covered_by_declaration"] is True
            assert f.evidence["declared"] in {v.strip() for v in declared.values()}
            assert f.evidence["observed"]["waf"] == []
        else:
            assert f.severity is None and f.evidence["covered_by_declaration"] is False


def test_observed_controls_raise_nothing_even_when_declared() -> None:
    cf = next(s for s in ALL if s.vendor == "Cloudflare" and s.signal is Signal.HEADER)
    asm = next(s for s in ALL if s.vendor == "F5 BIG-IP" and s.signal is Signal.COOKIE and s.conclusive)
    headers = (*response_for(cf).headers, *response_for(asm).headers)
    verdict = detect(Response(RequestKind.BASELINE, URL, 200, headers, "<html>ok</html>"), (), (), SIGS)
    assert edge_findings(verdict, "www.broker.test", {"waf": "Cloudflare", "ddos": "Cloudflare"}) == ()


CF_RAY = (("cf-ray", "8a1b2c3d4e5f6a7b-TPE"), ("server", "cloudflare"))


def test_a_cdn_selling_a_waf_is_not_a_waf_when_the_attack_passes() -> None:
    verdict = detect(Response(B, URL, 200, CF_RAY, HOME),
                     (Response(C, URL, 200, CF_RAY, HOME), Response(A, URL, 200, CF_RAY, HOME)), (), SIGS)
    assert verdict.cdn_vendors == ["Cloudflare"] and verdict.waf_vendors == [] and not verdict.waf_present
    (finding,) = edge_findings(verdict, "www.broker.test", {})
    assert finding.check_id == "edge.waf.absent"
    assert finding.evidence["observed"]["note"] == (
        "CDN Cloudflare in front; the attack request was not blocked (the WAF may be off or in log-only mode)")
    # the team can declare the control (WAF on in log-only mode, say): the finding is covered
    (covered,) = edge_findings(verdict, "www.broker.test", {"waf": "Cloudflare WAF, log-only until 2027-01"})
    assert covered.severity is Severity.INFO and covered.evidence["covered_by_declaration"] is True


def test_a_cdn_selling_a_waf_that_blocks_is_named_as_the_waf() -> None:
    block = Response(A, URL, 403, CF_RAY, "<h1>Sorry, you have been blocked</h1>")
    verdict = detect(Response(B, URL, 200, CF_RAY, HOME), (Response(C, URL, 200, CF_RAY, HOME), block), (), SIGS)
    assert verdict.waf_vendors == ["Cloudflare"] and verdict.waf_note is None
    assert edge_findings(verdict, "www.broker.test", {}) == ()


def test_a_cdn_selling_a_waf_without_active_probes_says_so() -> None:
    verdict = detect(Response(B, URL, 200, CF_RAY, HOME), (), (), SIGS, not_run_reason="active probes are off")
    assert verdict.waf_note == ("CDN Cloudflare in front; whether its WAF blocks attacks was not observed "
                                "(active probes are off)")
    assert "edge.waf.absent" in {f.check_id for f in edge_findings(verdict, "www.broker.test", {})}


def test_load_balancers_are_named_but_prove_nothing() -> None:
    headers = (("server", "awselb/2.0"), ("set-cookie", "AWSALB=abc; Path=/"), ("set-cookie", "MRHSession=0a1b"))
    verdict = detect(Response(B, URL, 200, headers, HOME), (), (), SIGS)
    assert verdict.proxies == ["AWS Elastic Load Balancing", "F5 BIG-IP APM"]
    assert not verdict.waf_present and not verdict.cdn_present
    assert {f.check_id for f in edge_findings(verdict, "h", {})} == {"edge.waf.absent", "edge.cdn.absent"}


def test_fortigate_ips_page_is_fortigate_not_fortiweb() -> None:
    page = ("<html><head><title>Web Filter Violation</title></head><body><h1>FortiGuard Intrusion Prevention - "
            "Access Blocked</h1><p>Web Page Blocked</p><img src='//globalurl.fortinet.net/fgd.png' class='fgd_icon'>"
            "</body></html>")
    extras = (Response(C, URL, 200, (), HOME), Response(A, URL, 403, (), page))
    verdict = detect(Response(B, URL, 200, (), HOME), extras, (), SIGS)
    assert verdict.waf_vendors == ["Fortinet FortiGate"]


@pytest.mark.parametrize(("name", "vendor"), [
    ("x.eo.dnse0.com", "Tencent Cloud"), ("x.eo.dnse5.com", "Tencent Cloud"), ("a.cdnhwc2.com", "Huawei Cloud"),
    ("a.c.cdnhwc8.com", "Huawei Cloud"), ("a.w.kunlunca.com", "Alibaba Cloud"), ("a.kunlunar.com", "Alibaba Cloud"),
    ("x.gcdn.co", "Gcore"), ("x.wsglb0.com", "Wangsu"), ("x.llnwd.net", "Edgio / Limelight"),
])
def test_cname_globs_and_new_suffixes(name: str, vendor: str) -> None:
    verdict = detect(Response(B, URL, 200), (), ("www.broker.test", name), SIGS)
    assert verdict.cdn_vendors == [vendor]


@pytest.mark.parametrize("name", ["x.eo.dnse.com.evil.test", "cdnhwc1.com.evil.test", "kunlun.net", "notgcdn.co"])
def test_cname_globs_stay_on_label_boundaries(name: str) -> None:
    assert detect(Response(B, URL, 200), (), (name,), SIGS).matches == ()


# ---------------------------------------------------------------- parsing


GOOD = """version = "t"
[[signatures]]
vendor = "V"
role = "waf"
signal = "header"
name = 'x-v'
conclusive = true
source = "doc"
example = "X-V: 1"
"""


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("conclusive = true", "conclusive = \"yes\""), "conclusive must be true or false"),
        (("role = \"waf\"", "role = \"ids\""), "'ids' is not a valid Role"),
        (("signal = \"header\"", "signal = \"tls\""), "'tls' is not a valid Signal"),
        (("name = 'x-v'", "name = 'x-('"), "name is not a valid regex"),
        (("name = 'x-v'", "suffix = 'v.net'"), "a header signature needs name"),
        (("source = \"doc\"", "source = \"\""), "source must be a non-empty string"),
        (("example = \"X-V: 1\"", "example = \"X-V: 1\"\ncolour = 'red'"), "unknown key(s) colour"),
        (("signal = \"header\"", "signal = \"cname\""), "a cname signature has no name"),
        (("signal = \"header\"\nname = 'x-v'", "signal = \"cname\""), "a cname signature needs suffix"),
        (("signal = \"header\"\nname = 'x-v'", "signal = \"body\""), "a body signature needs value"),
        (("name = 'x-v'", "name = 'x-v'\nsuffix = 'v.net'"), "a header signature has no suffix"),
        (("[[signatures]]", "[signatures]"), "no [[signatures]] entries"),
    ],
)
def test_bad_signature_files_are_refused(edit: tuple[str, str], message: str) -> None:
    with pytest.raises(DataFileError, match=re.escape(message)):
        parse_signatures(GOOD.replace(*edit))


def test_good_signature_file_parses() -> None:
    parsed = parse_signatures(GOOD)
    assert parsed.vendors() == ["V"] and parsed.signatures[0].pattern_text == "x-v"


# ---------------------------------------------------------------- README section


def test_markdown_lists_every_vendor_and_signal() -> None:
    md = signatures_markdown()
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| Vendor")
            and not line.startswith("| ---")]
    assert len(rows) == len(ALL)
    for vendor in SIGS.vendors():
        assert f"| {vendor} |" in md, vendor
    for sig in ALL:
        assert sig.pattern_text.replace("|", "\\|") in md, sig_id(sig)
    # Every row keeps exactly the table's six columns: pipes inside patterns are escaped.
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 7, row


def test_page_similarity_reads_words_not_markup() -> None:
    from probes.edge.compare import page_words, similarity

    assert page_words("<style>p{x:y}</style><p>Access <b>Denied</b></p><script>var blocked=1</script>") == {
        "access", "denied"}
    assert similarity(HOME, HOME.replace("<h1>", "<h1 class='x'>")) == 1.0
    assert similarity(HOME, "<h1>Request Rejected</h1>") < 0.2
    assert similarity("", "") == 1.0
