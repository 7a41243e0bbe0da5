"""Web helpers shared by the probes (pure; no I/O): URLs, origins, HSTS, HTML bodies.

One definition of each, so the probes cannot disagree:

* :func:`http_url`: the asset's URL in the scheme HTTP is spoken with (a ``wss://``
  endpoint is served over ``https``);
* :func:`same_origin`: scheme, host (normal form, :func:`probes.net.scope.normalise_host`)
  and port (the scheme's default when absent), as :func:`probes.net.scope.origin_of` reads
  them; a malformed port is never the same origin;
* :func:`parse_hsts`: the one Strict-Transport-Security parser (RFC 6797 section 6.1);
  the http probe's finding and the tls probe's grade both read it;
* :func:`decode_html` / :func:`is_html`: a response body as a document.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from probes.base import JSON, Target
from probes.net.scope import origin_of

if TYPE_CHECKING:  # only in annotations: the config and the parsers need no HTTP client (httpx)
    from probes.net.http import HttpExchange

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)

# The one HSTS threshold, for the http finding and the TLS grade's A+ alike: SSL Labs
# gives A+ from 180 days (testssl.sh accepts 179). ``[http] hsts_min_age`` overrides it.
DEFAULT_HSTS_MIN_AGE = 15_552_000  # 180 days
#: Bytes of a page's body kept when probes read it for its status and headers
#: (:meth:`probes.net.http.HttpClient.page`: one request however many probes read it).
PAGE_SAMPLE = 16 * 1024
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def http_url(target: Target) -> str:
    """The asset's URL in the scheme HTTP is spoken with (a wss:// endpoint is served over https)."""
    parts = urlsplit(target.url)
    return urlunsplit((target.http_scheme, parts.netloc, parts.path or "/", parts.query, ""))


def same_origin(url: str, origin: str) -> bool:
    """Whether ``url`` is on ``origin``: same scheme, host and port (``https://x.test:443/a`` is ``https://X.test/``).

    Both are read by :func:`probes.net.scope.origin_of` (the scope's own rule): host in
    normal form, the scheme's default port when none is written; a URL with no host, a
    scheme other than http(s) or a malformed port is no origin, so never the same one.
    """
    a, b = origin_of(url), origin_of(origin)
    return a is not None and a == b


class HstsState(enum.StrEnum):
    OK = "ok"
    MISSING = "missing"
    MALFORMED = "malformed"  # browsers ignore it, so it is as good as missing
    SHORT = "short_max_age"  # valid, but max-age under the threshold (0 switches HSTS off)

    @property
    def is_finding(self) -> bool:
        return self is not HstsState.OK


@dataclass(frozen=True)
class Hsts:
    raw: str | None
    max_age: int | None = None
    include_subdomains: bool = False
    preload: bool = False
    problem: str | None = None  # why the header is malformed
    min_age: int = DEFAULT_HSTS_MIN_AGE  # the threshold this policy is judged against

    @property
    def present(self) -> bool:
        return self.raw is not None

    @property
    def state(self) -> HstsState:
        if self.raw is None:
            return HstsState.MISSING
        if self.problem is not None or self.max_age is None:
            return HstsState.MALFORMED
        return HstsState.SHORT if self.max_age < self.min_age else HstsState.OK

    def to_json(self) -> dict[str, JSON]:
        return {
            "present": self.present,
            "header": self.raw,
            "max_age": self.max_age,
            "include_subdomains": self.include_subdomains,
            "preload": self.preload,
            "problem": self.problem,
            "state": self.state.value,
            "min_age": self.min_age,
        }


def parse_age(value: JSON) -> int:
    """A max-age threshold in seconds: an integer, or ``"180d"`` style (s, m, h, d, w)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration like '180d' or a number of seconds")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value
    m = _AGE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"{value!r} is not a duration like '180d' or a number of seconds")
    return int(m.group(1)) * _AGE_UNITS[m.group(2)]


#: ``Target.settings`` entry for the web settings more than one probe reads (not a probe's own section):
#: ``hsts_min_age`` (written as ``[http] hsts_min_age``; the tls grade's A+ uses the same threshold).
SHARED_SECTION = "web"


def hsts_min_age(settings: Mapping[str, JSON]) -> int:
    """``hsts_min_age`` in seconds; the config layer validates it (:func:`parse_age`), a bad value here
    means the default."""
    try:
        return parse_age(settings.get("hsts_min_age", DEFAULT_HSTS_MIN_AGE))
    except ValueError:
        return DEFAULT_HSTS_MIN_AGE


def parse_hsts(value: str | None, min_age: int = DEFAULT_HSTS_MIN_AGE) -> Hsts:
    """Parse a Strict-Transport-Security value as RFC 6797 section 6.1 describes.

    The one HSTS parser (the http probe's finding and the tls probe's grade both
    use it). Directive names are case-insensitive, each may appear once,
    max-age is required and is a non-negative integer (optionally quoted).
    Unknown directives are ignored, as browsers do. ``min_age`` is the
    threshold under which a valid policy counts as too short.
    """
    if value is None:
        return Hsts(raw=None, min_age=min_age)
    seen: set[str] = set()
    max_age: int | None = None
    include_subdomains = preload = False
    for part in value.split(";"):
        name, eq, arg = part.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if name in seen:
            return Hsts(raw=value, problem=f"directive {name!r} appears more than once", min_age=min_age)
        seen.add(name)
        arg = arg.strip()
        if len(arg) >= 2 and arg[0] == arg[-1] == '"':
            arg = arg[1:-1]
        if name == "max-age":
            if not eq or not arg.isascii() or not arg.isdigit():
                return Hsts(raw=value, problem=f"max-age value {arg!r} is not a non-negative integer",
                            min_age=min_age)
            max_age = int(arg)
        elif name == "includesubdomains":
            include_subdomains = True
        elif name == "preload":
            preload = True
    if max_age is None:
        return Hsts(raw=value, include_subdomains=include_subdomains, preload=preload,
                    problem="max-age is missing", min_age=min_age)
    return Hsts(raw=value, max_age=max_age, include_subdomains=include_subdomains, preload=preload,
                min_age=min_age)


def decode_html(ex: HttpExchange) -> str:
    """Body text by the header's charset, else the document's <meta charset>, else UTF-8."""
    declared = "charset=" in (ex.header("content-type") or "").lower()
    charset = ex.charset if declared else None
    if charset is None:
        m = _META_CHARSET.search(ex.body[:4096])
        charset = m.group(1).decode("ascii", "replace") if m else "utf-8"
    try:
        return ex.body.decode(charset, errors="replace")
    except LookupError:
        return ex.body.decode("utf-8", errors="replace")


def is_html(ex: HttpExchange) -> bool:
    """Whether the response is a document (declared HTML, or undeclared and starting with ``<``)."""
    ct = ex.content_type
    if ct in HTML_TYPES:
        return True
    return not ct and ex.body.lstrip()[:1] == b"<"
