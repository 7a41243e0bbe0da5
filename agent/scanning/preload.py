"""What a scan worker imports, imported once by the workers' fork server (:mod:`agent.scanning.parallel`).

The fork server is a fresh interpreter started by the first multi-process scan (``exec``, no
thread, no connection, nothing of the parent's but its environment); it imports this module
and then forks one worker per share of the scan. Every worker thus starts with the scan's
modules loaded, without importing them again (about 0.4 s of CPU each), and shares their
memory with the server and its other workers (copy-on-write). ``gc.freeze`` keeps the
collector from writing to those pages (each collection would otherwise copy them). Importing
this module starts no thread and opens nothing (``tests/agent/test_scan_processes.py``).

A probe whose module cannot be imported is left out here; its runs record the error. The
libraries the scan code imports only when it first needs them are listed in ``LATE``.
"""

from __future__ import annotations

import gc
import importlib

import agent.lean  # noqa: F401  (before httpx and pydantic are imported)
from probes.registry import probe_class, probe_names

MODULES = ("agent.scanning.parallel", "agent.scanning.reach", "agent.scanning.runner", "probes.child")
# Imported inside functions by the scan code: the resolver (probes.net.dns), anyio's event-loop
# backend (httpx's connection pool), cryptography's OpenSSL backend, pickle and queue (the
# worker's hand-back). tlslite is not here: probes.tls.hello loads it only for a DH key exchange.
LATE = ("dns.asyncresolver", "dns.resolver", "dns.rdatatype", "dns.exception", "anyio._backends._asyncio",
        "cryptography.hazmat.backends.openssl.backend", "pickle", "queue")


def load() -> None:
    """Import the scan's modules, every probe's and ``LATE``; freeze what they made."""
    gc.disable()  # the imports make no cyclic garbage: the collector walking them would only cost time
    try:
        # Nothing may escape: a fork server that fails to start fails every worker. What did
        # not import here is imported by the worker that needs it, which reports the error.
        for module in MODULES:
            try:
                importlib.import_module(module)
            except Exception:
                continue
        for name in probe_names():
            try:
                probe_class(name)
            except Exception:  # the probe's runs record why it cannot load
                continue
        for module in LATE:
            try:
                importlib.import_module(module)
            except Exception:  # the code that needs it says so when it runs
                continue
        gc.freeze()
    finally:
        gc.enable()


load()
