"""What the leak probe sends: the provocations, built as pure functions of the
target URL, the home page's links and a random token.

The whole plan stays within about a dozen requests per asset (see
:data:`MAX_REQUESTS`) and nothing in it can change state on a server:

* GETs of a random path that cannot exist, plain and with extensions that
  servers map to a handler (.aspx, .php, .jsp, .do), so the request reaches
  the application's error handling instead of a static-file 404;
* one GET whose path carries malformed percent-encoding, sent byte for byte;
* for one linked URL with query parameters: the value with a quote appended,
  and a word where a number was; links that look like state changes
  (logout, delete...) are never touched;
* one request with a method no server implements (``POSTURE``): a made-up
  token has no semantics anywhere, unlike PUT/DELETE (writes), PROPFIND
  (WebDAV listings) or TRACE (reflects headers and trips security tooling),
  so the only thing a server can do with it is refuse it, and how it refuses
  is what we judge.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from probes.net.web import same_origin

#: The made-up method; a valid RFC 9110 token that no server implements.
UNSUPPORTED_METHOD = "POSTURE"
NOT_FOUND_SUFFIXES: tuple[str, ...] = ("", ".aspx", ".php", ".jsp", ".do")
#: "%po" and "%zz" are not percent-escapes; servers that decode before routing choke on them.
MALFORMED_SEGMENT = b"%posture%zz"
TYPE_PROBE_VALUE = "posture"

MAX_PARAMS = 2  # parameters of the one linked URL we provoke
MAX_PARAM_PROVOCATIONS = 3  # quote/word variants across those parameters
MAX_DISCOVERY_PAGES = 1  # same-origin pages fetched only to find parameters
#: baseline + 5 not-found + malformed + method + discovery + reference page + parameter variants
MAX_REQUESTS = 1 + len(NOT_FOUND_SUFFIXES) + 2 + MAX_DISCOVERY_PAGES + 1 + MAX_PARAM_PROVOCATIONS

# Words in a link that suggest a GET with side effects; such links are left alone.
_UNSAFE_LINK = re.compile(
    r"log_?out|sign_?out|sign_?off|delete|remove|destroy|unsubscribe|cancel|revoke|reset|"
    r"purchase|checkout|confirm|approve|transfer|order|trade|withdraw",
    re.IGNORECASE,
)
# Parameters that only feed analytics; provoking them tells us nothing about the application.
_TRACKING_PARAM = re.compile(r"^(?:utm_\w+|fbclid|gclid|msclkid|_ga|lang|locale)$", re.IGNORECASE)
_STATIC_SUFFIX = re.compile(
    r"\.(?:css|js|mjs|map|png|jpe?g|gif|svg|webp|ico|bmp|woff2?|ttf|eot|otf|pdf|zip|gz|mp4|mp3|webm|xml|txt)$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"^-?\d{1,18}(?:\.\d{1,9})?$")


class ProvocationKind(enum.StrEnum):
    """Part of every leak finding's key, so values never change."""

    BASELINE = "baseline"  # the home page itself (headers judged, body is the reference)
    NOT_FOUND = "not_found"
    BAD_ENCODING = "bad_encoding"
    PARAM_QUOTE = "param_quote"
    PARAM_TYPE = "param_type"
    BAD_METHOD = "bad_method"


class RequestRole(enum.StrEnum):
    HOME = "home"  # the target URL: the normal page, and the links to follow
    PROVOCATION = "provocation"
    REFERENCE = "reference"  # the unmodified page a parameter variant is compared with
    DISCOVERY = "discovery"  # an ordinary page fetched only to find links with parameters


@dataclass(frozen=True)
class Provocation:
    kind: ProvocationKind
    method: str
    url: str
    raw_path: bytes | None = None
    follow_redirects: bool = True
    #: What varies within a kind (extension, parameter name): evidence, never the key.
    detail: dict[str, str] = field(default_factory=dict)
    #: URL of the ordinary page this one is a variant of (None: the home page).
    reference_url: str | None = None


@dataclass(frozen=True)
class ParamCandidate:
    url: str  # absolute, fragment dropped
    name: str
    value: str

    @property
    def numeric(self) -> bool:
        return bool(_NUMBER.match(self.value))


def target_directory(url: str) -> str:
    """The URL's directory (path up to its last slash), where provocation paths go."""
    parts = urlsplit(url)
    path = parts.path or "/"
    directory = path[: path.rfind("/") + 1] or "/"
    return urlunsplit((parts.scheme, parts.netloc, directory, "", ""))


