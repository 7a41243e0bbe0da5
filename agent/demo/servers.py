"""The lab's listeners: HTTPS sites, their plain-HTTP twins, a TLS order gateway, a stray port.

Every server runs in its own thread on one loopback address, handles each
connection in a thread of its own, and :meth:`stop` leaves nothing behind: the
accept loop is stopped, open connections are shut, and every handler thread
is joined. TLS handshakes happen in the handler thread (a client that never
finishes one must not stall the accept loop) under the handler's timeout.
"""

from __future__ import annotations

import secrets
import socket
import socketserver
import ssl
import threading
import warnings
from collections.abc import Mapping
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from agent.demo import pages
from agent.demo.certs import KeyPair
from agent.demo.sites import Defect, Site

HANDLER_TIMEOUT = 10.0  # seconds a connection may sit idle (or mid-handshake)
HSTS = "max-age=31536000; includeSubDomains"
LAB_HEADER = "simulated site started by posture demo"
# What the simulated WAF blocks: the active edge probe's hostile query (script tag,
# SQL tautology, path traversal). The leak probe's provocations contain none of them.
_HOSTILE = ("<script", "' or '", "../")


def modern_context(pair: KeyPair) -> ssl.SSLContext:
    """TLS 1.2 and 1.3 with forward-secret AEAD suites only: what the clean site offers."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


def legacy_context(pair: KeyPair) -> ssl.SSLContext:
    """TLS 1.0 and 1.1 still accepted: OpenSSL 3 needs security level 0 for them."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated is the point of this site
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


class TrackedServer(socketserver.ThreadingMixIn):
    """Thread per connection; remembers open connections so stop() can shut them."""

    daemon_threads = False
    block_on_close = True  # server_close() joins every handler thread

    def _track_init(self) -> None:
        self._open: set[Any] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)  # type: ignore[misc]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # scanners hang up mid-handshake and send garbage on purpose: that is the point

    def start(self, name: str) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True  # type: ignore[attr-defined]
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()  # type: ignore[attr-defined]
            self._thread.join(5)
            self._thread = None
        with self._open_lock:
            still_open = list(self._open)
        for conn in still_open:
            with suppress(OSError, ValueError):
                conn.shutdown(socket.SHUT_RDWR)
        self.server_close()  # type: ignore[attr-defined]


def _wrap(server: socketserver.TCPServer, tls: ssl.SSLContext | None) -> None:
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)


# ---------------------------------------------------------------- HTTP(S)


class SiteServer(TrackedServer, HTTPServer):
    """One lab site over HTTPS, or its plain-HTTP twin (``redirect_port`` set)."""

    def __init__(self, site: Site, address: str, port: int, *, tls: ssl.SSLContext | None,
                 redirect_port: int | None = None) -> None:
        self._track_init()
        self.site = site
        self.redirect_port = redirect_port
        self.is_tls = tls is not None
        super().__init__((address, port), SiteHandler)
        _wrap(self, tls)


class SiteHandler(BaseHTTPRequestHandler):
    server: SiteServer
    protocol_version = "HTTP/1.1"
    timeout = HANDLER_TIMEOUT
    error_content_type = "text/html; charset=utf-8"

    def version_string(self) -> str:
        return pages.SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests get the same short page as everything else, never Python's default one.
        self.close_connection = True
        reason = self.responses.get(code, ("Error", ""))[0]
        self._reply(code, pages.short_error(code, reason), {"Connection": "close"})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # every method, POSTURE included, is answered by _serve
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if 0 < length <= 1 << 16:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        site = self.server.site
        if self.server.redirect_port is not None:
            port = self.server.redirect_port
            location = f"https://{site.host}:{port}{parts.path or '/'}" + (f"?{parts.query}" if parts.query else "")
            self._reply(301, pages.short_error(301, "Moved Permanently"), {"Location": location})
        elif site.edge and _hostile(parts.query):
            self._reply(403, pages.edge_block_page(secrets.token_urlsafe(30)))
        elif self.command not in ("GET", "HEAD"):
            self._reply(405, pages.short_error(405, "Method Not Allowed"), {"Allow": "GET, HEAD"})
        elif parts.path in ("/", "/index.html"):
            self._reply(200, pages.home_page(site.title, site.about, site.social.value))
        elif parts.path == "/about":
            self._reply(200, pages.about_page(site.title))
        elif site.defect is Defect.DEBUG_PAGE:
            self._reply(404, pages.django_debug_404(self.path))
        else:
            self._reply(404, pages.short_error(404, "Not Found"))

    def _reply(self, status: int, body: str, extra: Mapping[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        headers = {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(data)),
                   "X-Posture-Lab": LAB_HEADER, **(extra or {})}
        if self.server.is_tls:
            headers["Strict-Transport-Security"] = HSTS
        if self.server.site.edge and self.server.redirect_port is None:
            headers.update(_edge_headers())
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _hostile(query: str) -> bool:
    text = unquote_plus(query, errors="replace").lower()
    return any(marker in text for marker in _HOSTILE)


def _edge_headers() -> dict[str, str]:
    """Response headers of the simulated CDN, as CloudFront documents them (edge_signatures.toml)."""
    return {
        "X-Cache": "Miss from cloudfront",
        "Via": f"1.1 {secrets.token_hex(16)}.cloudfront.net (CloudFront)",
        "X-Amz-Cf-Pop": "TPE52-P1",
        "X-Amz-Cf-Id": secrets.token_urlsafe(42),
    }


# ---------------------------------------------------------------- raw TCP / TLS


class RawServer(TrackedServer, socketserver.TCPServer):
    """A TCP (or TLS) listener whose connections get a greeting line, or nothing at all."""

    allow_reuse_address = True

    def __init__(self, address: str, port: int, *, tls: ssl.SSLContext | None = None,
                 greeting: bytes | None = None) -> None:
        self._track_init()
        self.greeting = greeting
        super().__init__((address, port), RawHandler)
        _wrap(self, tls)


class RawHandler(socketserver.BaseRequestHandler):
    server: RawServer

    def handle(self) -> None:
        conn = self.request
        greeting = self.server.greeting
        if greeting is None:
            return  # accept and hang up: a port that is open and says nothing
        conn.settimeout(HANDLER_TIMEOUT)
        with suppress(OSError, ValueError):
            if isinstance(conn, ssl.SSLSocket):
                conn.do_handshake()
            conn.sendall(greeting)
            conn.recv(1024)  # one line from the client, then goodbye
