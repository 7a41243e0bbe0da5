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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from probes.base import ConnectFailure, DeadlineExceeded, ProtocolFailure
from probes.net.scope import Pins


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
            except TimeoutError:
                raise DeadlineExceeded(f"connect to {_addr(address, port)} timed out after {limit:g}s") from None
            except ssl.SSLError as exc:
                why = exc.reason or exc
                raise ProtocolFailure(f"TLS handshake with {_addr(address, port)} failed: {why}") from None
            except ConnectionRefusedError:
                raise ConnectFailure(f"{_addr(address, port)} refused the connection") from None
            except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
                raise ProtocolFailure(f"{_addr(address, port)} dropped the connection: {type(exc).__name__}") from None
            except OSError as exc:
                if exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL):
                    raise ConnectFailure(f"{_addr(address, port)} is unreachable") from None
                raise ConnectFailure(f"cannot connect to {_addr(address, port)}: {exc.strerror or exc}") from None
            except ValueError as exc:  # e.g. a server name the IDNA codec rejects
                raise ConnectFailure(f"cannot connect to {_addr(address, port)}: {exc}") from None
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
