from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.certs import Authority
from tests.support.dnsserver import DnsServer

# Every test server lives on loopback, which the address policy refuses by default: allow it
# for the whole session (os.environ, so CLI subprocesses inherit it). Tests of the policy
# itself override or remove it (monkeypatch.delenv / setenv).
os.environ["POSTURE_ALLOW_ADDRESSES"] = "127.0.0.0/8,::1/128"


@pytest.fixture(scope="session")
def authority() -> Authority:
    """One test CA hierarchy for the session (key generation is the slow part)."""
    return Authority()


@pytest.fixture(scope="session")
def ca_bundle(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return authority.write_trust(tmp_path_factory.mktemp("trust") / "root.pem")


@pytest.fixture
def dns_factory() -> Iterator[type[DnsServer]]:
    started: list[DnsServer] = []

    class _Factory(DnsServer):
        def start(self) -> DnsServer:
            started.append(self)
            return super().start()

    yield _Factory
    for server in started:
        server.stop()
