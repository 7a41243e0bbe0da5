"""Real HTTP, HTTPS and raw TCP servers on loopback, each in its own thread.

Routes map a path to a :class:`Reply` or to a function of the request that
returns one, so a test states what the server says in one line.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "text/html; charset=utf-8"

    def encoded(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else self.body


@dataclass
class Seen:
    method: str
    path: str  # raw request target as received
    headers: dict[str, str]


Route = Reply | Callable[[Seen], Reply]


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
        self.server.seen.append(seen)
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(min(length, 1 << 20))
        route = self.server.routes.get(self.path.split("?")[0]) or self.server.routes.get("*")
        if route is None:
            reply = Reply(404, "<h1>Not Found</h1>")
        elif callable(route):
            reply = route(seen)
        else:
            reply = route
        body = reply.encoded()
        self.send_response(reply.status)
        headers = {"Content-Type": reply.content_type, "Content-Length": str(len(body)), **reply.headers}
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    routes: dict[str, Route]
    seen: list[Seen]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early are what these tests are about


@dataclass
class Running:
    host: str
    port: int
    seen: list[Seen]
    scheme: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/"

    def url_for(self, name: str, path: str = "/") -> str:
        return f"{self.scheme}://{name}:{self.port}{path}"


def server_context(cert: Path, key: Path, *, ciphers: str | None = None,
                   minimum: ssl.TLSVersion | None = None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if ciphers:
        ctx.set_ciphers(ciphers)
    else:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # allow deliberately weak test keys/hashes
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    ctx.load_cert_chain(cert, key)
    return ctx


@contextmanager
def http_server(
    routes: Mapping[str, Route] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Running]:
    srv = _HTTPServer((host, port), _Handler, bind_and_activate=False)
    srv.allow_reuse_address = True
    srv.server_bind()
    srv.server_activate()
    srv.routes = dict(routes or {"/": Reply(200, "<html><body>hello</body></html>")})
    srv.seen = []
    if tls is not None:
        # Handshake lazily in the handler thread: a client that never finishes its
        # handshake must not block the accept loop.
        srv.socket = tls.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Running(host, srv.server_address[1], srv.seen, "https" if tls else "http")
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(2)


class _RawHandler(socketserver.BaseRequestHandler):
    server: _RawServer

    def handle(self) -> None:
        with suppress(OSError):
            self.server.behaviour(self.request)


class _RawServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    behaviour: Callable[[socket.socket], None]


@contextmanager
def raw_server(
    behaviour: Callable[[socket.socket], None], *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[Running]:
    """A TCP server whose every connection is handed to ``behaviour`` (garbage, silence, trickle...)."""
    srv = _RawServer((host, port), _RawHandler)
    srv.behaviour = behaviour
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Running(host, srv.server_address[1], [], "tcp")
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(2)


def closed_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
