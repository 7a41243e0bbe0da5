"""Issue 15: ``posture config check`` catches what would fail later, says which file it read, masks
every channel. Run as a subprocess, as a person would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SECRET = "s3cr3tT0ken"


def check(tmp_path: Path, text: str | None, *extra: str, name: str = "posture.toml",
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "agent"]
    run_env = dict(os.environ) | (env or {})
    run_env.pop("POSTURE_CONFIG", None)
    run_env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")  # no default config file there
    run_env.pop("CONFIGURATION_DIRECTORY", None)
    if text is not None:
        path = tmp_path / name
        path.write_text(text)
        args += ["--config", str(path)]
    return subprocess.run([*args, "config", "check", *extra], capture_output=True, text=True, timeout=60,
                          env=run_env)


def test_good_config_says_which_file_and_masks_channels(tmp_path: Path) -> None:
    text = (f'[[notify]]\nname = "soc"\nurl = "json://hooks.example.test:8443/hook/{SECRET}?token={SECRET}"\n'
            f'[[notify]]\nurl = "mailto://alerts:{SECRET}@mail.example.test"\nevents = ["digest"]\n'
            '[[assets]]\nurl = "https://www.broker.test/"\n')
    proc = check(tmp_path, text)
    assert proc.returncode == 0, proc.stderr
    assert f"read {tmp_path / 'posture.toml'}" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr
    assert "notify[0] soc (json://hooks.example.test:8443)  (alert, digest)" in proc.stdout
    assert "notify[1] mailto://" in proc.stdout and "(digest)" in proc.stdout
    js = check(tmp_path, text, "--format", "json")
    doc = json.loads(js.stdout)
    assert doc["valid"] is True and doc["config_file"] == str(tmp_path / "posture.toml")
    assert SECRET not in js.stdout and doc["channels"][1]["events"] == ["digest"]


def test_no_file_read_is_said(tmp_path: Path) -> None:
    proc = check(tmp_path, None)
    assert proc.returncode == 0, proc.stderr
    assert "read no config file" in proc.stdout
    assert json.loads(check(tmp_path, None, "--format", "json").stdout)["config_file"] is None


@pytest.mark.parametrize("text, expected", [
    (f'[[notify]]\nname = "pager"\nurl = "bogus://{SECRET}@x.test/"\n',
     "notify[0] (pager): Apprise has no service for the scheme 'bogus'"),
    (f'[[notify]]\nurl = "json://a.test/"\n[[notify]]\nurl = "mailtoo://{SECRET}@x.test/"\n',
     "notify[1]: Apprise has no service for the scheme 'mailtoo'"),
    ('[agent]\nca_bundle = "/nonexistent/ca.pem"\n', "agent.ca_bundle: "),
    ('[[assets]]\nurl = "https://169.254.169.254/"\n', "assets[0].url: posture refuses to scan"),
    ('[[assets]]\nurl = "https://x.test/"\n[[assets]]\nurl = "https://[fe80::1]/"\n',
     "assets[1].url: posture refuses to scan https://[fe80::1]/: fe80::1 is a link-local address"),
    ('[[assets]]\nurl = "https://169.254.10.1/"\n', "is a link-local address"),
    ('[[assets]]\nurl = "https://10.1.2.3/"\n', "is a private address (RFC 1918)"),
])
def test_problems_are_exit_2_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    proc = check(tmp_path, text)
    assert proc.returncode == 2, proc.stdout
    assert expected in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"posture: {tmp_path / 'posture.toml'}: ")
    assert SECRET not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    js = check(tmp_path, text, "--format", "json")
    assert js.returncode == 2 and json.loads(js.stdout)["valid"] is False


def test_an_allowed_private_address_passes(tmp_path: Path) -> None:
    text = '[agent]\nallow_addresses = ["10.0.0.0/8"]\n[[assets]]\nurl = "https://10.1.2.3/"\n'
    assert check(tmp_path, text).returncode == 0
    # metadata and link-local need an exact allow; a network never lets them through
    text = '[agent]\nallow_addresses = ["169.254.0.0/16"]\n[[assets]]\nurl = "https://169.254.169.254/"\n'
    proc = check(tmp_path, text)
    assert proc.returncode == 2 and "cloud metadata address" in proc.stderr


def test_localhost_is_judged_without_resolving(tmp_path: Path) -> None:
    text = '[[assets]]\nurl = "https://localhost:8443/"\n'
    refused = check(tmp_path, text, env={"POSTURE_ALLOW_ADDRESSES": ""})
    assert refused.returncode == 2 and "loopback address" in refused.stderr
    assert check(tmp_path, text, env={"POSTURE_ALLOW_ADDRESSES": "127.0.0.0/8"}).returncode == 0


def test_mailto_accepted(tmp_path: Path) -> None:
    proc = check(tmp_path, '[[notify]]\nurl = "mailto://user:pw@mail.example.test"\n')
    assert proc.returncode == 0, proc.stderr


def test_the_same_asset_twice_is_one_error(tmp_path: Path) -> None:
    text = '[[assets]]\nurl = "https://x.test/"\n[[assets]]\nurl = "https://X.test:443"\n'
    proc = check(tmp_path, text, name="05-dup.toml")
    assert proc.returncode == 2
    assert proc.stderr == (f"posture: {tmp_path / '05-dup.toml'}: assets[1].url: the same asset as assets[0] "
                           "(https://x.test/ once normalised)\n")


def test_duplicate_name_has_no_stray_characters(tmp_path: Path) -> None:
    text = ('[[assets]]\nname = "a"\nurl = "https://x.test/"\n'
            '[[assets]]\nname = "a"\nurl = "https://y.test/"\n')
    proc = check(tmp_path, text, name="05-dup-name.toml")
    assert proc.returncode == 2
    assert proc.stderr == f"posture: {tmp_path / '05-dup-name.toml'}: assets[1].name: duplicate asset name 'a'\n"
    assert ": :" not in proc.stderr


def test_scan_names_the_config_key_for_a_missing_ca_bundle(tmp_path: Path) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[agent]\nca_bundle = "/nonexistent/ca.pem"\n')
    proc = subprocess.run([sys.executable, "-m", "agent", "--config", str(cfg), "--db",
                           f"sqlite:///{tmp_path / 'p.db'}", "scan", "https://127.0.0.1:9/"],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 2 and "agent.ca_bundle" in proc.stderr and "--ca-bundle" not in proc.stderr
