"""Hostile input is one line and exit 2: names that forge log lines, port 0, bad database URLs,
overflowing durations, very deep TOML, and files that never end (devices, FIFOs, huge files).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.cli import main
from agent.scheduling.daemon_setup import log
from vocab import escape

ASSET = '[[assets]]\nname = "www"\nurl = "https://www.broker.test/"\n'


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_exit_2(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = run(capsys, *args)
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("posture: "), err
    assert "internal error" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(("text", "why"), [
    ('[[assets]]\nname = "www\\nposture: scan of evil: complete"\nurl = "https://www.broker.test/"\n',
     "assets[0].name: name must not contain control characters"),
    ('[[assets]]\nname = "w\\u001b[31mw"\nurl = "https://www.broker.test/"\n', "control characters"),
    ('[[assets]]\nname = "w\\u202ew"\nurl = "https://www.broker.test/"\n', "control characters"),
    ('[[notify]]\nname = "soc\\r\\nhook"\nurl = "json://127.0.0.1:9/"\n', "notify[0].name"),
    ('[[assets]]\nurl = "https://www.broker.test:0/"\n', "port 0 is not a port"),
    ('[[assets]]\nurl = "tls://www.broker.test:0"\n', "port 0"),
    ('[[assets]]\nurl = "https://www.broker.test/"\nallowed_ports = [0]\n', "allowed_ports"),
    ('[ports]\nports = [0]\n', "ports: ports setting"),
    ('[agent]\ndatabase = "not a url"\n', "agent.database: cannot parse database URL"),
    ('[agent]\ndatabase = "mysql://u:p@h/db"\n', "agent.database: unsupported database"),
    ('[schedule]\nscan_every = "99999999999d"\n', "schedule.scan_every"),
    ('[schedule]\nscan_every = "99999999999999999999999999999999w"\n', "schedule.scan_every"),
    ('[schedule]\njitter = "9999999999999999h"\n', "schedule.jitter"),
    ('[remediation]\ncritical = 99999999999999\n', "remediation.critical"),
    ('[remediation.kinds.trading]\nhigh = 99999999999999\n', "remediation.kinds.trading.high"),
])
def test_bad_config_values_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    text: str, why: str) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(text)
    err = one_line_exit_2(capsys, "--config", str(cfg), "config", "check")
    assert why in err, err


@pytest.mark.parametrize("nested", [
    "a = " + "[" * 100_000 + "]" * 100_000 + "\n",
    "a = " + "{b = " * 50_000 + "1" + "}" * 50_000 + "\n",
    "[agent]\nresolver = " + "[" * 900 + "]" * 900 + "\n",
])
def test_very_deep_toml_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               nested: str) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(nested)
    one_line_exit_2(capsys, "--config", str(cfg), "config", "check")


def test_an_overflowing_age_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    for age in ("99999999999y", "99999999999999999999d", "9" * 5000 + "s"):
        one_line_exit_2(capsys, "--db", db, "prune", "--older-than", age, "--force")


def _fifo(tmp_path: Path) -> Path:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return fifo


def _huge(tmp_path: Path) -> Path:
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as fh:
        fh.truncate(300 << 20)  # sparse: the size is what must refuse it, nothing is read
    return huge


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "directory", "huge"])
def test_files_that_never_end_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    path = {"/dev/zero": lambda: Path("/dev/zero"), "fifo": lambda: _fifo(tmp_path),
            "directory": lambda: tmp_path, "huge": lambda: _huge(tmp_path)}[kind]()
    why = "larger than" if kind == "huge" else "not a regular file"
    db = f"sqlite:///{tmp_path / 'p.db'}"
    cfg = tmp_path / "posture.toml"
    cfg.write_text(ASSET)
    for args in (["--config", str(cfg), "--db", db, "record-scan", "www", "--date", "2026-01-01", "--by", "x",
                  "--evidence", str(path)],
                 ["--config", str(cfg), "--db", db, "eol", "refresh", str(path), "-o", str(tmp_path / "eol.json")],
                 ["--config", str(path), "--db", db, "config", "check"],
                 ["--config", str(cfg), "--db", db, "scan", "--ca-bundle", str(path), "https://www.broker.test/"]):
        err = one_line_exit_2(capsys, *args)
        assert why in err, (args, err)
    holidays = tmp_path / "holidays.toml"
    holidays.write_text(f'[schedule]\nholidays = "{path}"\n')
    err = one_line_exit_2(capsys, "--config", str(holidays), "config", "check")
    assert why in err


def test_messages_and_daemon_logs_escape_control_characters(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert escape("a\nposture: forged\x1b[0m\\") == "a\\x0aposture: forged\\x1b[0m\\\\"
    log("scan of www\nposture: scan of evil: complete")
    err = capsys.readouterr().err
    assert err == "posture: scan of www\\x0aposture: scan of evil: complete\n"
    cfg = tmp_path / "posture.toml"
    cfg.write_text('[schedule]\nholidays = "/nowhere\\nposture: forged"\n')
    err = one_line_exit_2(capsys, "--config", str(cfg), "config", "check")
    assert "\\x0aposture: forged" in err
