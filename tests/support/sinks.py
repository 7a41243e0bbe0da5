"""Notification sinks on loopback: what Apprise delivers lands here, for tests to read.

* :func:`http_sink`: a threaded HTTP server recording every POST (Apprise's ``json://``
  and ``form://``). ``fail_first`` answers that many requests with 500 before it
  recovers, to exercise retries. It is the demo lab's sink (:mod:`agent.demo.sink`).
* :func:`smtp_sink`: a minimal SMTP server (EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA,
  RSET, NOOP, QUIT) recording each message, behind Apprise's ``mailto://``. Python 3.12
  removed ``smtpd``; this is the few verbs a client needs and nothing else.
"""

from __future__ import annotations

import base64
import email
import email.policy
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from agent.demo.sink import Sink as HttpSink


@contextmanager
def http_sink(host: str = "127.0.0.1", *, fail_first: int = 0) -> Iterator[HttpSink]:
    sink = HttpSink(None, host, fail_first=fail_first)
    sink.start("posture-test-sink")
    try:
        yield sink
    finally:
        sink.stop()


# ---------------------------------------------------------------- SMTP


@dataclass
class Mail:
    mail_from: str
    rcpt_to: list[str]
    data: bytes
    auth_user: str | None

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def subject(self) -> str:
        return str(self.message()["subject"])

    def parts(self) -> dict[str, str]:
        """content type -> decoded text, for every text part."""
        out: dict[str, str] = {}
        for part in self.message().walk():
            if part.get_content_maintype() == "text" and isinstance(part, EmailMessage):
                out[part.get_content_type()] = str(part.get_content())
        return out


@dataclass
class SmtpSink:
    host: str
    port: int
    mails: list[Mail] = field(default_factory=list)
    auths: list[tuple[str, str]] = field(default_factory=list)  # (user, password) the clients sent
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, user: str, password: str, to: str, sender: str) -> str:
        """An Apprise ``mailto://`` URL for this sink (plain SMTP, no TLS: loopback only)."""
        return (f"mailto://{user}:{password}@{self.host}:{self.port}"
                f"?mode=insecure&from={sender}&to={to}")


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer
    timeout = 10

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def readline_text(self) -> str | None:
        raw = self.rfile.readline(65536)
        return None if not raw else raw.decode("utf-8", "replace").rstrip("\r\n")

    def handle(self) -> None:
        sink = self.server.sink
        self.reply("220 sink.test ESMTP posture test sink")
        mail_from, rcpts, user = "", [], None
        while True:
            line = self.readline_text()
            if line is None:
                return
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                if verb == "EHLO":
                    self.wfile.write(b"250-sink.test\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n")
                    self.reply("250 SMTPUTF8")
                else:
                    self.reply("250 sink.test")
            elif verb == "AUTH":
                user = self._auth(arg, sink)
                if user is None:
                    return
            elif verb == "MAIL":
                mail_from, rcpts = arg.partition(":")[2].split()[0].strip("<>"), []
                self.reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(arg.partition(":")[2].split()[0].strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines: list[bytes] = []
                while True:
                    raw = self.rfile.readline(1 << 20)
                    if not raw or raw in (b".\r\n", b".\n"):
                        break
                    lines.append(raw[1:] if raw.startswith(b"..") else raw)
                with sink.lock:
                    sink.mails.append(Mail(mail_from, list(rcpts), b"".join(lines), user))
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 command not implemented")

    def _auth(self, arg: str, sink: SmtpSink) -> str | None:
        mech, _, initial = arg.partition(" ")
        if mech.upper() == "PLAIN":
            if not initial:
                self.reply("334 ")
                initial = self.readline_text() or ""
            _, user, password = base64.b64decode(initial).decode().split("\0")
        elif mech.upper() == "LOGIN":
            self.reply("334 VXNlcm5hbWU6")
            user = base64.b64decode(self.readline_text() or "").decode()
            self.reply("334 UGFzc3dvcmQ6")
            password = base64.b64decode(self.readline_text() or "").decode()
        else:
            self.reply("504 unrecognised authentication type")
            return None
        with sink.lock:
            sink.auths.append((user, password))
        self.reply("235 authentication succeeded")
        return user


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: SmtpSink


@contextmanager
def smtp_sink(host: str = "127.0.0.1") -> Iterator[SmtpSink]:
    srv = _SmtpServer((host, 0), _SmtpHandler)
    sink = SmtpSink(host, int(srv.server_address[1]))
    srv.sink = sink
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(2)
