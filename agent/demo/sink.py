"""A local notification sink: an HTTP endpoint that keeps whatever is POSTed to it.

The demo points an Apprise ``json://127.0.0.1:PORT/`` URL at it, so the digest
is really sent (Apprise's JSON notification over HTTP) and really received,
without leaving the machine. Each message is written to its own file. The tests use
the same sink (without a directory; ``fail_first`` makes it refuse the first sends).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from agent.demo.servers import HANDLER_TIMEOUT, TrackedServer

MAX_MESSAGE = 4 << 20


@dataclass(frozen=True)
class Received:
    path: Path  # where the body was written
    method: str
    target: str
    content_type: str
    size: int

    def summary(self) -> str:
        """Title and first line of an Apprise JSON message, else its size."""
        try:
            doc = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return f"{self.size} bytes"
        if not isinstance(doc, dict):
            return f"{self.size} bytes"
        title = str(doc.get("title") or "").strip()
        lines = (line.strip() for line in str(doc.get("message") or "").splitlines())
        first = next((line for line in lines if line and line != title), "")
        return " | ".join(p for p in (title, first) if p) or f"{self.size} bytes"


@dataclass(frozen=True)
class Posted:
    """One request as the sink saw it: target, headers (lower-case names), body, what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


class Sink(TrackedServer, HTTPServer):
    """Keeps every POST/PUT in :attr:`posts`; with a ``directory``, also writes each delivered one
    to its own file (:attr:`received`). ``fail_first``: answer that many requests with 500 first
    (to exercise retries). The tests' Apprise sink is this one (tests/support/sinks.py)."""

    def __init__(self, directory: Path | None = None, address: str = "127.0.0.1", *, fail_first: int = 0) -> None:
        self._track_init()
        self.directory = directory
        self.host = address
        self.fail_first = fail_first
        self.posts: list[Posted] = []
        self.received: list[Received] = []
        self.lock = threading.Lock()
        super().__init__((address, 0), _SinkHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"

    def url(self, scheme: str = "json", userinfo: str = "") -> str:
        """An Apprise URL for this sink (``json://``, ``form://``...), with ``userinfo`` when given."""
        auth = f"{userinfo}@" if userinfo else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/"

    @property
    def delivered(self) -> list[Posted]:
        """The posts answered with success."""
        with self.lock:
            return [p for p in self.posts if p.status < 300]

    def messages(self) -> list[dict[str, Any]]:
        """Delivered ``json://`` payloads: {"title", "message", "type", ...}."""
        return [p.json() for p in self.delivered]

    def keep(self, handler: _SinkHandler, body: bytes) -> int:
        """Record one request; returns the status to answer."""
        with self.lock:
            status = 500 if len(self.posts) < self.fail_first else 200
            headers = {k.lower(): v for k, v in handler.headers.items()}
            self.posts.append(Posted(handler.path, headers, body, status))
            if status == 200 and self.directory is not None:
                n = len(self.received) + 1
                path = self.directory / f"notification-{n}.json"
                path.write_bytes(body)
                self.received.append(Received(path, handler.command, handler.path,
                                              handler.headers.get("content-type", ""), len(body)))
        return status


class _SinkHandler(BaseHTTPRequestHandler):
    server: Sink
    protocol_version = "HTTP/1.1"
    timeout = HANDLER_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_MESSAGE:
            self._answer(413)
            return
        self._answer(self.server.keep(self, self.rfile.read(length) if length else b""))

    do_PUT = do_POST

    def _answer(self, status: int) -> None:
        body = b"{}" if status < 300 else b'{"error": "sink down"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