def fixed_provocations(target_url: str, token: str) -> list[Provocation]:
    """The provocations every web asset gets, in the order they are judged."""
    base = target_directory(target_url)
    base_path = urlsplit(base).path.encode("ascii", "strict")
    plan = [
        Provocation(
            ProvocationKind.NOT_FOUND,
            "GET",
            urljoin(base, f"posture-{token}{suffix}"),
            detail={"variant": suffix or "plain"},
        )
        for suffix in NOT_FOUND_SUFFIXES
    ]
    plan.append(
        Provocation(
            ProvocationKind.BAD_ENCODING,
            "GET",
            base,
            raw_path=base_path + MALFORMED_SEGMENT,
            detail={"variant": "malformed percent-encoding"},
        )
    )
    plan.append(
        Provocation(
            ProvocationKind.BAD_METHOD,
            UNSUPPORTED_METHOD,
            target_url,
            follow_redirects=False,
            detail={"variant": UNSUPPORTED_METHOD},
        )
    )
    return plan


def extract_links(html: str, base_url: str) -> list[str]:
    """Absolute URLs of links and GET forms in ``html``, in document order, deduplicated."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    base = base_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        base = urljoin(base_url, base_node.attributes.get("href") or "")
    seen: dict[str, None] = {}
    for node in tree.css("a[href], area[href]"):
        href = (node.attributes.get("href") or "").strip()
        if href and not href.lower().startswith(("javascript:", "mailto:", "tel:", "data:", "#")):
            seen.setdefault(_absolute(base, href), None)
    for form in tree.css("form"):
        if (form.attributes.get("method") or "get").strip().lower() != "get":
            continue  # never submit anything that posts
        action = _absolute(base, (form.attributes.get("action") or "").strip() or base_url)
        fields: list[tuple[str, str]] = []
        for inp in form.css("input[name], select[name], textarea[name]"):
            kind = (inp.attributes.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "file", "password", "reset"):
                continue
            fields.append((inp.attributes.get("name") or "", inp.attributes.get("value") or ""))
        if fields:
            parts = urlsplit(action)
            seen.setdefault(urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(fields), "")),
                            None)
    return list(seen)


def _absolute(base: str, href: str) -> str:
    parts = urlsplit(urljoin(base, href))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def _safe_link(url: str) -> bool:
    parts = urlsplit(url)
    return not _UNSAFE_LINK.search(parts.path) and not _UNSAFE_LINK.search(parts.query) \
        and not _STATIC_SUFFIX.search(parts.path)


def param_candidates(links: Iterable[str], origin: str) -> list[ParamCandidate]:
    """Query parameters of same-origin, harmless-looking links, one per (path, name)."""
    out: list[ParamCandidate] = []
    seen: set[tuple[str, str]] = set()
    for url in links:
        if not same_origin(url, origin) or not _safe_link(url):
            continue
        parts = urlsplit(url)
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if not name or _TRACKING_PARAM.match(name) or (parts.path, name) in seen:
                continue
            seen.add((parts.path, name))
            out.append(ParamCandidate(url, name, value))
    return out


def discovery_pages(links: Iterable[str], origin: str, exclude: Iterable[str] = ()) -> list[str]:
    """Same-origin pages without a query worth fetching to look for parameters."""
    skip = {_strip(u) for u in exclude}
    out: list[str] = []
    for url in links:
        if same_origin(url, origin) and _safe_link(url) and not urlsplit(url).query and _strip(url) not in skip:
            out.append(url)
            skip.add(_strip(url))
    return out[:MAX_DISCOVERY_PAGES]


def _strip(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, (parts.netloc or "").lower(), parts.path or "/", parts.query, ""))


def choose_parameters(candidates: Sequence[ParamCandidate]) -> list[ParamCandidate]:
    """Up to :data:`MAX_PARAMS` parameters, all of the first URL that has any.

    One URL means one reference fetch; numeric parameters go first because they
    are the likeliest to reach a database lookup.
    """
    if not candidates:
        return []
    first = candidates[0].url
    same = [c for c in candidates if c.url == first]
    same.sort(key=lambda c: not c.numeric)  # stable: document order within each group
    return same[:MAX_PARAMS]


def with_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    pairs = [(k, value if k == name else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))


def param_provocations(chosen: Sequence[ParamCandidate]) -> list[Provocation]:
    """A quote appended to each value, and a word where a number was, capped."""
    plan: list[Provocation] = []
    for c in chosen:
        plan.append(Provocation(ProvocationKind.PARAM_QUOTE, "GET", with_param(c.url, c.name, c.value + "'"),
                                detail={"parameter": c.name}, reference_url=c.url))
    for c in chosen:
        if c.numeric:
            plan.append(Provocation(ProvocationKind.PARAM_TYPE, "GET",
                                    with_param(c.url, c.name, TYPE_PROBE_VALUE),
                                    detail={"parameter": c.name}, reference_url=c.url))
    return plan[:MAX_PARAM_PROVOCATIONS]
