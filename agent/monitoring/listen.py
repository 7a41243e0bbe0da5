"""``[metrics] listen``: ``host:port`` or ``[v6addr]:port``, parsed without importing prometheus_client."""

from __future__ import annotations

import ipaddress


def parse_listen(value: str) -> tuple[str, int]:
    """``"127.0.0.1:9464"`` -> ("127.0.0.1", 9464); ValueError with a one-line reason otherwise."""
    text = value.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"listen must be HOST:PORT or [IPv6]:PORT, got {value!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"listen: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host or ":" in host:
            raise ValueError(f"listen must be HOST:PORT or [IPv6]:PORT, got {value!r}")
        if any(c.isspace() or c in "/?#@" for c in host):
            raise ValueError(f"listen: {host!r} is not a host name or address")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"listen: port must be 1 to 65535, got {port!r}")
    return host, int(port)
