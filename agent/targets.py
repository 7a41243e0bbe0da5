"""Scan targets as URLs: parsing, normalising, matching against configured assets."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, quote_plus, unquote, unquote_plus, urlsplit, urlunsplit

from agent.errors import UsageError
from probes.net.scope import normalise_host
from vocab import AssetKind, mask

DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80}
SCHEMES = ("https", "http", "wss", "tls")


@dataclass(frozen=True)
class ParsedURL:
    scheme: str
    host: str
    port: int
    path: str

    @property
    def normalised(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS.get(self.scheme)
        netloc = host if self.port == default else f"{host}:{self.port}"
        path = "" if self.scheme == "tls" else self.path
        return urlunsplit((self.scheme, netloc, path, "", ""))


_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*:/+")


def shown_url(url: str) -> str:
    """A URL for messages, even one that does not parse: everything between ``scheme://`` and the
    last ``@`` replaced by ****. A password may hold ``/``, ``?``, ``#`` or ``@`` unencoded, so the
    last ``@`` is the only safe end of the user info; an ``@`` later in a path over-masks, never leaks."""
    at = url.rfind("@")
    if at < 0:
        return url
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme and scheme.end() <= at else 0
    return f"{url[:start]}****{url[at:]}"


def display_url(url: str) -> str:
    """An asset URL as people and channels see it (output, digest, report, config check): scheme, host,
    port and path; every query value masked (``?api_key=****``), the fragment dropped, any user info
    shown as ****. Probes use the URL itself; this is only for showing it."""
    parts = _split(url)
    if parts is None or ("@" in url and not parts.netloc) or _hidden_credentials(url, parts.hostname or ""):
        return re.split(r"[?#]", shown_url(url), maxsplit=1)[0]  # nothing trusted: masked to its last @
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "****@" + netloc.rpartition("@")[2]
    query = "&".join(_masked_item(item) for item in re.split(r"[&;]", parts.query)) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def display_name(name: str) -> str:
    """An asset's name as shown: an asset given no name is named by its URL, shown as display_url shows it."""
    return display_url(name) if "://" in name else name


def query_values(url: str) -> frozenset[str]:
    """The values of a URL's query (a bare item is a value), as written and decoded, of 3 characters
    or more: what display_url masks, for masking where a probe's evidence quotes the URL."""
    parts = _split(url)
    query = parts.query if parts is not None else url.partition("?")[2]
    out: set[str] = set()
    for item in re.split(r"[&;]", query):
        key, eq, value = item.partition("=")
        raw = value if eq else key
        out.update(v for v in (raw, unquote(raw), unquote_plus(raw), quote_plus(unquote_plus(raw))) if len(v) >= 3)
    return frozenset(out)


def hide_values(doc: Any, secrets: frozenset[str]) -> Any:
    """``doc`` (text, or lists and mappings of it: evidence, observations) with every secret as ****."""
    if not secrets:
        return doc
    if isinstance(doc, str):
        return mask(doc, secrets)
    if isinstance(doc, Mapping):
        return {hide_values(k, secrets): hide_values(v, secrets) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return type(doc)(hide_values(v, secrets) for v in doc)
    return doc


def _split(url: str) -> SplitResult | None:
    """``urlsplit`` with the port read too (it raises only then); None when either refuses."""
    try:
        parts = urlsplit(url.strip())
        _ = parts.port
    except ValueError:
        return None
    return parts


def _masked_item(item: str) -> str:
    """``key=value`` -> ``key=****``; a bare item (``?TOKEN``) may itself be the secret."""
    key, eq, value = item.partition("=")
    if eq:
        return f"{key}=****" if value else f"{key}="
    return "****" if item else ""


def _split_error(exc: ValueError) -> str:
    """Why urlsplit refused a URL, without the text it quotes (a password's piece: 'S3cr' as a port)."""
    text = str(exc)
    if text.startswith("Port could not be cast"):
        return "the port is not a number (a password with / ? # or @ must be percent-encoded)"
    if text.startswith("Port out of range"):
        return "port out of range 0-65535"
    if "IPv6" in text or "IPv4" in text:
        return "malformed [IPv6] address"
    return "malformed host or port"


def parse_target_url(url: str) -> ParsedURL:
    """Parse and normalise a target URL; UsageError (exit 2) when it is not one."""
    text = url.strip()
    url = shown_url(url)  # every message below names the URL without its credentials
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"unparsable URL {url!r}: {_split_error(exc)}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(f"unparsable URL {url!r}: scheme must be one of {', '.join(SCHEMES)}")
    host = normalise_host(parts.hostname or "")  # one normal form: A-labels for IDNs (證券.台灣 -> xn--...)
    if not host:
        raise UsageError(f"unparsable URL {url!r}: no host")
    if parts.username or parts.password or _hidden_credentials(text, host):
        raise UsageError(f"unparsable URL {url!r}: credentials in URLs are not accepted")
    if not _valid_host(host):
        raise UsageError(f"unparsable URL {url!r}: {host!r} is not a valid host name or address")
    if port == 0:
        raise UsageError(f"unparsable URL {url!r}: port 0 is not a port")
    if port is None:
        if scheme == "tls":
            raise UsageError(f"unparsable URL {url!r}: tls:// targets need a port (tls://host:port)")
        port = DEFAULT_PORTS[scheme]
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return ParsedURL(scheme, host, port, path)


_AFTER_AT = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?::\d+)?(?:[/?#]|$)")


def _hidden_credentials(text: str, host: str) -> bool:
    """``https://admin:12/pw@www.broker.test/``: urlsplit ends the netloc at the password's ``/`` (or
    ``?``, ``#``) and sees host ``admin``, port 12, the rest of the password in the path. Such a URL
    names a one-label host, and a dotted host name follows its last ``@``."""
    if "@" not in text or "." in host or host == "localhost" or ":" in host:
        return False
    return _AFTER_AT.match(text.rpartition("@")[2]) is not None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if len(host) > 253 or not host.isascii():  # a name IDNA could not turn into A-labels
        return False
    labels = host.split(".")
    return all(
        0 < len(label) <= 63
        and all(c.isalnum() or c in "-_" for c in label)
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )


@dataclass(frozen=True)
class AssetSpec:
    """An asset to scan: from the config file, or ad hoc from the command line."""

    name: str
    url: ParsedURL
    kind: AssetKind = AssetKind.WEBSITE
    allowed_ports: frozenset[int] | None = None
    active_probes: bool = True
    declared: dict[str, str] = field(default_factory=dict)
    configured: bool = True
    quiet: tuple[str, ...] | None = None
    scan_every: str | None = None
    added_at: str | None = None
    scan_ports: tuple[int, ...] | None = None
    allow_addresses: tuple[str, ...] = ()  # CIDRs the address policy lets through for this asset
    addresses: tuple[str, ...] | None = None  # expected networks; DNS answers outside are refused
    origins: tuple[str, ...] = ()  # extra origin URLs (scheme://host[:port]) in the asset's scope
