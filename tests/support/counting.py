"""An HTTP(S) server on loopback that counts what reaches it: connections accepted,
connections open at once (peak) and requests, so a test can prove a limit or a refusal
at the server rather than trusting the client's own accounting.

"Open" is read from the kernel, not from the handler threads: at every accept the
server counts its connections still ESTABLISHED (TCP_INFO). A connection whose FIN
(or RST) has arrived is CLOSE_WAIT/CLOSE at once, however late the handler thread
gets round to it, so the peak is what the client really held open together and does
not depend on how quickly this in-process server is scheduled."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.servers import Reply, Route, Seen, _Handler, _HTTPServer

_TCP_ESTABLISHED = 1  # tcpi_state, linux/tcp_states.h


def _established(sock: socket.socket) -> bool:
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == _TCP_ESTABLISHED
    except OSError:  # closed meanwhile
        return False


class _Counting(_HTTPServer):
    lock: threading.Lock
    accepted: int
    peak: int
    tracked: set[socket.socket]
    resumed: int
    finished: int
    handshakes: int

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.accepted += 1
            self.tracked.add(request)
            self.peak = max(self.peak, sum(1 for s in self.tracked if _established(s)))
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """A TLS connection's handshake is made here, before the handler reads, and counted: after
        an unclean end (no close_notify) the socket no longer says whether it ever completed."""
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (OSError, ValueError):  # a raw hello the client abandons; a reset: never completed
                return
            with self.lock:
                self.handshakes += 1
                self.resumed += bool(request.session_reused)
        super().finish_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.tracked.discard(request)
            self.finished += 1
        super().shutdown_request(request)


@dataclass
class Counted:
    host: str
    port: int
    server: _Counting
    seen: list[Seen] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.server.accepted

    @property
    def peak(self) -> int:
        return self.server.peak

    @property
    def handshakes(self) -> int:
        """TLS connections whose handshake completed, full or resumed (a raw hello never does)."""
        return self.server.handshakes

    @property
    def resumed(self) -> int:
        """TLS connections whose handshake resumed a session (the server's ``session_reused``)."""
        return self.server.resumed

    def settled(self, timeout: float = 20.0) -> None:
        """Wait until every accepted connection's handler has finished (its counts are final)."""
        deadline = time.monotonic() + timeout
        while self.server.finished < self.server.accepted and time.monotonic() < deadline:
            time.sleep(0.02)

    @property
    def requests(self) -> int:
        return len(self.server.seen)


@contextmanager
def counting_server(routes: Mapping[str, Route] | None = None, *, host: str = "127.0.0.1", port: int = 0,
                    tls: ssl.SSLContext | None = None) -> Iterator[Counted]:
    srv = _Counting((host, port), _Handler, bind_and_activate=False)
    srv.allow_reuse_address = True
    srv.server_bind()
    srv.server_activate()
    srv.routes = dict(routes or {"*": Reply(200, "<html><body>hello</body></html>")})
    srv.seen = []
    srv.lock = threading.Lock()
    srv.accepted = srv.peak = srv.resumed = srv.finished = srv.handshakes = 0
    srv.tracked = set()
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Counted(host, srv.server_address[1], srv, srv.seen)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(2)
