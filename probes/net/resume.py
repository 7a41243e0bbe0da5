"""TLS session resumption for the pooled HTTP connections of one (host, address).

httpcore hands a TLS upgrade to anyio's ``TLSStream.wrap``, which has no way to
offer a session; so the upgrade is done here the same way, with the session the
last connection to the same (port, server name) was given. A server that issues
tickets then resumes instead of a full handshake (no certificate, no signature);
one that does not, or that refuses the ticket, does a full handshake as before.
What the HTTP probes observe does not depend on it: they read HTTP, never the TLS
session (the ``tls`` probe makes its own connections and never resumes).

This leans on anyio's ``TLSStream`` internals (its private fields and
``_call_sslobject_method``) and httpcore's ``AnyIOStream``; :data:`SUPPORTED` is
false when they are not there, and the connection then upgrades the ordinary way
(no resumption). tests/probes/test_shared_connections.py counts resumed sessions at
a real server, so an upgrade that breaks this shows there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import anyio
import httpcore
from anyio.streams.tls import TLSStream
from httpcore._backends.anyio import AnyIOStream  # the stream httpcore's AnyIO backend hands out
from httpcore._exceptions import map_exceptions

__all__ = ["SUPPORTED", "AnyIOStream", "TlsSessions", "resuming_tls"]

#: Whether the anyio internals this module uses are there.
SUPPORTED = hasattr(TLSStream, "_call_sslobject_method") and hasattr(AnyIOStream, "start_tls")

_TLS_ERRORS: dict[type[Exception], type[Exception]] = {
    TimeoutError: httpcore.ConnectTimeout,
    anyio.BrokenResourceError: httpcore.ConnectError,
    anyio.EndOfStream: httpcore.ConnectError,
    ssl.SSLError: httpcore.ConnectError,
}


#: How long a connection waits for the first one's session before a full handshake anyway. Short:
#: the leader's session is known only once its first answer has come (a TLS 1.3 ticket is read
#: with it), and a slow application must not hold the other requests of the asset.
FIRST_WAIT = 0.5

Key = tuple[int, str | None]


class TlsSessions:
    """The newest resumable session per (port, server name); how many were offered and taken.

    While no session is known for a key, the first connection leads: the others wait
    (:meth:`session_for`) until it has read its first data (a TLS 1.3 ticket comes with it)
    or closed, so a burst of parallel requests costs one full handshake, not one each.
    """

    def __init__(self) -> None:
        self._sessions: dict[Key, ssl.SSLSession] = {}
        self._leading: dict[Key, asyncio.Event] = {}
        self.offered = 0
        self.resumed = 0

    def get(self, port: int, server_name: str | None) -> ssl.SSLSession | None:
        return self._sessions.get((port, server_name))

    async def session_for(self, port: int, server_name: str | None) -> tuple[ssl.SSLSession | None, bool]:
        """The session to offer, and whether this connection leads (must call :meth:`settled`)."""
        key = (port, server_name)
        session = self._sessions.get(key)
        if session is not None:
            return session, False
        first = self._leading.get(key)
        if first is None:
            self._leading[key] = asyncio.Event()
            return None, True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(FIRST_WAIT):
                await first.wait()
        return self._sessions.get(key), False

    def settled(self, port: int, server_name: str | None) -> None:
        """The leading connection has read data or closed: whoever waits goes on."""
        first = self._leading.pop((port, server_name), None)
        if first is not None:
            first.set()

    def keep(self, port: int, server_name: str | None, session: ssl.SSLSession) -> None:
        self._sessions[(port, server_name)] = session


async def resuming_tls(stream: AnyIOStream, ctx: ssl.SSLContext, server_hostname: str | None,
                       timeout: float | None, session: ssl.SSLSession | None,
                       sessions: TlsSessions | None = None) -> AnyIOStream:
    """``AnyIOStream.start_tls`` offering ``session``; errors mapped as httpcore maps them."""
    raw = stream._stream
    bio_in, bio_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    with map_exceptions(_TLS_ERRORS):
        try:
            with anyio.fail_after(timeout):
                obj = ctx.wrap_bio(bio_in, bio_out, server_side=False, server_hostname=server_hostname,
                                   session=session)
                wrapper = TLSStream(transport_stream=raw, standard_compatible=False, _ssl_object=obj,
                                    _read_bio=bio_in, _write_bio=bio_out)
                await wrapper._call_sslobject_method(obj.do_handshake)
        except Exception:
            await stream.aclose()
            raise
    if sessions is not None and session is not None:
        sessions.offered += 1
        sessions.resumed += obj.session_reused
    return AnyIOStream(wrapper)
