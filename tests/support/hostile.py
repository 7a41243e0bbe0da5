"""Hostile and broken servers: behaviours for :func:`tests.support.servers.raw_server`.

Each behaviour gets one accepted socket. All of them give up on their own after
``LIFETIME`` seconds so a client that never hangs up cannot leak a thread that
runs for the rest of the session.
"""

from __future__ import annotations

import os
import socket
import time
import zlib
from collections.abc import Callable

LIFETIME = 10.0
Behaviour = Callable[[socket.socket], None]


def read_request(sock: socket.socket, limit: int = 65536) -> bytes:
    """Read until the end of the request head (or a TLS ClientHello's first flight)."""
    sock.settimeout(2.0)
    data = b""
    try:
        while b"\r\n\r\n" not in data and len(data) < limit:
            part = sock.recv(4096)
            if not part:
                break
            data += part
            if data[:1] == b"\x16":  # a TLS record: one read is the ClientHello
                break
    except OSError:
        pass
    return data


def _until_closed(sock: socket.socket, deadline: float) -> None:
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if not sock.recv(4096):
                return
        except TimeoutError:
            continue
        except OSError:
            return


def silent(sock: socket.socket) -> None:
    """Accept, read nothing useful, never answer."""
    _until_closed(sock, time.monotonic() + LIFETIME)


def hang_up(sock: socket.socket) -> None:
    """Read the request and close without a byte of answer."""
    read_request(sock)


def garbage(sock: socket.socket) -> None:
    """Answer a request with bytes that are not HTTP, then close."""
    read_request(sock)
    sock.sendall(b"\x00\xff\x13\x37 this is not HTTP \x8a\x9b\r\n" + os.urandom(512) + b"\r\n\r\n")


def trickle(head: bytes = b"HTTP/1.1 200 OK\r\n", interval: float = 0.3) -> Behaviour:
    """Send ``head`` (the status line by default) and then one byte per ``interval``, forever.

    Each byte arrives well within any per-read timeout, so only an overall
    deadline stops a client.
    """

    def behaviour(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(head)
        deadline = time.monotonic() + LIFETIME
        while time.monotonic() < deadline:
            sock.sendall(b"X")
            time.sleep(interval)

    return behaviour


def trickle_body(interval: float = 0.3) -> Behaviour:
    """Complete headers promising a large body, then the body a byte at a time."""
    return trickle(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n<html>", interval
    )


def huge_body(*, chunk: int = 65536, total: int = 1 << 30, gzip: bool = False) -> Behaviour:
    """A 200 whose body is ``total`` bytes (default 1 GiB), sent as fast as the client reads.

    With ``gzip`` the body is an endless gzip stream of zeros (a decompression
    bomb: each kilobyte on the wire inflates to about a megabyte).
    """

    def behaviour(sock: socket.socket) -> None:
        read_request(sock)
        encoding = b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n" if gzip else b""
        length = b"" if gzip else b"Content-Length: %d\r\n" % total
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + encoding + length + b"\r\n")
        deadline = time.monotonic() + LIFETIME
        sent = 0
        if gzip:
            first, steady = _gzip_zero_pieces()
            sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
            while time.monotonic() < deadline and sent < total:
                sock.sendall(b"%x\r\n%s\r\n" % (len(steady), steady))
                sent += _BOMB_PIECE
            return
        block = b"A" * chunk
        while time.monotonic() < deadline and sent < total:
            sock.sendall(block)
            sent += chunk

    return behaviour


_BOMB_PIECE = 16 << 20
_bomb_cache: list[tuple[bytes, bytes]] = []


def _gzip_zero_pieces() -> tuple[bytes, bytes]:
    """A gzip stream's opening piece, and a piece that may repeat forever.

    Each piece inflates to 16 MiB of zeros from about 16 KiB on the wire; the
    steady piece only refers back to zeros, so repeating it stays valid deflate.
    """
    if not _bomb_cache:
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        zeros = bytes(_BOMB_PIECE)
        first = packer.compress(zeros) + packer.flush(zlib.Z_SYNC_FLUSH)
        steady = packer.compress(zeros) + packer.flush(zlib.Z_SYNC_FLUSH)
        _bomb_cache.append((first, steady))
    return _bomb_cache[0]


def header_flood(*, size: int = 1 << 20) -> Behaviour:
    """A status line followed by ``size`` bytes of headers (many long lines)."""

    def behaviour(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\r\n")
        line = b"X-Flood: " + b"f" * 8000 + b"\r\n"
        sent = 0
        while sent < size:
            sock.sendall(line)
            sent += len(line)
        sock.sendall(b"Content-Length: 0\r\n\r\n")
        _until_closed(sock, time.monotonic() + 2)

    return behaviour


def canned(response: bytes) -> Behaviour:
    """Answer every request with exactly ``response`` and close."""

    def behaviour(sock: socket.socket) -> None:
        read_request(sock)
        sock.sendall(response)

    return behaviour


# A ServerHello for TLS 1.2 announces 0x56 bytes of handshake; we stop after a few.
_HALF_SERVER_HELLO = bytes.fromhex("160303005a" "02000056" "0303") + os.urandom(12)
# Alert record: level fatal (2), description handshake_failure (40).
_TLS_ALERT = bytes.fromhex("15030300020228")


def tls_half_hello(sock: socket.socket) -> None:
    """Read the ClientHello, send half a ServerHello, close."""
    if read_request(sock)[:1] == b"\x16":
        sock.sendall(_HALF_SERVER_HELLO)
    time.sleep(0.05)


def tls_alert(sock: socket.socket) -> None:
    """Read the ClientHello and refuse it with a fatal handshake_failure alert."""
    read_request(sock)
    sock.sendall(_TLS_ALERT)
    _until_closed(sock, time.monotonic() + 2)
