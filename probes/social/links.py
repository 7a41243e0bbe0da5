"""What a social link is, how its finding key is formed, and what a leave notice reads like.

Pure functions over ``probes/social/platforms.toml``, shared by the
static and the browser judges so that both modes agree on which links are
social and on their keys (a link judged statically in one scan and in the
browser in the next is the same finding).
"""

from __future__ import annotations

import contextlib
import enum
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from urllib.parse import parse_qsl, quote, unquote, urlencode, urljoin, urlsplit, urlunsplit

from probes.net.scope import normalise_host, same_host
from vocab import DataFileError, parses_data_file

DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left alone when re-quoting a path, so "/a%20b" and "/a b" agree.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_URL_IN_TEXT = re.compile(r"""(?:https?:)?//[A-Za-z0-9.\-]+(?::\d+)?[^\s'"<>)\\]*""", re.IGNORECASE)
_BARE_HOST = re.compile(r"^[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+(?:[/?#]|$)")


class Via(enum.StrEnum):
    """How a link reaches the platform."""

    DIRECT = "direct"  # href points at the platform
    REDIRECTOR = "redirector"  # same-origin href carrying the platform URL (interstitial or redirect)
    SCRIPT = "script"  # only an inline handler / javascript: URL names the platform


class Outcome(enum.StrEnum):
    WARNED = "warned"
    NO_WARNING = "no_warning"
    INCONCLUSIVE = "inconclusive"


class Method(enum.StrEnum):
    STATIC = "static"
    BROWSER = "browser"


class Seen(enum.StrEnum):
    """What stood (or did not stand) between the click and the platform."""

    DIALOG = "dialog"  # confirm()/alert() shown (browser)
    INLINE_HANDLER = "inline_handler"  # inline code calling a notice (static)
    INTERSTITIAL = "interstitial"  # same-origin page carrying the notice
    MODAL = "modal"  # in-page element with leave text appeared
    NAVIGATED = "navigated"  # went to the platform with nothing in between
    NOTHING = "nothing"  # static: a plain link; browser: the click did nothing observable
    ERROR = "error"  # could not be judged (interstitial unreachable, page failed)


@dataclass(frozen=True)
class Platform:
    name: str
    domains: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class SocialData:
    version: str
    platforms: tuple[Platform, ...]
    markers: tuple[str, ...]  # casefolded, whitespace collapsed
    notice_functions: tuple[str, ...]
    dismiss_labels: tuple[str, ...]
    tracking: tuple[str, ...]  # exact names, or prefixes ending in "*"

    def platform_of(self, url: str) -> Platform | None:
        """The platform whose domain (or a subdomain of it) ``url`` points at."""
        try:
            host = normalise_host(urlsplit(url.strip()).hostname or "")
        except ValueError:
            return None
        if not host:
            return None
        for p in self.platforms:
            for d in p.domains:
                if host == d or host.endswith("." + d):
                    return p
        return None

    def find_markers(self, text: str) -> list[str]:
        """Leave-notice phrases present in ``text`` (longest first, no phrase inside another)."""
        folded = fold(text)
        hits: list[str] = []
        for m in sorted(self.markers, key=len, reverse=True):
            if m in folded and not any(m in h for h in hits):
                hits.append(m)
        return hits

    @property
    def notice_call(self) -> re.Pattern[str]:
        return _notice_call(self.notice_functions)

    def is_tracking(self, name: str) -> bool:
        n = name.lower()
        return any(n.startswith(t[:-1]) if t.endswith("*") else n == t for t in self.tracking)


@cache
def _notice_call(names: tuple[str, ...]) -> re.Pattern[str]:
    alts = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    # Not preceded by a name character, so "myconfirm(" is not "confirm(" but
    # "window.confirm(" and "bootbox.confirm(" are.
    return re.compile(rf"(?<![\w$])(?:window\.)?(?:{alts})\s*\(")


def fold(text: str) -> str:
    return " ".join(text.split()).casefold()


@parses_data_file("social platforms")
def parse_social_data(text: str) -> SocialData:
    raw = tomllib.loads(text)
    platforms = tuple(
        Platform(p["name"], tuple(d.lower() for d in p["domains"]), p["source"]) for p in raw["platforms"]
    )
    for p in platforms:
        if not p.source or not p.domains:
            raise DataFileError(f"platform {p.name!r} needs domains and a source")
    markers = tuple(dict.fromkeys(fold(m) for group in raw["markers"] for m in group["phrases"]))
    functions = tuple(dict.fromkeys(n for group in raw["notice_functions"] for n in group["names"]))
    return SocialData(
        version=str(raw["version"]),
        platforms=platforms,
        markers=markers,
        notice_functions=functions,
        dismiss_labels=tuple(fold(x) for x in raw["dismiss"]["labels"]),
        tracking=tuple(t.lower() for t in raw["tracking"]["params"]),
    )


