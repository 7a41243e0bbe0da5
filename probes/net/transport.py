"""The transport under :class:`probes.net.http.HttpClient`: pinned sockets, slots, TLS sessions.

* :class:`PinnedBackend` connects every TCP stream to one pinned address and holds one of
  the address's connection slots (:class:`probes.net.scope.AddressLimits`) for the
  connection's whole life, idle in the pool included.
* :class:`_HandshakeGuard` tells a failed TLS handshake (:class:`ProtocolFailure`) from a
  failed connect, and keeps and offers TLS sessions (:mod:`probes.net.resume`).
* :class:`PinnedTransport` is the httpx transport over an httpcore pool of such connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from probes.base import ConnectFailure, Limits, ProtocolFailure
from probes.net.handshake import permissive_context
from probes.net.resume import SUPPORTED, AnyIOStream, TlsSessions, resuming_tls
from probes.net.scope import Pins, normalise_host
from vocab import one_line


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects every TCP stream to one pinned address, whatever the URL says.

    It also keeps the newest resumable TLS session per (port, server name) its connections
    were given, and offers it on the next connection (:class:`TlsSessions`): every
    connection after the first to a server that issues tickets is a resumed handshake.
    """

    def __init__(self, pins: Pins, host: str, address: str) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._pins = pins
        self._host = host
        self._address = address
        self.sessions = TlsSessions()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if normalise_host(host) != normalise_host(self._host):
            # Defence in depth: HttpClient already refuses other hosts.
            self._pins.check(host, self._address)
        self._pins.check(self._host, self._address)
        limits = self._pins.shared
        # The slot is held for the connection's whole life, idle in the pool included. Waiting for
        # one is posture's own queue, not the server being slow: the request's deadline moves on
        # by that wait, so a request queued behind a slow neighbour is not recorded as unanswered.
        loop = asyncio.get_running_loop()
        queued = loop.time()
        await limits.acquire(self._address)
        deadline = REQUEST_DEADLINE.get()
        when = deadline.when() if deadline is not None else None
        if deadline is not None and when is not None and loop.time() > queued:
            deadline.reschedule(when + (loop.time() - queued))
        self._pins.connections[normalise_host(self._host)] += 1
        try:
            stream = await self._inner.connect_tcp(self._address, port, timeout=timeout)
        except BaseException:
            limits.release(self._address)
            raise
        return _HandshakeGuard(stream, f"{self._address}:{port}", lambda: limits.release(self._address),
                               self.sessions, port)

    async def connect_unix_socket(self, *a: Any, **kw: Any) -> httpcore.AsyncNetworkStream:
        raise ConnectFailure("unix sockets are not scan targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


#: The deadline of the HTTP request running in this task (probes.net.http sets it).
REQUEST_DEADLINE: ContextVar[asyncio.Timeout | None] = ContextVar("posture_request_deadline", default=None)


class _HandshakeGuard(httpcore.AsyncNetworkStream):
    """Tells a failed TLS handshake apart from a failed TCP connect.

    httpcore reports both as ConnectError; a port that accepts TCP and then
    speaks something other than TLS (or aborts the handshake) is a protocol
    failure, not a connect failure.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream, where: str, on_close: Callable[[], None],
                 sessions: TlsSessions | None = None, port: int = 0) -> None:
        self._inner = inner
        self._where = where
        self._on_close: Callable[[], None] | None = on_close
        self._sessions = sessions
        self._port = port
        self._tls: ssl.SSLObject | None = None  # until its session is kept
        self._server_name: str | None = None
        self._leading = False  # the first connection of its (port, server name): others wait for it

    def _closed(self) -> None:
        self._settle()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout)
        if self._tls is not None:
            # A TLS 1.3 ticket arrives after the handshake, before the first data: looked for once.
            self._keep_session()
            self._tls = None
            self._settle()
        return data

    def _keep_session(self) -> None:
        obj = self._tls
        if obj is None or self._sessions is None:
            return
        try:
            session = obj.session
        except (ValueError, ssl.SSLError):  # CPython copies it through i2d: a huge peer certificate fails there
            return  # not resumable; the next connection does a full handshake
        if session is not None and session.has_ticket:
            self._sessions.keep(self._port, self._server_name, session)
            self._tls = None

    def _settle(self) -> None:
        """Let connections waiting for this one's session go on (it has one now, or never will)."""
        if self._leading and self._sessions is not None:
            self._leading = False
            with contextlib.suppress(RuntimeError):  # collected after its loop closed: nobody waits
                self._sessions.settled(self._port, self._server_name)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._closed()

    def __del__(self) -> None:  # a stream dropped without aclose must not keep its slot
        self._closed()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            session = None
            if self._sessions is not None and SUPPORTED and isinstance(self._inner, AnyIOStream):
                self._server_name = server_hostname
                session, self._leading = await self._sessions.session_for(self._port, server_hostname)
            if SUPPORTED and isinstance(self._inner, AnyIOStream):
                self._inner = await resuming_tls(self._inner, ssl_context, server_hostname, timeout, session,
                                                   self._sessions)
            else:
                self._inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
            obj = self._inner.get_extra_info("ssl_object")
            if isinstance(obj, ssl.SSLObject) and self._sessions is not None:
                # Reading a session is dear (CPython copies it, certificate and all): only a full
                # handshake's is kept; a resumed one means the kept session still works.
                if not obj.session_reused:
                    self._tls = obj
                    if obj.version() != "TLSv1.3":  # a TLS 1.2 ticket comes in the handshake
                        self._keep_session()
                        self._tls = None
                if self._tls is None:
                    self._settle()
            return self
        except httpcore.ConnectError as exc:
            await self._close_quietly()
            why = _why(exc) if str(exc).strip() else "connection closed during the handshake"
            raise ProtocolFailure(f"TLS handshake with {self._where} failed: {why}") from None
        except BaseException:
            await self._close_quietly()
            raise

    async def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.aclose()
        self._closed()

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Stream(httpx.AsyncByteStream):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._inner:
            yield part

    async def aclose(self) -> None:
        if hasattr(self._inner, "aclose"):
            await self._inner.aclose()


class PinnedTransport(httpx.AsyncBaseTransport):
    """httpx transport over an httpcore pool whose sockets go to one address."""

    def __init__(self, pins: Pins, host: str, address: str, limits: Limits) -> None:
        self._pins = pins
        self._address = address
        self._backend = PinnedBackend(pins, host, address)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=permissive_context(),  # no verification here: the tls probe judges certificates
            max_connections=limits.per_host_concurrency,
            max_keepalive_connections=limits.per_host_concurrency,
            keepalive_expiry=5.0,
            network_backend=self._backend,
        )
        pins.shared.add_reclaimer(address, self.close_idle)

    @property
    def sessions(self) -> TlsSessions:
        """The TLS sessions this pool's connections offer (see :class:`PinnedBackend`)."""
        return self._backend.sessions

    async def close_idle(self) -> None:
        """Close kept-alive connections no request is using (another probe needs the slot)."""
        for conn in list(self._pool.connections):
            if conn.is_idle():
                with contextlib.suppress(Exception):
                    await conn.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]
            extensions=request.extensions,
        )
        resp = await self._pool.handle_async_request(req)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_Stream(resp.stream),
            extensions=resp.extensions,
        )

    async def aclose(self) -> None:
        self._pins.shared.remove_reclaimer(self._address, self.close_idle)
        await self._pool.aclose()


def _why(exc: BaseException) -> str:
    return one_line(exc, named=False, limit=200)
