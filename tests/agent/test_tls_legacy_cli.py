"""A gateway that speaks only NULL suites: the scan is complete and the certificate judged (CLI, both stores)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from agent.cli import main
from tests.support.certs import Authority, make_key, write_pair
from tests.support.dnsserver import DnsServer
from tests.support.outcome import narrowed_ok
from tests.support.tls_servers import openssl_server

HOST = "gw.legacy-cli.test"
ADDR = "127.0.5.31"


def test_null_only_gateway_scan_is_complete_with_certificate_verdicts(
    tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = Authority("legacy cli root")
    now = dt.datetime.now(dt.UTC)
    leaf = ca.leaf(HOST, key=make_key("rsa", 2048), not_before=now - dt.timedelta(days=300),
                   not_after=now + dt.timedelta(days=5))  # expiring soon: a verdict only a chain can give
    cert, key = write_pair(tmp_path, "gw", leaf.cert_pem, leaf.key_pem)
    assert ca.intermediate is not None
    chain = tmp_path / "chain.pem"
    chain.write_bytes(ca.intermediate.cert_pem)
    bundle = ca.write_trust(tmp_path / "ca.pem")
    with openssl_server(cert, key, ADDR, "-cert_chain", str(chain), "-tls1_2",
                        "-cipher", "NULL-SHA256:NULL-SHA:@SECLEVEL=0") as ep:
        dns = DnsServer({HOST: ADDR}).start()
        try:
            code = main(["--db", store_url, "scan", f"tls://{HOST}:{ep.port}", "--resolver", dns.address,
                         "--ca-bundle", str(bundle), "--probe", "tls", "--format", "json"])
        finally:
            dns.stop()
    out, err = capsys.readouterr()
    (scan,) = json.loads(out)["scans"]
    assert narrowed_ok(scan), (scan["errors"], err)
    assert code != 2 and scan["errors"] == []
    found = {f["check_id"]: f for f in scan["findings"]}
    assert {"tls.cert.expiring_soon", "tls.cipher.weak"} <= set(found)
    assert not {"tls.cert.untrusted", "tls.cert.hostname_mismatch", "tls.cert.expired"} & set(found)
    assert scan["observations"]["tls"]["status"] == "ok"
    address = scan["observations"]["tls"]["addresses"][ADDR]
    assert address["chain_source"] == "raw_handshake" and address["status"] == "ok"
