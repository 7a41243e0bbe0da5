"""A CA bundle and an end-of-life data file are parsed before they are used, by ``config check``
and when a scan starts: a bundle with no usable certificate (DER, plain text, a broken or cut
block) or an ``eol_data`` file posture cannot parse is one line, exit 2, naming the key, before
any probe runs. Without it the bundle added nothing to the system store (every asset of the
internal CA reported ``tls.cert.untrusted``) and the bad EOL file failed the http probe of every
scan (each one partial). The CLI runs as a subprocess against a real HTTPS site and DNS server."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from tests.support.certs import Authority
from tests.support.site_lab import broker_site

HOST = "127.0.0.93"
SITE = "www.trustfile.test"
NOW = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with broker_site(tmp_path_factory.mktemp("trustfile-lab"), SITE, HOST, "trustfile test root") as site:
        yield site


@pytest.fixture(scope="module")
def files(lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real files: the lab CA's root as DER, text, broken and cut-short PEM, good and bad EOL data."""
    from probes.eol.data import default_eol_data, write_eol_data

    d = tmp_path_factory.mktemp("trustfile-files")
    pem = Path(lab["bundle"]).read_bytes()
    other = Authority("trustfile other root", intermediate=False).root.cert_pem
    out = {"pem": Path(lab["bundle"]), "der": d / "root.der", "text": d / "hostname", "broken": d / "broken.pem",
           "cut": d / "cut.pem", "key": d / "key.pem", "several": d / "several.pem", "eol": d / "eol.json",
           "eol_text": d / "eol.txt", "eol_shape": d / "eol-shape.json"}
    from cryptography import x509

    out["der"].write_bytes(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER))
    out["text"].write_text("buildhost\n")
    # A valid certificate either side of a block that does not parse: half a trust store is refused too.
    out["broken"].write_bytes(other + b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" + pem)
    out["cut"].write_bytes(pem + other[: len(other) // 2])
    out["several"].write_bytes(other + pem)
    out["key"].write_bytes(Authority("trustfile key", intermediate=False).root.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    write_eol_data(out["eol"], default_eol_data())
    out["eol_text"].write_text("buildhost\n")
    out["eol_shape"].write_text(json.dumps({"format": 1, "updated": "2026-01-01", "source": "x", "products": []}))
    return out


BUNDLE_ERRORS = {
    "der": "is a DER (binary) certificate, not PEM: convert it with openssl x509 -inform der -in ",
    "text": "holds no PEM certificate (no -----BEGIN CERTIFICATE-----): it would add no CA to the system's trust",
    "broken": "certificate 2 of 3 (line ",
    "cut": "has no END line",
    "key": "holds no PEM certificate (-----BEGIN PRIVATE KEY----- blocks",
}
EOL_ERRORS = {
    "eol_text": "not JSON: Expecting value at line 1",
    "eol_shape": "eol data: products must be a non-empty object",
}


def posture(tmp_path: Path, *args: str, config: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("POSTURE_CONFIG", None)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")  # no default config file there
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")  # no refreshed eol.json there
    env.pop("STATE_DIRECTORY", None)
    argv = [sys.executable, "-m", "agent", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--now", NOW.isoformat()]
    if config is not None:
        (tmp_path / "posture.toml").write_text(config)
        argv += ["--config", str(tmp_path / "posture.toml")]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=120, env=env)


def one_line_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("posture: "), proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    return proc.stderr


def site_config(lab: dict[str, Any], *, ca_bundle: Path | None = None, eol_data: Path | None = None) -> str:
    text = f'[agent]\nresolver = "{lab["dns"]}"\n'
    if ca_bundle is not None:
        text += f'ca_bundle = "{ca_bundle}"\n'
    if eol_data is not None:
        text += f'[ports]\neol_data = "{eol_data}"\n'
    return text + f'[[assets]]\nname = "www"\nurl = "https://{SITE}:{lab["port"]}/"\n'


def stored_scans(tmp_path: Path) -> int:
    db = tmp_path / "p.db"
    if not db.exists():
        return 0
    with closing(sqlite3.connect(db)) as conn:
        (count,) = conn.execute("SELECT count(*) FROM scans").fetchone()
    return int(count)


SCAN = ("scan", "--probe", "tls", "--probe", "http", "--format", "json")


# ---------------------------------------------------------------- posture config check


@pytest.mark.parametrize("kind", sorted(BUNDLE_ERRORS))
def test_config_check_refuses_a_ca_bundle_without_usable_certificates(
        lab: dict[str, Any], files: dict[str, Path], tmp_path: Path, kind: str) -> None:
    err = one_line_exit_2(posture(tmp_path, "config", "check", config=site_config(lab, ca_bundle=files[kind])))
    assert err.startswith(f"posture: {tmp_path / 'posture.toml'}: agent.ca_bundle: {files[kind]}"), err
    assert BUNDLE_ERRORS[kind] in err, err


@pytest.mark.parametrize("kind", sorted(EOL_ERRORS))
def test_config_check_refuses_eol_data_posture_cannot_parse(
        lab: dict[str, Any], files: dict[str, Path], tmp_path: Path, kind: str) -> None:
    err = one_line_exit_2(posture(tmp_path, "config", "check", config=site_config(lab, eol_data=files[kind])))
    assert err.startswith(f"posture: {tmp_path / 'posture.toml'}: ports.eol_data: {files[kind]}: "), err
    assert EOL_ERRORS[kind] in err, err


def test_config_check_passes_a_pem_bundle_and_eol_data_it_can_read(
        lab: dict[str, Any], files: dict[str, Path], tmp_path: Path) -> None:
    proc = posture(tmp_path, "config", "check", config=site_config(lab, ca_bundle=files["pem"], eol_data=files["eol"]))
    assert proc.returncode == 0, proc.stderr
    assert "config OK" in proc.stdout and proc.stderr == ""


# ---------------------------------------------------------------- posture scan


@pytest.mark.parametrize("kind", ["der", "text", "broken"])
def test_scan_refuses_such_a_bundle_before_any_probe(
        lab: dict[str, Any], files: dict[str, Path], tmp_path: Path, kind: str) -> None:
    seen = len(lab["www"].seen)
    url = f"https://{SITE}:{lab['port']}/"
    given = one_line_exit_2(posture(tmp_path, *SCAN, url, "--resolver", lab["dns"], "--ca-bundle", str(files[kind])))
    assert given.startswith(f"posture: --ca-bundle: {files[kind]}") and BUNDLE_ERRORS[kind] in given, given
    configured = one_line_exit_2(posture(tmp_path, *SCAN, config=site_config(lab, ca_bundle=files[kind])))
    assert configured.startswith(f"posture: agent.ca_bundle (config): {files[kind]}"), configured
    assert BUNDLE_ERRORS[kind] in configured, configured
    assert len(lab["www"].seen) == seen  # nothing was sent to the site
    assert stored_scans(tmp_path) == 0  # nor was a scan (with its false tls.cert.untrusted) recorded


@pytest.mark.parametrize("kind", sorted(EOL_ERRORS))
def test_scan_refuses_eol_data_posture_cannot_parse(
        lab: dict[str, Any], files: dict[str, Path], tmp_path: Path, kind: str) -> None:
    seen = len(lab["www"].seen)
    config = site_config(lab, ca_bundle=files["pem"], eol_data=files[kind])
    err = one_line_exit_2(posture(tmp_path, *SCAN, config=config))
    assert err.startswith(f"posture: ports.eol_data (config): {files[kind]}: ") and EOL_ERRORS[kind] in err, err
    assert len(lab["www"].seen) == seen and stored_scans(tmp_path) == 0  # no partial scan recorded


def test_a_refreshed_eol_file_in_the_state_directory_is_checked_too(
        lab: dict[str, Any], files: dict[str, Path], tmp_path: Path) -> None:
    state = tmp_path / "xdg-state" / "posture"
    state.mkdir(parents=True)
    (state / "eol.json").write_text("{not json")
    err = one_line_exit_2(posture(tmp_path, *SCAN, config=site_config(lab, ca_bundle=files["pem"])))
    assert err.startswith(f"posture: end-of-life data (posture eol refresh wrote it): {state / 'eol.json'}: "), err
    assert "not JSON" in err


def test_a_pem_bundle_and_good_eol_data_still_scan_trusted(
        lab: dict[str, Any], files: dict[str, Path], tmp_path: Path) -> None:
    for bundle in ("pem", "several"):
        proc = posture(tmp_path, *SCAN, config=site_config(lab, ca_bundle=files[bundle], eol_data=files["eol"]))
        assert proc.returncode == 0, proc.stderr
        (scan,) = json.loads(proc.stdout)["scans"]
        ran = {p["probe"]: p["outcome"] for p in scan["probes"]}
        assert ran["tls"] == ran["http"] == "ran", scan["probes"]
        assert scan["errors"] == []
        checks = {f["check_id"] for f in scan["findings"]}
        assert "tls.cert.untrusted" not in checks and "http.hsts.short_max_age" in checks
