"""Raw TCP (and TLS) connections to pinned addresses, for probes below HTTP.

Every socket a probe opens goes through here: the address must be pinned for
the host, one of the address's connection slots (process-wide) is held for the
connection's life, the
connection is counted, and connect and handshake failures come out as
:mod:`probes.base` failures.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, NoReturn, TypeVar

from probes.base import ConnectFailure, DeadlineExceeded, ProtocolFailure
from probes.net.scope import Pins

T = TypeVar("T")


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    address: str
    port: int

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        obj = self.writer.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None


def _addr(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class Connector:
    def __init__(self, pins: Pins, *, connect_timeout: float = 5.0) -> None:
        self.pins = pins
        self.connect_timeout = connect_timeout

    @asynccontextmanager
    async def open(
        self,
        host: str,
        address: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[Connection]:
        """Connect to ``address:port`` on behalf of ``host``; TLS when given a context.

        ``timeout`` bounds connect plus handshake together.
        """
        self.pins.check(host, address)
        limit = timeout if timeout is not None else self.connect_timeout
        async with self.pins.connection(host, address) as held:
            try:
                async with asyncio.timeout(limit):
                    reader, writer = await asyncio.open_connection(
                        address,
                        port,
                        ssl=ssl_context,
                        server_hostname=(server_hostname or host) if ssl_context else None,
                        ssl_handshake_timeout=limit if ssl_context else None,
                    )
            except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
                _connect_failed(exc, address, port, limit, tls=ssl_context is not None)
            conn = Connection(reader, writer, address, port)
            try:
                yield conn
            finally:
                if ssl_context is None:
                    held.peer_closed = await _half_close(reader, writer)
                writer.close()
                try:
                    async with asyncio.timeout(1):
                        await writer.wait_closed()
                except (TimeoutError, OSError, ssl.SSLError):
                    pass


    async def exchange(self, host: str, address: str, port: int, payload: bytes,
                       feed: Callable[[bytes], T | None], *, answer_timeout: float) -> T | None:
        """Send ``payload`` on a new plain connection and give what comes back to ``feed``.

        Returns the first value ``feed`` returns that is not None, or None when the
        peer closes first. Raises TimeoutError when nothing is decided within
        ``answer_timeout`` and OSError when the peer resets; connect failures come
        out as for :meth:`open`. The connection holds one of the address's slots,
        like any other, and ends as :meth:`open` ends a plain one (our FIN, then
        the peer's within :data:`PEER_CLOSE_WAIT`), so the slot is free at once.

        The same as ``open`` plus a read loop, at a fraction of its cost: a callback
        protocol, no stream objects (a TLS scan sends a few dozen of these per address).
        """
        self.pins.check(host, address)
        loop = asyncio.get_running_loop()
        async with self.pins.connection(host, address) as held:
            talk: _Exchange[T] = _Exchange(payload, feed, loop)
            limit = self.connect_timeout
            try:
                async with asyncio.timeout(limit):
                    await loop.create_connection(lambda: talk, address, port)
            except (TimeoutError, OSError, ValueError) as exc:
                _connect_failed(exc, address, port, limit)
            try:
                answer = await talk.wait(answer_timeout)
            except asyncio.CancelledError:  # the caller's deadline: no time for a polite close
                talk.close()
                raise
            except BaseException:
                held.peer_closed = await talk.finish()
                raise
            held.peer_closed = await talk.finish()
            return answer


class _Exchange(asyncio.Protocol, Generic[T]):
    """One request and its answer over a plain connection (see :meth:`Connector.exchange`)."""

    def __init__(self, payload: bytes, feed: Callable[[bytes], T | None], loop: asyncio.AbstractEventLoop) -> None:
        self.payload = payload
        self.feed = feed
        self.loop = loop
        self.answer: asyncio.Future[T | None] = loop.create_future()
        self.peer_done: asyncio.Future[bool] = loop.create_future()  # True: the peer closed (FIN)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.payload)

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            return  # what the server still sends after the answer is dropped
        try:
            decided = self.feed(data)
        except Exception as exc:  # a bug in the reader: raised to the caller, not lost in the loop
            self.answer.set_exception(exc)
            return
        if decided is not None:
            self.answer.set_result(decided)

    def eof_received(self) -> bool:
        _settle(self.answer, None)
        _settle(self.peer_done, True)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            if exc is None:
                self.answer.set_result(None)
            else:
                self.answer.set_exception(exc)
        _settle(self.peer_done, exc is None)

    async def wait(self, seconds: float) -> T | None:
        """The answer; TimeoutError after ``seconds`` (one timer, no task)."""
        timer = self.loop.call_later(seconds, _expire, self.answer)
        try:
            return await self.answer
        finally:
            timer.cancel()

    async def finish(self) -> bool:
        """Our FIN, then the peer's (at most :data:`PEER_CLOSE_WAIT`); True when the peer closed."""
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self.peer_done.done():
            try:
                if transport.can_write_eof():
                    transport.write_eof()
                    timer = self.loop.call_later(PEER_CLOSE_WAIT, _settle, self.peer_done, False)
                    try:
                        await self.peer_done
                    finally:
                        timer.cancel()
            except (OSError, RuntimeError):
                pass
            except asyncio.CancelledError:
                self.close()
                raise
        self.close()
        return self.peer_done.done() and not self.peer_done.cancelled() and self.peer_done.result()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _settle(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _expire(future: asyncio.Future[T]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _connect_failed(exc: BaseException, address: str, port: int, limit: float, *, tls: bool = False) -> NoReturn:
    """A failed connect (or TLS handshake) as a :mod:`probes.base` failure."""
    where = _addr(address, port)
    if isinstance(exc, TimeoutError):
        # One deadline covers both steps: a server that accepts and then stalls its handshake
        # must not read as one that never answered.
        step = "connect and TLS handshake with" if tls else "connect to"
        raise DeadlineExceeded(f"{step} {where} timed out after {limit:g}s") from None
    if isinstance(exc, ssl.SSLError):
        raise ProtocolFailure(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    if isinstance(exc, ConnectionRefusedError):
        raise ConnectFailure(f"{where} refused the connection") from None
    if isinstance(exc, ConnectionResetError | BrokenPipeError | asyncio.IncompleteReadError):
        raise ProtocolFailure(f"{where} dropped the connection: {type(exc).__name__}") from None
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
            raise ConnectFailure(f"{where} is unreachable") from None
        raise ConnectFailure(f"cannot connect to {where}: {exc.strerror or exc}") from None
    raise ConnectFailure(f"cannot connect to {where}: {exc}") from None  # e.g. a name the IDNA codec rejects


#: How long a plain connection waits for the peer's FIN after sending its own.
PEER_CLOSE_WAIT = 0.25


async def _half_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Send our FIN and read to the peer's: True when the peer has closed its side too.

    Then the server holds no connection any more and the slot is free at once; a peer
    that keeps its side open longer than :data:`PEER_CLOSE_WAIT` gets the slot's linger.
    """
    try:
        if writer.is_closing() or not writer.can_write_eof():
            return False
        writer.write_eof()
        async with asyncio.timeout(PEER_CLOSE_WAIT):
            while await reader.read(1 << 16):
                pass  # what the server still sends (a reply not read to its end) is dropped
        return True
    except (TimeoutError, OSError, RuntimeError):
        return False
