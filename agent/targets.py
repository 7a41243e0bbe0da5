"""Scan targets as URLs: parsing, normalising, matching against configured assets."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from agent.errors import UsageError
from probes.net.scope import normalise_host
from vocab import AssetKind

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


_USERINFO = re.compile(r"^(\s*[A-Za-z][A-Za-z0-9+.-]*:/*)[^/?#]*@")


def shown_url(url: str) -> str:
    """A URL for messages: any user and password replaced by ****, never echoed."""
    return _USERINFO.sub(r"\1****@", url)


def parse_target_url(url: str) -> ParsedURL:
    """Parse and normalise a target URL; UsageError (exit 2) when it is not one."""
    text = url.strip()
    url = shown_url(url)  # every message below names the URL without its credentials
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"unparsable URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise UsageError(f"unparsable URL {url!r}: scheme must be one of {', '.join(SCHEMES)}")
    host = normalise_host(parts.hostname or "")  # one normal form: A-labels for IDNs (證券.台灣 -> xn--...)
    if not host:
        raise UsageError(f"unparsable URL {url!r}: no host")
    if parts.username or parts.password:
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