@cache
def load_social_data() -> SocialData:
    text = resources.files("probes.social").joinpath("platforms.toml").read_text("utf-8")
    return parse_social_data(text)


def normalise_href(url: str, data: SocialData | None = None) -> str:
    """The finding key of a link.

    Lower-case scheme and host (IDNA), no user info, no default port, no
    fragment, no trailing slash, tracking parameters dropped, the rest of the
    query sorted, percent-encoding made uniform.
    """
    data = data or load_social_data()
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = normalise_host(parts.hostname or "")
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    path = quote(unquote(parts.path), safe=_PATH_SAFE).rstrip("/")
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not data.is_tracking(k)
    )
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))


def urls_in_code(code: str) -> list[str]:
    """Absolute or scheme-relative URLs written inside script text."""
    out = []
    for m in _URL_IN_TEXT.finditer(code):
        u = m.group(0).rstrip(".,;")
        out.append("https:" + u if u.startswith("//") else u)
    return out


def _as_url(value: str) -> str | None:
    v = value.strip()
    if v.lower().startswith(("http://", "https://")):
        return v
    if v.startswith("//"):
        return "https:" + v
    if _BARE_HOST.match(v):
        return "https://" + v
    return None


def social_destination_in_query(url: str, data: SocialData) -> tuple[str, Platform] | None:
    """The platform URL a redirector link carries in its query (``/go?url=https://fb.com/x``)."""
    try:
        query = urlsplit(url).query
    except ValueError:
        return None
    values = [v for _, v in parse_qsl(query, keep_blank_values=False)]
    values += [unquote(v) for v in values]  # doubly encoded values
    for value in values:
        candidate = _as_url(value)
        if candidate:
            platform = data.platform_of(candidate)
            if platform:
                return candidate, platform
    return None


@dataclass(frozen=True)
class SocialLink:
    """One link element that leads (directly or not) to a social platform."""

    key: str  # normalised href: the finding key
    href: str  # absolute URL the element names (its href, or the URL in its handler)
    destination: str  # the platform URL it leads to
    platform: str
    via: Via
    code: str  # inline handler text (onclick + javascript: URL), "" when none
    new_window: bool  # target other than _self/_parent/_top


def classify_link(
    page_url: str,
    href: str | None,
    onclick: str | None,
    target: str | None,
    data: SocialData,
) -> SocialLink | None:
    """The social link an element is, or None. ``href`` as written (resolved against ``page_url``)."""
    raw = (href or "").strip()
    code = (onclick or "").strip()
    absolute = ""
    if raw.lower().startswith("javascript:"):
        code = f"{code} {unquote(raw[len('javascript:'):])}".strip()
    elif raw:
        try:
            absolute = urljoin(page_url, raw)
        except ValueError:
            absolute = ""
    new_window = (target or "").strip().lower() not in ("", "_self", "_parent", "_top")
    if absolute and urlsplit(absolute).scheme in ("http", "https"):
        platform = data.platform_of(absolute)
        if platform:
            return SocialLink(normalise_href(absolute, data), absolute, absolute, platform.name,
                              Via.DIRECT, code, new_window)
        if same_host(absolute, page_url):
            found = social_destination_in_query(absolute, data)
            if found:
                return SocialLink(normalise_href(absolute, data), absolute, found[0], found[1].name,
                                  Via.REDIRECTOR, code, new_window)
    for url in urls_in_code(code):
        platform = data.platform_of(url)
        if platform:
            return SocialLink(normalise_href(url, data), url, url, platform.name, Via.SCRIPT, code, new_window)
    return None


def notice_in_code(code: str, data: SocialData) -> str | None:
    """Why inline ``code`` puts a prompt in front of the user, or None."""
    if not code:
        return None
    m = data.notice_call.search(code)
    if m:
        return f"calls {m.group(0).rstrip('( ').strip()}()"
    hits = data.find_markers(code)
    if hits:
        return f"carries leave-notice text {hits[0]!r}"
    return None


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class Judgement:
    """The verdict on one link element on one page."""

    page: str
    link: SocialLink
    method: Method
    outcome: Outcome
    seen: Seen
    detail: str  # dialog text, interstitial URL, modal text, or where it went
    ordinal: int = 0  # elements with the same key before this one on the page
    frame: str | None = None  # URL of the frame of the page it was found in (browser); None: the page itself

    def to_json(self) -> dict[str, str]:
        out = {
            "page": self.page,
            "method": self.method.value,
            "outcome": self.outcome.value,
            "seen": self.seen.value,
            "detail": self.detail,
        }
        if self.frame is not None:
            out["frame"] = self.frame
        return out
