"""A page that mentions a vendor is not that vendor's block page (edge probe, real servers on loopback).

An origin with no WAF whose ordinary pages name a WAF vendor ("Download our SafeLine
mobile app", "partners include Barracuda Networks", "the incident ID is shown on your
receipt") keeps ``edge.waf.absent``: a block-page marker names its vendor only from the
answer to the attack when the page as normally served does not carry it, and the
signatures match the block pages' own wording, not the vendor's bare name. A real block
page with the same words in front of such an origin still names the vendor.
"""

from __future__ import annotations

from typing import Any

import pytest

from probes.base import ProbeResult, RunStatus, Target
from probes.edge.judge import UNKNOWN_WAF
from probes.edge.probe import EdgeProbe
from tests.support.context import make_target, probe_context
from tests.support.servers import Reply, Seen, http_server
from tests.support.waf import modsecurity_waf

# The auditor's cases: what a bank's home page says about vendors, no WAF and no CDN in front.
MENTIONS = {
    "safeline": "Download our SafeLine mobile app.",
    "barracuda": "Our network partners include Barracuda Networks and Chunghwa Telecom.",
    "incident_id": "Report fraud: the incident ID is shown on your receipt.",
}
# Help pages that quote a block page's own words (the site explains what a block looks like).
QUOTES = {
    "safeline": "If a page reads “Security Detection Powered By SafeLine WAF”, call us.",
    "barracuda": "A page saying You have been blocked by the Barracuda firewall means your VPN is listed.",
    "securesphere": "An error saying Contact support for additional information. The incident ID is: 123 "
                    "is ours; quote the number.",
}
# Block pages as the products serve them.
SAFELINE_PAGE = (  # chaitin/SafeLine blockpage/index.html, the engine's event_id comment after </html>
    "<!DOCTYPE html>\n<html lang=\"zh\"><head><meta charset=\"utf-8\" /><title>请求存在威胁，已被拦截</title></head>"
    "<body><div class=\"container\"><table class=\"content\"><tr><td>"
    "<div class=\"intercepted\">请求存在威胁，已被拦截</div><div class=\"intercepted-item\" id=\"EventID\"></div>"
    "</td></tr></table>\n      <div class=\"footer\">\n        安全检测能力由\n"
    "        <a class=\"footer-waflink\" href=\"https://waf-ce.chaitin.cn\"\n          >长亭雷池 WAF</a\n        >\n"
    "        驱动\n      </div>\n    </div></body></html>\n<!-- event_id: 5a1f0c2e9b7d4e31 TYPE: A -->"
)
SAFELINE_DENIED = (  # chaitin/SafeLine blockpage/denied.html footer, English build
    "<html><head><title>Access Forbidden</title></head><body><div class=\"intercepted\" id=\"block-title\">"
    "Access Forbidden</div>\n      <div class=\"footer\">\n        <span id=\"powered-by\">Security Detection "
    "Powered By</span>\n        <a class=\"footer-waflink\" href=\"https://waf-ce.chaitin.cn\">\n"
    "          <span id=\"waf-title\">SafeLine WAF</span>\n        </a>\n        <span id=\"powered-by-tail\">"
    "</span>\n      </div></body></html>"
)
BARRACUDA_PAGE = (  # the default block page's request to quote the event ID (identYwaf)
    "<html><head><title>Request Blocked</title></head><body><h1>The server could not process your request."
    "</h1><p>Please contact the website owner and let them know the date and time when this page occurred "
    "and the event ID found at the bottom of the page.</p><p>Event ID: 0a1b2c3d4e5f</p></body></html>"
)
SECURESPHERE_PAGE = (  # Imperva SecureSphere default error page (wafw00f securesphere.py)
    "<html><head><title>Error</title></head><body><h2>Error</h2><table><tr><td>This page can't be "
    "displayed. Contact support for additional information.<br/>The incident ID is: 1173500000000123."
    "</td></tr></table></body></html>"
)
BLOCKS = {
    # name -> (mention on the home page, block page status, block page, vendor named)
    "safeline": (MENTIONS["safeline"], 403, SAFELINE_PAGE, "SafeLine"),
    "safeline-english": (MENTIONS["safeline"], 403, SAFELINE_DENIED, "SafeLine"),
    "barracuda": (MENTIONS["barracuda"], 200, BARRACUDA_PAGE, "Barracuda"),
    "securesphere": (MENTIONS["incident_id"], 403, SECURESPHERE_PAGE, "Imperva"),
}


def page(extra: str = "") -> str:
    return ("<html><head><title>Bank</title></head><body><h1>Welcome to Example Securities</h1>"
            f"<p>Trade stocks online. {extra}</p></body></html>")


