"""Lift OpenSSL's certificate-message bound on a client context.

OpenSSL refuses a peer's certificate list longer than ``max_cert_list`` (100 KB
by default) with ``EXCESSIVE_MESSAGE_SIZE``; the protocol allows a handshake
message of 2^24-1 bytes, and a valid certificate with thousands of names (a
shared CDN certificate) exceeds OpenSSL's default. Python's :mod:`ssl` has no
setter, so this calls ``SSL_CTX_ctrl(SSL_CTRL_SET_MAX_CERT_LIST)`` on the
context's ``SSL_CTX`` through the symbols of the ``_ssl`` extension itself
(the very OpenSSL that context uses).

Best effort: when anything does not look exactly as expected (another Python
implementation, a symbol missing, a default that is not OpenSSL's), the
context is left as it is and the caller is told; the ``tls`` probe then reads
such chains from its raw handshake instead (:func:`probes.tls.suites.fetch_chain`).
"""

from __future__ import annotations

import ctypes
import functools
import platform
import ssl
from typing import Any

MAX_CERT_LIST = (1 << 24) - 1  # a handshake message's uint24 length (RFC 8446 4, RFC 5246 7.4)
_GET_MAX_CERT_LIST, _SET_MAX_CERT_LIST = 50, 51  # SSL_CTRL_* in openssl/ssl.h (stable since 0.9.7)
_OPENSSL_DEFAULT = 100 * 1024  # SSL_MAX_CERT_LIST_DEFAULT


@functools.cache
def _ctrl() -> Any | None:
    if platform.python_implementation() != "CPython":
        return None
    try:
        import _ssl

        fn = ctypes.CDLL(_ssl.__file__).SSL_CTX_ctrl
    except (ImportError, OSError, AttributeError):
        return None
    fn.restype = ctypes.c_long
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    return fn


def _ssl_ctx(ctx: ssl.SSLContext) -> int | None:
    # CPython's PySSLContext starts with PyObject_HEAD followed by its SSL_CTX pointer.
    value = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    return int(value) if value else None


def allow_large_certificates(ctx: ssl.SSLContext) -> bool:
    """Let ``ctx`` take certificate messages up to the protocol's limit; whether it now does."""
    fn = _ctrl()
    if fn is None or not isinstance(ctx, ssl.SSLContext):
        return False
    pointer = _ssl_ctx(ctx)
    if pointer is None:
        return False
    current = int(fn(pointer, _GET_MAX_CERT_LIST, 0, None))
    if current == MAX_CERT_LIST:
        return True
    if current != _OPENSSL_DEFAULT:  # not what a fresh context holds: do not touch what we do not understand
        return False
    fn(pointer, _SET_MAX_CERT_LIST, MAX_CERT_LIST, None)
    return int(fn(pointer, _GET_MAX_CERT_LIST, 0, None)) == MAX_CERT_LIST
