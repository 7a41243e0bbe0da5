"""Table-driven tests of the http probe's pure judging (no network)."""

from __future__ import annotations

import pytest

from probes.catalog import load_catalog
from probes.http.judge import (
    HSTS_MISSING,
    HSTS_SHORT,
    NO_HTTPS,
    ONE_YEAR,
    Answer,
    PlainState,
    PlainVerdict,
    hsts_finding,
    hsts_findings,
    judge_plain,
    next_hop,
    no_https_finding,
    pick_hsts,
    url_port,
)
from probes.net.web import DEFAULT_HSTS_MIN_AGE, Hsts, HstsState, hsts_min_age, parse_age, parse_hsts

HOST = "www.example.test"
URL = f"http://{HOST}/"


def ans(status: int, location: str | None = None, body: int = 0, *, truncated: bool = False) -> Answer:
    return Answer(url=URL, status=status, location=location, body_length=body, truncated=truncated)


@pytest.mark.parametrize(
    ("answer", "state"),
    [
        (ans(301, f"https://{HOST}/"), PlainState.UPGRADES),
        (ans(302, f"https://{HOST}/login"), PlainState.UPGRADES),
        (ans(307, f"https://{HOST}:8443/"), PlainState.UPGRADES),  # other port, same host: fine
        (ans(308, f"https://{HOST.upper()}./"), PlainState.UPGRADES),  # case and root dot
        (ans(303, f"https://{HOST}/"), PlainState.UPGRADES),
        (ans(301, "https://sso.other.test/"), PlainState.UPGRADES_OFF_HOST),
        (ans(301, "http://other.test/"), PlainState.REDIRECTS_TO_PLAIN),
        (ans(302, f"http://{HOST}/a"), PlainState.REDIRECTS_TO_PLAIN),  # the walk follows these first
        (ans(200, body=120), PlainState.SERVES_CONTENT),
        (ans(200, body=16384, truncated=True), PlainState.SERVES_CONTENT),
        (ans(404, body=9), PlainState.SERVES_CONTENT),
        (ans(403, body=300), PlainState.SERVES_CONTENT),
        (ans(204), PlainState.NO_CONTENT),
        (ans(404), PlainState.NO_CONTENT),
        (ans(200, location=f"https://{HOST}/", body=0), PlainState.NO_CONTENT),  # Location on a 200 is no redirect
        (ans(503, body=500), PlainState.SERVER_ERROR),
        (ans(500), PlainState.SERVER_ERROR),
        (ans(301), PlainState.BAD_REDIRECT),
        (ans(302, "ftp://files.test/"), PlainState.BAD_REDIRECT),
        (ans(301, "http://[bad"), PlainState.BAD_REDIRECT),
        (ans(301, "javascript:alert(1)"), PlainState.BAD_REDIRECT),
        (ans(301, f"https://{HOST}:99999/"), PlainState.BAD_REDIRECT),
    ],
)
def test_judge_plain(answer: Answer, state: PlainState) -> None:
    assert judge_plain(answer, HOST) is state
    assert state.is_finding == (state in (PlainState.SERVES_CONTENT, PlainState.REDIRECTS_TO_PLAIN))


@pytest.mark.parametrize(
    ("answer", "scheme", "hop"),
    [
        (ans(302, f"http://{HOST}/a"), "http", f"http://{HOST}/a"),
        (ans(301, f"http://{HOST}:8080/"), "http", f"http://{HOST}:8080/"),
        (ans(301, f"https://{HOST}/"), "http", None),  # upgrade: judged, not followed
        (ans(301, "http://other.test/"), "http", None),  # off host: never followed
        (ans(200, f"http://{HOST}/a", body=3), "http", None),
        (ans(301, f"https://{HOST}/en/"), "https", f"https://{HOST}/en/"),
        (ans(301, f"http://{HOST}/"), "https", None),  # downgrade is not followed
        (ans(301, "http://[bad"), "http", None),
        (ans(301), "http", None),
    ],
)
def test_next_hop(answer: Answer, scheme: str, hop: str | None) -> None:
    assert next_hop(answer, HOST, scheme) == hop


