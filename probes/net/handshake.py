"""The first TLS handshake with an address, made once per scan and read by whoever needs it.

A scan's reach step (:mod:`agent.scanning.reach`) proves the service speaks TLS
with one handshake per address until one completes; the ``tls`` probe needs the
certificate chain of that same handshake (permissive context, the asset's SNI).
:func:`capture_chain` makes it and returns what it yielded; the agent hands the
reach's captures to the probes (``ProbeContext.captured``), so the server signs
once for both, not twice.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import ssl
from dataclasses import dataclass

from probes.base import ProtocolFailure
from probes.net.connector import Connector
from probes.net.scope import normalise_host
from probes.net.tlsctx import allow_large_certificates

_DER_ENCODING = 2  # _ssl.ENCODING_DER; the module constant is private


@dataclass(frozen=True)
class Capture:
    """What one handshake yielded: the chain as sent (DER, leaf first) and what was negotiated."""

    address: str
    chain: tuple[bytes, ...]
    protocol: str | None
    cipher: str | None
    cipher_bits: int | None
    #: A resumable session of this handshake (it carries a ticket), when one was asked for and
    #: came: the asset's HTTP connections offer it (same context), so they resume, not sign anew.
    session: ssl.SSLSession | None = None


@functools.cache
def permissive_context() -> ssl.SSLContext:
    """A client context that completes a handshake with almost anything, so the chain is captured.

    No verification (the judge verifies), every protocol and suite OpenSSL still
    has at security level 0, except anonymous suites: a server that accepted one
    would send no certificate at all. One per process, shared with the HTTP transport
    (:mod:`probes.net.transport`), so a capture's session can be offered there. A capture
    itself never offers one (client contexts cache nothing by themselves): it is always a
    full handshake.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:!aNULL:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    allow_large_certificates(ctx)  # else the raw handshake reads such a chain (TlsProbe._raw_chains)
    return ctx


def peer_chain(obj: ssl.SSLObject) -> tuple[bytes, ...]:
    """The certificates the server sent, leaf first, whether or not they verify."""
    # Python 3.13 has a public SSLObject.get_unverified_chain(); 3.10-3.12 have it on the _ssl object.
    getter = getattr(obj, "get_unverified_chain", None) or getattr(
        getattr(obj, "_sslobj", None), "get_unverified_chain", None
    )
    if getter is not None:
        chain = getter() or []
        der = tuple(c if isinstance(c, bytes) else c.public_bytes(_DER_ENCODING) for c in chain)
        if der:
            return der
    leaf = obj.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


#: How long a capture waits for a TLS 1.3 ticket (it comes after the handshake, about one round
#: trip later) when a session was asked for; without one, HTTP simply makes a full handshake.
TICKET_WAIT = 0.05


async def capture_chain(
    connector: Connector, host: str, address: str, port: int, *, sni: str | None, timeout: float | None = None,
    keep_session: bool = False,
) -> Capture:
    async with connector.open(
        host, address, port, ssl_context=permissive_context(), server_hostname=sni, timeout=timeout
    ) as conn:
        obj = conn.ssl_object
        if obj is None:
            raise ProtocolFailure(f"no TLS session with {address}:{port}")
        cipher = obj.cipher()
        return Capture(
            address=address,
            chain=peer_chain(obj),
            protocol=obj.version(),
            cipher=cipher[0] if cipher else None,
            cipher_bits=cipher[2] if cipher else None,
            session=await _ticketed_session(obj) if keep_session else None,
        )


async def _ticketed_session(obj: ssl.SSLObject) -> ssl.SSLSession | None:
    """The handshake's session once it carries a ticket (TLS 1.2: in the handshake; TLS 1.3: the
    NewSessionTicket the event loop reads after it), waiting at most :data:`TICKET_WAIT`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + TICKET_WAIT
    while True:
        try:
            session = obj.session
        except (ValueError, ssl.SSLError):  # CPython copies it through i2d: a huge certificate fails there
            return None
        if session is not None and session.has_ticket:
            return session
        if obj.version() != "TLSv1.3" or loop.time() >= end:
            return None
        await asyncio.sleep(0.002)


def sni_for(host: str) -> str | None:
    """SNI carries names only (RFC 6066 §3): none for an IP literal."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return normalise_host(host)  # A-labels: an IDN is sent as xn--...
    return None


def capture_key(address: str, port: int, sni: str | None) -> tuple[str, int, str]:
    """How a capture is filed in ``ProbeContext.captured``."""
    return (address, port, sni or "")
