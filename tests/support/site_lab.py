"""One broker's HTTPS page on a loopback address, its name resolved by a DNS server of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.certs import Authority, write_pair
from tests.support.dnsserver import DnsServer
from tests.support.servers import Reply, http_server, server_context


@contextmanager
def broker_site(workdir: Path, hostname: str, address: str, root: str) -> Iterator[dict[str, Any]]:
    """``https://HOSTNAME:PORT/`` on ``address`` with a certificate from a fresh CA named ``root``.

    The page sends HSTS with too short a max-age: one low finding (``http.hsts.short_max_age``),
    nothing at medium or above from http. Yields the DNS server's address (``dns``), the CA
    bundle's path (``bundle``), the running server (``www``) and its port (``port``).
    """
    ca = Authority(root)
    leaf = ca.leaf(hostname)
    cert, key = write_pair(workdir, "www", ca.chain_pem(leaf), leaf.key_pem)
    bundle = ca.write_trust(workdir / "ca.pem")
    routes = {"/": Reply(200, "<html><body>broker</body></html>", {"Strict-Transport-Security": "max-age=100"})}
    dns = DnsServer({hostname: address}).start()
    try:
        with http_server(routes, host=address, tls=server_context(cert, key)) as www:
            yield {"dns": dns.address, "bundle": str(bundle), "www": www, "port": www.port}
    finally:
        dns.stop()
