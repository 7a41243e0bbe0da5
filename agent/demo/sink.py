"""A local notification sink: an HTTP endpoint that keeps whatever is POSTed to it.

The demo points an Apprise ``json://127.0.0.1:PORT/`` URL at it, so the digest
is really sent (Apprise's JSON notification over HTTP) and really received,
without leaving the machine. Each message is written to its own file.
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


class Sink(TrackedServer, HTTPServer):
    def __init__(self, directory: Path, address: str = "127.0.0.1") -> None:
        self._track_init()
        self.directory = directory
        self.received: list[Received] = []
        self.lock = threading.Lock()
        super().__init__((address, 0), _SinkHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def apprise_url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"

    def keep(self, handler: _SinkHandler, body: bytes) -> None:
        with self.lock:
            n = len(self.received) + 1
            path = self.directory / f"notification-{n}.json"
            path.write_bytes(body)
            self.received.append(Received(path, handler.command, handler.path,
                                          handler.headers.get("content-type", ""), len(body)))


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
        self.server.keep(self, self.rfile.read(length))
        self._answer(200)

    do_PUT = do_POST

    def _answer(self, status: int) -> None:
        body = b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
