"""Software names and versions as servers announce them (pure; no I/O).

Sources: HTTP response headers (``Server: Apache/2.4.6 (CentOS) OpenSSL/1.0.2k``;
the header names are in ``probes/eol/banners.toml``) and nmap service detection
(product, version, extra info, CPEs).

A :class:`Banner` keeps the product name exactly as seen; which product that
is, and whether its version is end of life, is :mod:`probes.eol.check`'s business.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

from vocab import DataFileError, parses_data_file

_RAW_LIMIT = 200  # evidence keeps this much of the text a banner came from


class BannerSource(enum.StrEnum):
    HEADER = "header"
    SERVICE = "service"  # nmap service detection


@dataclass(frozen=True)
class Banner:
    product: str  # as seen: "Apache", "Microsoft-IIS", "OpenSSH", "cpe:/a:openbsd:openssh"
    version: str  # as seen: "2.4.6", "7.4p1", "9.2p1 Debian 2+deb12u3"
    source: BannerSource
    where: str  # "header server", "127.0.0.1:22/tcp", "https://example/404"
    raw: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "product": self.product,
            "version": self.version,
            "source": self.source.value,
            "where": self.where,
            "raw": self.raw,
        }


@dataclass(frozen=True)
class BannerRules:
    headers: tuple[str, ...]


@parses_data_file("banner rules")
def parse_rules(text: str) -> BannerRules:
    raw = tomllib.loads(text)
    unknown = sorted(set(raw) - {"version", "headers"})
    if unknown:
        raise DataFileError(f"unknown key {unknown[0]!r} (the file holds version and headers)")
    headers = raw.get("headers", [])
    if not isinstance(headers, list) or not all(isinstance(h, str) and h for h in headers):
        raise DataFileError("headers must be a list of header names")
    return BannerRules(headers=tuple(h.lower() for h in headers))


@cache
def default_rules() -> BannerRules:
    text = resources.files("probes.eol").joinpath("banners.toml").read_text("utf-8")
    return parse_rules(text)


# RFC 9110 product tokens: "name/version"; also "Apache Tomcat/9.0", the one
# two-word name that matters here (a general two-word rule would read
# "Powered By Apache/2.4" as a product called "By Apache").
# The version must start with a digit (or "v" and a digit): "Express" and
# "ASP.NET" name no version and give nothing.
_TOKEN = re.compile(
    r"(?<![\w./-])(?P<product>(?:Apache (?=[A-Z]))?[A-Za-z][\w.+-]*?)"
    r"/v?(?P<version>\d+(?:[.\-_~+]\w+)*)"
)
_SPACED = re.compile(r"^(?P<product>[A-Z][\w.-]*)\s+v?(?P<version>\d+(?:\.\d+)+\w*)$")


def product_tokens(text: str) -> Iterator[tuple[str, str]]:
    """``(product, version)`` for every product token in a header-like value."""
    for m in _TOKEN.finditer(text):
        yield m.group("product"), m.group("version")


def from_headers(
    headers: Iterable[tuple[str, str]],
    where: str = "",
    rules: BannerRules | None = None,
) -> list[Banner]:
    """Banners in response headers (``(name, value)`` pairs, as :class:`HttpExchange` keeps them)."""
    rules = rules or default_rules()
    found: list[Banner] = []
    for name, value in headers:
        lname = name.lower()
        if lname not in rules.headers:
            continue
        place = f"{where} header {lname}".strip()
        tokens = list(product_tokens(value))
        if not tokens:
            # "X-AspNet-Version: 4.0.30319" carries only the version.
            bare = value.strip()
            if lname == "x-aspnet-version" and re.fullmatch(r"\d+(?:\.\d+)+", bare):
                tokens = [("ASP.NET", bare)]
        found.extend(Banner(p, v, BannerSource.HEADER, place, _raw(value)) for p, v in tokens)
    return found


_CPE = re.compile(r"^cpe:/[aho]:(?P<vendor>[^:]+):(?P<product>[^:]+):(?P<version>[^:]+)")


def from_service(
    product: str,
    version: str,
    extrainfo: str = "",
    cpes: Iterable[str] = (),
    where: str = "",
) -> list[Banner]:
    """Banners in one nmap service-detection result.

    ``product``/``version`` are nmap's (``OpenSSH``, ``7.4``); ``extrainfo``
    often holds more tokens (``(CentOS) OpenSSL/1.0.2k-fips PHP/5.4.16``);
    each CPE (``cpe:/a:openbsd:openssh:7.4``) is one more, named by its
    vendor:product so the EOL data can alias it.
    """
    found: list[Banner] = []
    raw = _raw(" ".join(x for x in (product, version, extrainfo) if x))
    if product and version:
        found.append(Banner(product, version, BannerSource.SERVICE, where, raw))
    for p, v in product_tokens(extrainfo):
        found.append(Banner(p, v, BannerSource.SERVICE, where, raw))
    spaced = _SPACED.match(extrainfo.strip())  # BaseHTTPServer's "Python 3.11.7"
    if spaced:
        found.append(Banner(spaced.group("product"), spaced.group("version"), BannerSource.SERVICE, where, raw))
    for cpe in cpes:
        m = _CPE.match(cpe)
        if m:
            name = f"cpe:/a:{m.group('vendor')}:{m.group('product')}"
            found.append(Banner(name, m.group("version"), BannerSource.SERVICE, where, cpe))
    return found


def _raw(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _RAW_LIMIT else text[: _RAW_LIMIT - 1] + "…"