@pytest.mark.parametrize(
    ("value", "state", "max_age", "subdomains", "preload"),
    [
        (None, HstsState.MISSING, None, False, False),
        ("max-age=31536000", HstsState.OK, ONE_YEAR, False, False),
        ("max-age=63072000; includeSubDomains; preload", HstsState.OK, 63072000, True, True),
        ('max-age="31536000"; INCLUDESUBDOMAINS', HstsState.OK, ONE_YEAR, True, False),
        (" Max-Age = 31536000 ;", HstsState.OK, ONE_YEAR, False, False),
        ("max-age=31536000; unknown-directive=1", HstsState.OK, ONE_YEAR, False, False),
        ("max-age=0", HstsState.SHORT, 0, False, False),
        ("max-age=100; includeSubDomains", HstsState.SHORT, 100, True, False),
        ("max-age=31535999", HstsState.OK, ONE_YEAR - 1, False, False),  # six months and more is enough
        ("max-age=15768000", HstsState.OK, 15768000, False, False),  # six months: A+ and no finding alike
        ("max-age=15552000", HstsState.OK, DEFAULT_HSTS_MIN_AGE, False, False),
        ("max-age=15551999", HstsState.SHORT, DEFAULT_HSTS_MIN_AGE - 1, False, False),
        ("", HstsState.MALFORMED, None, False, False),
        ("includeSubDomains", HstsState.MALFORMED, None, True, False),
        ("max-age=abc", HstsState.MALFORMED, None, False, False),
        ("max-age=-1", HstsState.MALFORMED, None, False, False),
        ("max-age", HstsState.MALFORMED, None, False, False),
        ("max-age=1e9", HstsState.MALFORMED, None, False, False),
        ("max-age=３１５３６０００", HstsState.MALFORMED, None, False, False),  # non-ASCII digits
        ("max-age=31536000; max-age=100", HstsState.MALFORMED, None, False, False),
    ],
)
def test_parse_hsts(
    value: str | None, state: HstsState, max_age: int | None, subdomains: bool, preload: bool
) -> None:
    hsts = parse_hsts(value)
    assert hsts.state is state
    assert hsts.max_age == max_age
    assert hsts.include_subdomains is subdomains
    assert hsts.preload is preload
    assert hsts.present is (value is not None)
    assert (hsts.problem is not None) is (state is HstsState.MALFORMED)
    assert hsts.to_json()["state"] == state.value


def test_pick_hsts_takes_the_first_response_that_sets_it() -> None:
    chain = [
        Answer(url="https://h/", status=301, location="https://h/en/"),
        Answer(url="https://h/en/", status=200, body_length=10, hsts="max-age=31536000"),
    ]
    hsts, source = pick_hsts(chain)
    assert (hsts.state, source) == (HstsState.OK, "https://h/en/")
    hsts, source = pick_hsts(chain[:1])
    assert (hsts.state, source) == (HstsState.MISSING, "https://h/")
    first_weak = [Answer(url="https://h/", status=200, hsts="max-age=60"), chain[1]]
    assert pick_hsts(first_weak)[0].max_age == 60


@pytest.mark.parametrize(
    ("value", "reason", "max_age"),
    [
        (None, "missing", None),
        ("max-age=0", "short_max_age", 0),
        ("max-age=100", "short_max_age", 100),
        ("max-age=bogus", "malformed", None),
    ],
)
def test_hsts_finding(value: str | None, reason: str, max_age: int | None) -> None:
    policies = {
        "127.0.0.2": (parse_hsts(value), "https://h/"),
        "127.0.0.1": (parse_hsts(value), "https://h/"),
        "127.0.0.3": (parse_hsts("max-age=31536000"), "https://h/"),
    }
    finding = hsts_finding("h:443", policies)
    assert finding is not None
    check = HSTS_SHORT if reason == "short_max_age" else HSTS_MISSING
    assert (finding.check_id, finding.key) == (check, "h:443")
    assert [f.check_id for f in hsts_findings("h:443", policies)] == [check]
    assert finding.evidence["reason"] == reason
    assert finding.evidence["addresses"] == ["127.0.0.1", "127.0.0.2"]  # sorted: stable evidence
    assert finding.evidence.get("max_age") == max_age
    assert finding.severity is None  # catalog default
    assert load_catalog()[HSTS_MISSING].severity.value == "low"
    assert "too short" in load_catalog()[HSTS_SHORT].title_en


