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
        async with self.pins.connection(host, address):
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
                writer.close()
                try:
                    async with asyncio.timeout(1):
                        await writer.wait_closed()
                except (TimeoutError, OSError, ssl.SSLError):
                    pass