def is_attack(seen: Seen) -> bool:
    return "posture_xss=%3Cscript" in seen.path


async def run(target: Target) -> ProbeResult:
    async with probe_context(target) as ctx:
        result = await EdgeProbe().run(target, ctx)
    assert result.status is RunStatus.OK, result.error
    return result


def named(result: ProbeResult) -> list[Any]:
    obs = result.observations
    return [*obs["waf"]["vendors"], *obs["waf"]["hints"], *obs["cdn"]["vendors"], *obs["cdn"]["hints"]]


def assert_no_waf(result: ProbeResult) -> None:
    obs = result.observations
    assert named(result) == [], obs["waf"]
    assert obs["active"]["outcome"] == "not_blocked", obs["active"]
    waf = next(f for f in result.findings if f.check_id == "edge.waf.absent")
    assert waf.severity is None  # the catalogue's (high), not lowered
    assert {f.check_id for f in result.findings} == {"edge.waf.absent", "edge.cdn.absent"}


@pytest.mark.parametrize("mention", sorted(MENTIONS))
async def test_bare_origin_mentioning_a_vendor_keeps_the_waf_finding(mention: str) -> None:
    with http_server({"*": Reply(200, page(MENTIONS[mention]))}) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
        assert len(srv.seen) == 3  # the attack was sent and answered like the control
    assert_no_waf(result)


@pytest.mark.parametrize("quote", sorted(QUOTES))
async def test_a_page_quoting_a_block_page_names_nothing(quote: str) -> None:
    # The very words of a block page, on the page as normally served: the attack got what any request gets.
    with http_server({"*": Reply(200, page(QUOTES[quote]))}) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
    assert_no_waf(result)


async def test_origin_error_pages_that_mention_vendors_name_nothing() -> None:
    # The origin 404s any query with its site template, whose footer names the vendors.
    footer = " ".join(MENTIONS.values())

    def route(seen: Seen) -> Reply:
        if "?" in seen.path:
            return Reply(404, f"<html><body><h1>Page not found</h1><footer>{footer}</footer></body></html>")
        return Reply(200, page())

    with http_server({"*": route}) as srv:
        result = await run(make_target(srv.url_for("127.0.0.1")))
    assert [r["status"] for r in result.observations["active"]["requests"]] == [404, 404]
    assert_no_waf(result)


@pytest.mark.parametrize("name", sorted(BLOCKS))
async def test_the_same_words_name_the_vendor_only_from_a_real_block_page(name: str) -> None:
    mention, status, block_page, vendor = BLOCKS[name]
    blocking = {"on": False}

    def route(seen: Seen) -> Reply:
        if blocking["on"] and is_attack(seen):
            return Reply(status, block_page)
        return Reply(200, page(mention))

    with http_server({"*": route}) as srv:
        passed = await run(make_target(srv.url_for("127.0.0.1")))  # the attack gets the home page
        blocking["on"] = True
        blocked = await run(make_target(srv.url_for("127.0.0.1")))  # the attack gets the block page
    assert_no_waf(passed)
    obs = blocked.observations
    assert obs["waf"]["vendors"] == [vendor], obs["waf"]
    assert obs["active"]["outcome"] == "blocked"
    assert any(f"block page of {vendor}" in c for c in obs["active"]["changes"]), obs["active"]
    evidence = [e for e in obs["waf"]["evidence"] if e.get("vendor") == vendor]
    assert evidence and all(e["request"] == "attack" and e["signal"] == "body" for e in evidence)
    assert "edge.waf.absent" not in {f.check_id for f in blocked.findings}


async def test_a_real_waf_in_front_of_a_mentioning_origin_is_judged_by_what_it_does() -> None:
    # Real nginx + ModSecurity + CRS in front of an origin whose page names vendors and quotes block pages.
    home = {"*": Reply(200, page(" ".join([*MENTIONS.values(), *QUOTES.values()])))}
    with http_server(home) as origin:
        # log-only: the attack reaches the origin and gets its page back; no WAF, no vendor
        with modsecurity_waf(origin.url, rule_engine="DetectionOnly") as waf:
            log_only = await run(make_target(waf.url_for("127.0.0.1")))
        assert any(is_attack(s) for s in origin.seen)
        with modsecurity_waf(origin.url) as waf:
            blocking = await run(make_target(waf.url_for("127.0.0.1")))
    assert_no_waf(log_only)
    obs = blocking.observations
    assert obs["active"]["outcome"] == "blocked"
    assert obs["waf"]["vendors"] == [UNKNOWN_WAF]  # nginx's own 403: none of the vendors the origin names
    assert {f.check_id for f in blocking.findings} == {"edge.cdn.absent"}
