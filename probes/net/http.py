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
* One pool per (host, address) for the whole scan of an asset, shared by every
  probe (each gets the asset's scoped client); TLS sessions are resumed within
  it (:mod:`probes.net.resume`), and it is closed when the asset's scan ends
  (:meth:`HttpClient.release`) unless another asset on the host still uses it.

Certificate verification is off here on purpose: the TLS probe judges
certificates; the other probes must still see a site whose certificate is bad.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from probes.base import ConnectFailure, DeadlineExceeded, Limits, OutOfScope, ProtocolFailure
from probes.net.bodies import ACCEPT_ENCODING, read_capped
from probes.net.scope import Origin, Pins, format_origin, normalise_host, origin_of, same_host
from probes.net.transport import REQUEST_DEADLINE, PinnedTransport
from probes.net.transport import PinnedBackend as PinnedBackend
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
        #: host -> scoped clients using it now (shared by a client and its scoped children)
        self._users: Counter[str] = Counter()
        self._released = False
        #: one asset's scan: pages several probes read, fetched once (see ``page``)
        self._pages: dict[tuple[str, str, int], asyncio.Task[HttpExchange]] = {}
        # No pool timeout: waiting for a connection is posture's own per-address queue, bounded by
        # the others' deadlines and the probe's; the request's deadline starts when it is served.
        self._timeout = httpx.Timeout(self.limits.request_deadline, connect=self.limits.connect_timeout, pool=None)
        #: (scheme, host, port) a request may go to; None: any pinned host (no origin rule).
        self.origins: frozenset[Origin] | None = None

    def scoped(self, origins: Iterable[Origin], pins: Pins | None = None) -> HttpClient:
        """This client (same pools and limits) restricted to ``origins``: one asset's scope, over the
        asset's own ``pins`` when given (a pooled connection is shared only for the same host and
        address, which both tables must then hold)."""
        child = HttpClient(self.pins if pins is None else pins, self.limits, user_agent=self.user_agent)
        child._transports = self._transports
        child._users = self._users
        child.origins = frozenset(origins)
        child._users.update({h for _, h, _ in child.origins})
        return child

    async def release(self) -> None:
        """A scoped client is done (its asset's scan has ended): close the pools of hosts no other
        scoped client uses now. Their kept-alive connections and TLS sessions are not held for the
        rest of the run (a long run would keep one pool per host it ever scanned)."""
        if self.origins is None or self._released:
            return
        self._released = True
        pages, self._pages = list(self._pages.values()), {}
        for task in pages:
            task.cancel()
        # A page still being fetched (its readers were cancelled: a scan interrupted) lets go of
        # its connection before the pools close; a pool closed under a request in flight raises.
        await asyncio.gather(*pages, return_exceptions=True)
        done = set()
        for host in {h for _, h, _ in self.origins}:
            self._users[host] -= 1
            if self._users[host] <= 0:
                del self._users[host]
                done.add(host)
        for key in [k for k in self._transports if k[0] in done]:
            await self._transports.pop(key).aclose()

    def offer_session(self, host: str, address: str, port: int, server_name: str,
                      session: ssl.SSLSession) -> None:
        """A TLS session the scan already holds for ``host`` at ``address:port`` (its reach step's
        handshake, made with the same context): the first connection of the pool resumes it."""
        self._transport(host, address).sessions.keep(port, server_name, session)

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
            async with asyncio.timeout(limit) as clock:
                # This task's request (a shared page request runs in a task of its own).
                token = REQUEST_DEADLINE.set(clock)
                try:
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
                finally:
                    REQUEST_DEADLINE.reset(token)
        except TimeoutError:
            raise DeadlineExceeded(f"{method} {url} took longer than {limit:g}s") from None

    async def page(self, url: str, address: str, *, max_body: int, deadline: float) -> HttpExchange:
        """``GET url`` from ``address`` with the default headers, sent once per scoped client.

        For probes that each read the same page as served (its status and headers): the
        first call sends the request, later and concurrent ones share its exchange (or its
        failure). One request instead of one per probe: less load on the target, and the
        same answer in every probe's evidence. Each caller waits at most its own
        ``deadline``; the request itself is bounded by the first caller's. Only on a
        scoped client (one asset's scan), so an answer is never shared across scans.
        """
        if self.origins is None:
            return await self.request("GET", url, address=address, max_body=max_body, deadline=deadline)
        key = (url, address, max_body)
        task = self._pages.get(key)
        if task is None:
            task = self._pages[key] = asyncio.ensure_future(
                self.request("GET", url, address=address, max_body=max_body, deadline=deadline))
            task.add_done_callback(_retrieve)
        try:
            async with asyncio.timeout(deadline):
                return await asyncio.shield(task)
        except TimeoutError:
            raise DeadlineExceeded(f"GET {url} took longer than {deadline:g}s") from None

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
            request = httpx.Request(method, parsed, headers=hdrs, extensions={
                "timeout": self._timeout.as_dict(), "trace": _queue_not_counted()})
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


def _queue_not_counted() -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore ``trace`` hook: the time a request waited in the pool for a connection (posture's
    own per-address queue) is added to its deadline once the connection is being made or reused.
    The deadline is for the server's answer; a request queued behind a slow neighbour must not be
    recorded as unanswered (probes.net.transport adds the wait for the address's slot likewise)."""
    loop = asyncio.get_running_loop()
    asked = loop.time()
    granted = False

    async def trace(name: str, info: dict[str, Any]) -> None:
        nonlocal granted
        if granted or not (name == "connection.connect_tcp.started" or name.endswith("send_request_headers.started")):
            return
        granted = True
        clock = REQUEST_DEADLINE.get()
        when = clock.when() if clock is not None else None
        if clock is not None and when is not None and loop.time() > asked:
            clock.reschedule(when + (loop.time() - asked))

    return trace


def _retrieve(task: asyncio.Task[HttpExchange]) -> None:
    """A shared page's failure is each caller's to handle; none is left unretrieved."""
    if not task.cancelled():
        task.exception()


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
