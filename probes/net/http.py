"""The one HTTP layer every probe uses.

* Connections go only to pinned addresses (:class:`PinnedBackend`), with the
  real host name in the URL so Host and SNI are right.
* Every request has an overall deadline (connect, headers and body together),
  not only per-read timeouts, so a server trickling a byte a second cannot
  hold a probe.
* Bodies are capped; what is over the cap is dropped and marked truncated.
  Content decoding is bounded too (:mod:`probes.net.bodies`), so a gzip
  bomb costs no more memory than the cap.
* A failed TLS handshake is a :class:`ProtocolFailure` (the port answered,
  but not with TLS we could finish), a refused connection a
  :class:`ConnectFailure`.
* A client scoped to an asset (:meth:`HttpClient.scoped`) sends requests only
  to the asset's origins (scheme, host, port); redirects are followed only
  within them (within the host for an unscoped client), up to a limit; a
  redirect out of scope is returned, never followed.
* Each request counts against its address's budget; each connection, pooled
  and kept-alive ones included, holds one of the address's connection slots
  for its whole life (:class:`probes.net.scope.AddressLimits`).

Certificate verification is off here on purpose: the TLS probe judges
certificates; the other probes must still see a site whose certificate is bad.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from probes.base import ConnectFailure, DeadlineExceeded, Limits, OutOfScope, ProtocolFailure
from probes.net.bodies import ACCEPT_ENCODING, read_capped
from probes.net.resume import AnyIOStream, TlsSessions, resuming_tls
from probes.net.scope import Origin, Pins, format_origin, normalise_host, origin_of, same_host
from probes.net.tlsctx import allow_large_certificates
from vocab import one_line

USER_AGENT = "posture/0.1 (external posture scan; +https://github.com/posture)"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
HTTP_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True)
class Hop:
    status: int
    url: str
    location: str


@dataclass(frozen=True)
class HttpExchange:
    """One request and its (capped) response."""

    method: str
    url: str
    path_sent: str  # request target exactly as sent
    address: str
    status: int
    reason: str
    http_version: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, order kept
    body: bytes
    truncated: bool
    elapsed: float
    redirects: tuple[Hop, ...] = ()  # hops followed to reach this response

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str:
        for part in (self.header("content-type") or "").split(";")[1:]:
            k, _, v = part.strip().partition("=")
            if k.lower() == "charset" and v:
                return v.strip("\"' ")
        return "utf-8"

    @property
    def text(self) -> str:
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    @property
    def location(self) -> str | None:
        """The Location header made absolute; as sent when it cannot be parsed."""
        loc = (self.header("location") or "").strip()
        if not loc:
            return None
        try:
            return urljoin(self.url, loc)
        except ValueError:  # e.g. "http://[bad" from a hostile server
            return loc

    @property
    def is_textual(self) -> bool:
        ct = self.content_type
        return not ct or ct.startswith("text/") or ct in (
            "application/json",
            "application/xml",
            "application/xhtml+xml",
            "application/problem+json",
        )


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
        # The slot is held for the connection's whole life, idle in the pool included.
        await limits.acquire(self._address)
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
            if self._sessions is not None and isinstance(self._inner, AnyIOStream):
                self._server_name = server_hostname
                session, self._leading = await self._sessions.session_for(self._port, server_hostname, timeout)
            if isinstance(self._inner, AnyIOStream):
                self._inner = await resuming_tls(self._inner, ssl_context, server_hostname, timeout, session,
                                                   self._sessions)
            else:
                self._inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
            obj = self._inner.get_extra_info("ssl_object")
            if isinstance(obj, ssl.SSLObject) and self._sessions is not None:
                self._tls = obj
                self._keep_session()
                if self._tls is None:  # resumable at once (a TLS 1.2 ticket comes in the handshake)
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


@functools.cache
def _unverified_context() -> ssl.SSLContext:
    """One client context for every transport, built on first use.

    Verification is off (see the module docstring), so no trust store is loaded:
    ``ssl.create_default_context()`` per transport spent ~10 ms of CPU reading the
    system CA bundle for every (host, address), a fifth of a 200-asset scan's time.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    allow_large_certificates(ctx)  # a valid certificate may be larger than OpenSSL's 100 KB default
    return ctx


class PinnedTransport(httpx.AsyncBaseTransport):
    """httpx transport over an httpcore pool whose sockets go to one address."""

    def __init__(self, pins: Pins, host: str, address: str, limits: Limits) -> None:
        self._pins = pins
        self._address = address
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_unverified_context(),
            max_connections=limits.per_host_concurrency,
            max_keepalive_connections=limits.per_host_concurrency,
            keepalive_expiry=5.0,
            network_backend=PinnedBackend(pins, host, address),
        )
        pins.shared.add_reclaimer(address, self.close_idle)

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


