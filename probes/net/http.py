"""The one HTTP layer every probe uses.

* Connections go only to pinned addresses (:class:`PinnedBackend`), with the
  real host name in the URL so Host and SNI are right.
* Every request has an overall deadline (connect, headers and body together),
  not only per-read timeouts, so a server trickling a byte a second cannot
  hold a probe.
* Bodies are capped; what is over the cap is dropped and marked truncated.
* Redirects are followed only within the host, up to a limit; a redirect off
  the host is returned, never followed.
* Each request counts against the host's budget and holds its concurrency gate.

Certificate verification is off here on purpose: the TLS probe judges
certificates; the other probes must still see a site whose certificate is bad.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from probes.base import ConnectFailure, DeadlineExceeded, Limits, ProtocolFailure
from probes.net.scope import Pins, normalise_host

USER_AGENT = "posture/0.1 (external posture scan; +https://github.com/posture)"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


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
        loc = self.header("location")
        return urljoin(self.url, loc) if loc else None

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
    """Connects every TCP stream to one pinned address, whatever the URL says."""

    def __init__(self, pins: Pins, host: str, address: str) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._pins = pins
        self._host = host
        self._address = address

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
        self._pins.connections[normalise_host(self._host)] += 1
        return await self._inner.connect_tcp(self._address, port, timeout=timeout)

    async def connect_unix_socket(self, *a: Any, **kw: Any) -> httpcore.AsyncNetworkStream:
        raise ConnectFailure("unix sockets are not scan targets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


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
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with contextlib.suppress(ssl.SSLError):
            ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ctx,
            max_connections=limits.per_host_concurrency,
            max_keepalive_connections=limits.per_host_concurrency,
            keepalive_expiry=5.0,
            network_backend=PinnedBackend(pins, host, address),
        )

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
        await self._pool.aclose()


class HttpClient:
    """Pinned, bounded HTTP for probes. One per scan run; ``aclose`` when done."""

    def __init__(self, pins: Pins, limits: Limits | None = None, *, user_agent: str = USER_AGENT) -> None:
        self.pins = pins
        self.limits = limits or Limits()
        self.user_agent = user_agent
        self._clients: dict[tuple[str, str], httpx.AsyncClient] = {}

    def _client(self, host: str, address: str) -> httpx.AsyncClient:
        key = (normalise_host(host), address)
        client = self._clients.get(key)
        if client is None:
            client = httpx.AsyncClient(
                transport=PinnedTransport(self.pins, host, address, self.limits),
                timeout=httpx.Timeout(self.limits.request_deadline, connect=self.limits.connect_timeout),
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            await c.aclose()

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
        seen: set[str] = set()
        try:
            async with asyncio.timeout(limit):
                while True:
                    ex = await self._once(current_method, current, headers, current_raw, max_body, address)
                    if not follow_redirects or ex.status not in REDIRECT_CODES or not ex.location:
                        return _with_hops(ex, hops)
                    target = ex.location
                    if not self.same_host(url, target):
                        return _with_hops(ex, hops)  # off-host: recorded, never followed
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

    @staticmethod
    def same_host(a: str, b: str) -> bool:
        return normalise_host(urlsplit(a).hostname or "") == normalise_host(urlsplit(b).hostname or "")

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
        host = parsed.host
        addresses = self.pins.addresses(host)
        if not addresses:
            raise ConnectFailure(f"{host} has no reachable address")
        addr = address or addresses[0]
        self.pins.check(host, addr)
        self.pins.spend(host)
        cap = self.limits.max_body if max_body is None else max_body
        hdrs = {"user-agent": self.user_agent, "accept": "*/*"}
        hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
        client = self._client(host, addr)
        started = time.monotonic()
        async with self.pins.gate(host):
            try:
                request = client.build_request(method, parsed, headers=hdrs)
                response = await client.send(request, stream=True)
                try:
                    body, truncated = await _read_capped(response, cap)
                finally:
                    await response.aclose()
            except (httpcore.ConnectError, httpx.ConnectError) as exc:
                raise ConnectFailure(f"cannot connect to {host} ({addr}): {_why(exc)}") from None
            except (httpcore.TimeoutException, httpx.TimeoutException) as exc:
                raise DeadlineExceeded(f"{method} {url}: {type(exc).__name__}") from None
            except (httpcore.ProtocolError, httpx.ProtocolError, httpx.DecodingError) as exc:
                raise ProtocolFailure(f"{method} {url}: bad HTTP from {addr}: {_why(exc)}") from None
            except (httpcore.NetworkError, httpx.NetworkError, httpx.TransportError, ssl.SSLError) as exc:
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


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if size + len(chunk) > cap:
            chunks.append(chunk[: cap - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _with_hops(ex: HttpExchange, hops: list[Hop]) -> HttpExchange:
    if not hops:
        return ex
    return replace(ex, redirects=tuple(hops))


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__
