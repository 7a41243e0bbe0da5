"""A real ProbeContext for tests: pinned loopback addresses, real HTTP client and connector."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from probes.base import AssetKind, Limits, ProbeContext, Target
from probes.net.connector import Connector
from probes.net.http import HttpClient
from probes.net.scope import Pins


def make_target(
    url: str,
    addresses: Sequence[str] = ("127.0.0.1",),
    *,
    kind: AssetKind = AssetKind.WEBSITE,
    name: str | None = None,
    active: bool = True,
    allowed_ports: frozenset[int] | None = None,
    cname_chain: Sequence[str] = (),
    declared: Mapping[str, str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme
    default = {"https": 443, "wss": 443, "http": 80}.get(scheme, 443)
    return Target(
        name=name or (parts.hostname or "asset"),
        url=url,
        scheme=scheme,
        host=(parts.hostname or "").lower(),
        port=parts.port or default,
        path=parts.path or "/",
        kind=kind,
        addresses=tuple(addresses),
        cname_chain=tuple(cname_chain),
        allowed_ports=allowed_ports,
        active=active,
        declared=dict(declared or {}),
        settings=dict(settings or {}),
    )


@asynccontextmanager
async def probe_context(
    *targets: Target,
    limits: Limits | None = None,
    now: dt.datetime | None = None,
    ca_bundle: str | None = None,
) -> AsyncIterator[ProbeContext]:
    limits = limits or Limits(connect_timeout=2.0, request_deadline=5.0, probe_deadline=30.0)
    pins = Pins.of({t.host: t.addresses for t in targets},
                   per_host_concurrency=limits.per_host_concurrency, host_budget=limits.host_budget)
    http = HttpClient(pins, limits)
    clock_value = now

    def clock() -> dt.datetime:
        return clock_value or dt.datetime.now(dt.UTC)

    try:
        yield ProbeContext(
            http=http,
            connector=Connector(pins, connect_timeout=limits.connect_timeout),
            clock=clock,
            limits=limits,
            ca_bundle=ca_bundle,
        )
    finally:
        await http.aclose()