class HttpClient:
    """Pinned, bounded HTTP for probes. One per scan run; ``aclose`` when done.

    Requests go straight to the pinned transport, not through ``httpx.AsyncClient.send``:
    that builds the next request from every Location header even when not
    following it, so a hostile Location (``javascript:...``) raised there and
    lost the response. No cookies are kept between requests: every probe
    request stands alone.
    """

    def __init__(self, pins: Pins, limits: Limits | None = None, *, user_agent: str = USER_AGENT) -> None:
        self.pins = pins
        self.limits = limits or Limits()
        self.user_agent = user_agent
        self._transports: dict[tuple[str, str], PinnedTransport] = {}
        self._timeout = httpx.Timeout(self.limits.request_deadline, connect=self.limits.connect_timeout)
        #: (scheme, host, port) a request may go to; None: any pinned host (no origin rule).
        self.origins: frozenset[Origin] | None = None

    def scoped(self, origins: Iterable[Origin]) -> HttpClient:
        """This client (same pins, pools and limits) restricted to ``origins``: one asset's scope."""
        child = HttpClient(self.pins, self.limits, user_agent=self.user_agent)
        child._transports = self._transports
        child.origins = frozenset(origins)
        return child

    def in_scope(self, url: str) -> bool:
        """Whether a request to ``url`` is allowed by the origin rule (not yet by the pins)."""
        if self.origins is None:
            return True
        return origin_of(url) in self.origins

    def _check_origin(self, parsed: httpx.URL, url: str) -> None:
        if self.origins is None:
            return
        origin = (parsed.scheme, normalise_host(parsed.host), parsed.port or (443 if parsed.scheme == "https" else 80))
        if origin not in self.origins:
            raise OutOfScope(f"refusing {url}: origin {format_origin(origin)} is not in the asset's scope")

    def _transport(self, host: str, address: str) -> PinnedTransport:
        key = (normalise_host(host), address)
        transport = self._transports.get(key)
        if transport is None:
            transport = self._transports[key] = PinnedTransport(self.pins, host, address, self.limits)
        return transport

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for t in transports:
            await t.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        raw_path: bytes | None = None,
        follow_redirects: bool = False,
        max_body: int | None = None,
        address: str | None = None,
        deadline: float | None = None,
    ) -> HttpExchange:
        """Send one request (following in-host redirects if asked).

        ``raw_path`` replaces the URL's path and query byte for byte (for
        malformed percent-encoding that a URL parser would normalise).
        ``deadline`` bounds the whole call, redirects included.
        """
        limit = deadline if deadline is not None else self.limits.request_deadline
        hops: list[Hop] = []
        current, current_raw, current_method = url, raw_path, method
        seen: set[str] = {url}
        try:
            async with asyncio.timeout(limit):
                while True:
                    ex = await self._once(current_method, current, headers, current_raw, max_body, address)
                    if not follow_redirects or ex.status not in REDIRECT_CODES or not ex.location:
                        return _with_hops(ex, hops)
                    target = ex.location
                    if _scheme(target) not in HTTP_SCHEMES or not (
                        self.in_scope(target) if self.origins is not None else same_host(url, target)
                    ):
                        return _with_hops(ex, hops)  # off-scope: recorded, never followed
                    hops.append(Hop(ex.status, ex.url, target))
                    if len(hops) > self.limits.max_redirects or target in seen:
                        raise ProtocolFailure(
                            f"redirect loop or too many redirects ({len(hops)}) from {url}"
                        )
                    seen.add(target)
                    current, current_raw = target, None
                    if ex.status == 303:
                        current_method = "GET"
        except TimeoutError:
            raise DeadlineExceeded(f"{method} {url} took longer than {limit:g}s") from None

    async def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        raw_path: bytes | None,
        max_body: int | None,
        address: str | None,
    ) -> HttpExchange:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise ProtocolFailure(f"invalid URL {url!r}: {exc}") from None
        if raw_path is not None:
            parsed = parsed.copy_with(raw_path=raw_path)
        if parsed.scheme not in HTTP_SCHEMES:
            raise ProtocolFailure(f"refusing {url!r}: not an http(s) URL")
        host = parsed.host
        addresses = self.pins.addresses(host)
        if not addresses:
            raise ConnectFailure(f"{host} has no reachable address")
        addr = address or addresses[0]
        self.pins.check(host, addr)
        self._check_origin(parsed, url)
        self.pins.spend(host, addr)
        cap = self.limits.max_body if max_body is None else max_body
        hdrs = {"user-agent": self.user_agent, "accept": "*/*", "accept-encoding": ACCEPT_ENCODING}
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        transport = self._transport(host, addr)
        try:
            request = httpx.Request(method, parsed, headers=hdrs, extensions={"timeout": self._timeout.as_dict()})
        except (httpx.InvalidURL, ValueError) as exc:
            raise ProtocolFailure(f"cannot build {method} {url}: {_why(exc)}") from None
        started = time.monotonic()
        try:
            response = await transport.handle_async_request(request)
            try:
                body, truncated = await read_capped(
                    response.aiter_raw(), response.headers.get("content-encoding"), cap
                )
            finally:
                await response.aclose()
        except (httpcore.ConnectError, httpx.ConnectError) as exc:
            raise ConnectFailure(f"cannot connect to {host} ({addr}): {_why(exc)}") from None
        except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
            raise DeadlineExceeded(f"{method} {url}: {type(exc).__name__}") from None
        except (httpcore.ProtocolError, httpx.ProtocolError, httpx.DecodingError) as exc:
            raise ProtocolFailure(f"{method} {url}: bad HTTP from {addr}: {_why(exc)}") from None
        except (httpcore.NetworkError, httpx.HTTPError, ssl.SSLError, httpcore.UnsupportedProtocol) as exc:
            raise ProtocolFailure(f"{method} {url}: connection to {addr} failed: {_why(exc)}") from None
        except OSError as exc:
            raise ConnectFailure(f"cannot connect to {host} ({addr}): {exc.strerror or exc}") from None
        path_sent = (raw_path if raw_path is not None else parsed.raw_path).decode("latin-1")
        return HttpExchange(
            method=method,
            url=str(parsed),
            path_sent=path_sent,
            address=addr,
            status=response.status_code,
            reason=response.reason_phrase,
            http_version=response.http_version,
            headers=tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in response.headers.raw),
            body=body,
            truncated=truncated,
            elapsed=time.monotonic() - started,
        )


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def _with_hops(ex: HttpExchange, hops: list[Hop]) -> HttpExchange:
    if not hops:
        return ex
    return replace(ex, redirects=tuple(hops))


def _why(exc: BaseException) -> str:
    return one_line(exc, named=False, limit=200)
