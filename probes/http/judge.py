"""Pure judging for the ``http`` probe: plain-HTTP answers and HSTS headers.

Nothing here does I/O. The probe walks redirects and records each response as
an :class:`Answer`; these functions decide what the answers mean.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from probes.base import JSON, Finding
from probes.net.scope import normalise_host
from probes.net.web import DEFAULT_HSTS_MIN_AGE, Hsts, HstsState, parse_hsts  # the one HSTS parser

NO_HTTPS = "http.no_https"
HSTS_MISSING = "http.hsts.missing"  # no header, or one browsers ignore
HSTS_SHORT = "http.hsts.short_max_age"  # a valid header whose max-age is under the threshold
ONE_YEAR = 31_536_000  # seconds
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class PlainState(enum.StrEnum):
    """What a plain-HTTP endpoint does with a visitor."""

    CLOSED = "closed"  # connection refused: nothing is served
    FILTERED = "filtered"  # connect timed out: nothing is served
    UPGRADES = "upgrades"  # redirect to https on the same host
    UPGRADES_OFF_HOST = "upgrades_off_host"  # redirect to https on another host
    SERVES_CONTENT = "serves_content"  # 2xx/4xx with a body over plain HTTP
    REDIRECTS_TO_PLAIN = "redirects_to_plain"  # redirect to http on another host
    NO_CONTENT = "no_content"  # e.g. an empty 204: nothing served, nothing upgraded
    SERVER_ERROR = "server_error"  # 5xx: says nothing stable about the endpoint
    BAD_REDIRECT = "bad_redirect"  # redirect status with no usable http(s) Location

    @property
    def is_finding(self) -> bool:
        return self in (PlainState.SERVES_CONTENT, PlainState.REDIRECTS_TO_PLAIN)


@dataclass(frozen=True)
class Answer:
    """What judging needs of one HTTP response."""

    url: str
    status: int
    location: str | None = None  # absolute when it could be resolved
    body_length: int = 0
    truncated: bool = False
    hsts: str | None = None  # the first Strict-Transport-Security field, as sent
    server: str | None = None

    @property
    def is_redirect(self) -> bool:
        return self.status in REDIRECT_CODES

    def to_json(self) -> dict[str, JSON]:
        return {
            "url": self.url,
            "status": self.status,
            "location": self.location,
            "body_length": self.body_length,
            "truncated": self.truncated,
            "server": self.server,
        }


@dataclass(frozen=True)
class PlainVerdict:
    """One address of a plain-HTTP endpoint: where the walk started, what it met, what it means."""

    state: PlainState
    url: str
    chain: tuple[Answer, ...] = ()  # every answer of the walk, first to last

    @property
    def final(self) -> Answer | None:
        return self.chain[-1] if self.chain else None

    def to_json(self) -> dict[str, JSON]:
        first = self.chain[0] if self.chain else None
        return {
            "state": self.state.value,
            "status": first.status if first else None,
            "location": first.location if first else None,
            "server": first.server if first else None,
            "chain": [a.to_json() for a in self.chain],
        }


def _split_url(url: str | None) -> tuple[str, str] | None:
    """(scheme, normalised host) of ``url``, or None when it is not a usable http(s) URL."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 -- raises on a port out of range
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, normalise_host(host)


def same_host(url: str | None, host: str) -> bool:
    split = _split_url(url)
    return split is not None and split[1] == normalise_host(host)


def url_port(url: str) -> int:
    """The port of a URL :func:`next_hop`/:func:`judge_plain` accepted (explicit or the scheme's default)."""
    parts = urlsplit(url.strip())
    return parts.port or (443 if parts.scheme.lower() == "https" else 80)


def next_hop(answer: Answer, host: str, scheme: str) -> str | None:
    """The Location to follow from ``answer``: a redirect to ``scheme`` on ``host``; else None."""
    if not answer.is_redirect:
        return None
    split = _split_url(answer.location)
    if split is None or split[0] != scheme or not same_host(answer.location, host):
        return None
    return answer.location


def judge_plain(final: Answer, host: str) -> PlainState:
    """What the last plain-HTTP answer of a walk within ``host`` means for a visitor."""
    if final.is_redirect:
        split = _split_url(final.location)
        if split is None:
            return PlainState.BAD_REDIRECT
        if split[0] == "https":
            return PlainState.UPGRADES if same_host(final.location, host) else PlainState.UPGRADES_OFF_HOST
        return PlainState.REDIRECTS_TO_PLAIN
    if final.status >= 500:
        return PlainState.SERVER_ERROR
    return PlainState.SERVES_CONTENT if final.body_length > 0 else PlainState.NO_CONTENT


def pick_hsts(chain: Sequence[Answer], min_age: int = DEFAULT_HSTS_MIN_AGE) -> tuple[Hsts, str | None]:
    """The HSTS policy a browser takes from an HTTPS redirect chain within one host.

    The first response that carries the header sets it (a site that redirects
    ``/`` to ``/en/`` and sends HSTS only on the page is still protected).
    Returns the policy and the URL it came from.
    """
    for answer in chain:
        if answer.hsts is not None:
            return parse_hsts(answer.hsts, min_age), answer.url
    return Hsts(raw=None, min_age=min_age), (chain[0].url if chain else None)


def no_https_finding(key: str, verdicts: Mapping[str, PlainVerdict]) -> Finding | None:
    """One finding for a plain-HTTP endpoint, listing every address that fails."""
    bad = {addr: v for addr, v in sorted(verdicts.items()) if v.state.is_finding}
    if not bad:
        return None
    first = next(iter(bad.values()))
    evidence: dict[str, JSON] = {
        "url": first.url,
        "reason": first.state.value,
        "addresses": list(bad),
    }
    if first.final is not None:
        evidence["status"] = first.final.status
        evidence["final_url"] = first.final.url
        if first.final.location:
            evidence["location"] = first.final.location
    if len(first.chain) > 1:
        evidence["chain"] = [a.url for a in first.chain]
    return Finding(check_id=NO_HTTPS, key=key, evidence=evidence)


def hsts_findings(key: str, policies: Mapping[str, tuple[Hsts, str | None]]) -> list[Finding]:
    """The HSTS findings of an HTTPS endpoint, each listing its addresses.

    Missing or malformed (browsers ignore it) is ``http.hsts.missing``; a valid
    policy whose max-age is under the threshold is ``http.hsts.short_max_age``:
    a header that is present is not "missing".
    """
    out: list[Finding] = []
    for check, states in ((HSTS_MISSING, (HstsState.MISSING, HstsState.MALFORMED)), (HSTS_SHORT, (HstsState.SHORT,))):
        bad = {addr: p for addr, p in sorted(policies.items()) if p[0].state in states}
        if not bad:
            continue
        hsts, url = next(iter(bad.values()))
        evidence: dict[str, JSON] = {"url": url, "reason": hsts.state.value, "addresses": list(bad)}
        if hsts.raw is not None:
            evidence["header"] = hsts.raw
        if hsts.max_age is not None:
            evidence["max_age"] = hsts.max_age
            evidence["min_age"] = hsts.min_age
        if hsts.problem:
            evidence["problem"] = hsts.problem
        out.append(Finding(check_id=check, key=key, evidence=evidence))
    return out


def hsts_finding(key: str, policies: Mapping[str, tuple[Hsts, str | None]]) -> Finding | None:
    """The first of :func:`hsts_findings` (missing before short), or None."""
    found = hsts_findings(key, policies)
    return found[0] if found else None