def test_hsts_threshold_is_configurable_and_one_for_both() -> None:
    assert hsts_min_age({}) == DEFAULT_HSTS_MIN_AGE == 180 * 86400
    assert hsts_min_age({"hsts_min_age": "365d"}) == ONE_YEAR
    assert hsts_min_age({"hsts_min_age": 600}) == 600
    assert hsts_min_age({"hsts_min_age": "2w"}) == 14 * 86400
    for bad in ("soon", "-5d", True, "1y"):
        with pytest.raises(ValueError):
            parse_age(bad)
    assert parse_hsts("max-age=15768000", hsts_min_age({"hsts_min_age": "365d"})).state is HstsState.SHORT
    assert parse_hsts("max-age=600", 600).state is HstsState.OK


def test_missing_and_short_are_separate_findings_per_address() -> None:
    policies = {
        "127.0.0.1": (parse_hsts(None), "https://h/"),
        "127.0.0.2": (parse_hsts("max-age=60"), "https://h/"),
    }
    found = {f.check_id: f.evidence for f in hsts_findings("h:443", policies)}
    assert set(found) == {HSTS_MISSING, HSTS_SHORT}
    assert found[HSTS_MISSING]["addresses"] == ["127.0.0.1"]
    assert found[HSTS_SHORT]["addresses"] == ["127.0.0.2"]
    assert found[HSTS_SHORT]["min_age"] == DEFAULT_HSTS_MIN_AGE


def test_hsts_finding_absent_when_every_address_is_strong() -> None:
    strong = (parse_hsts("max-age=31536000; includeSubDomains"), "https://h/")
    assert hsts_finding("h:443", {"127.0.0.1": strong, "127.0.0.2": strong}) is None


def test_no_https_finding_lists_failing_addresses_and_chain() -> None:
    hop = Answer(url="http://h/", status=302, location="http://h/home")
    page = Answer(url="http://h/home", status=200, body_length=42)
    verdicts = {
        "127.0.0.9": PlainVerdict(PlainState.SERVES_CONTENT, "http://h/", (hop, page)),
        "127.0.0.1": PlainVerdict(PlainState.UPGRADES, "http://h/",
                                  (Answer("http://h/", 301, "https://h/"),)),
        "127.0.0.5": PlainVerdict(PlainState.CLOSED, "http://h/"),
    }
    finding = no_https_finding("h:80", verdicts)
    assert finding is not None
    assert (finding.check_id, finding.key) == (NO_HTTPS, "h:80")
    assert finding.evidence["addresses"] == ["127.0.0.9"]
    assert finding.evidence["reason"] == "serves_content"
    assert finding.evidence["status"] == 200
    assert finding.evidence["chain"] == ["http://h/", "http://h/home"]
    assert load_catalog()[NO_HTTPS].severity.value == "high"


@pytest.mark.parametrize(
    "state",
    [PlainState.CLOSED, PlainState.FILTERED, PlainState.UPGRADES, PlainState.UPGRADES_OFF_HOST,
     PlainState.NO_CONTENT, PlainState.SERVER_ERROR, PlainState.BAD_REDIRECT],
)
def test_no_https_finding_absent_for_fine_states(state: PlainState) -> None:
    assert no_https_finding("h:80", {"127.0.0.1": PlainVerdict(state, "http://h/")}) is None


def test_redirect_off_host_to_plain_is_a_finding_with_its_location() -> None:
    verdict = PlainVerdict(PlainState.REDIRECTS_TO_PLAIN, "http://h/",
                           (Answer("http://h/", 301, "http://cdn.test/"),))
    finding = no_https_finding("h:80", {"127.0.0.1": verdict})
    assert finding is not None and finding.evidence["location"] == "http://cdn.test/"


def test_verdict_json_records_first_answer() -> None:
    verdict = PlainVerdict(PlainState.UPGRADES, "http://h/",
                           (Answer("http://h/", 301, "https://h/", server="nginx"),))
    assert verdict.to_json() == {
        "state": "upgrades",
        "status": 301,
        "location": "https://h/",
        "server": "nginx",
        "chain": [{"url": "http://h/", "status": 301, "location": "https://h/", "body_length": 0,
                   "truncated": False, "server": "nginx"}],
    }
    assert Hsts(raw=None).state is HstsState.MISSING


@pytest.mark.parametrize(
    ("url", "port"),
    [("https://h/", 443), ("http://h/", 80), ("https://h:8443/x", 8443), ("HTTP://h:8080", 8080)],
)
def test_url_port(url: str, port: int) -> None:
    assert url_port(url) == port
