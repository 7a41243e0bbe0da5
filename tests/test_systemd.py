"""The systemd units: ``systemd-analyze verify`` passes and the service's exposure score stays low.

CI runs no systemd, so both checks work offline on copies of the units whose
``ExecStart`` points at this checkout's ``posture`` (verify insists the binary exists;
the shipped units say /usr/local/bin/posture, where README's installation puts it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "systemd"
SHIPPED = "/usr/local/bin/posture"
MAX_EXPOSURE = 2.0  # systemd calls < 2.0 "OK"; the service scores 1.7 (see README)


@pytest.fixture
def units(tmp_path: Path) -> Path:
    posture = Path(sys.executable).with_name("posture")
    assert posture.is_file(), f"{posture} is missing (pip install -e . in the venv)"
    for unit in UNITS.iterdir():
        text = unit.read_text()
        assert text.count(SHIPPED) == (1 if unit.suffix == ".service" else 0), unit.name
        (tmp_path / unit.name).write_text(text.replace(SHIPPED, str(posture)))
    return tmp_path


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_units_verify(units: Path) -> None:
    result = analyze("verify", "./posture.service", "./posture-once.service", "./posture.timer",
                     "./posture-scheduler.service", "./posture-worker.service", cwd=units)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_verify_is_not_vacuous(units: Path) -> None:
    (units / "posture.service").write_text((units / "posture.service").read_text().replace(
        "Type=notify", "Type=notifyy"))
    result = analyze("verify", "./posture.service", cwd=units)
    assert "Failed to parse service type" in result.stderr


@pytest.mark.parametrize("unit", ["posture.service", "posture-once.service", "posture-scheduler.service",
                                  "posture-worker.service"])
def test_exposure_score_is_low(units: Path, unit: str) -> None:
    result = analyze("security", "--offline=true", f"./{unit}", cwd=units)
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) < MAX_EXPOSURE, result.stdout


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_service_is_a_hardened_notify_service() -> None:
    s = unit_settings("posture.service")
    assert s["Type"] == ["notify"] and s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"] and s["KillMode"] == ["mixed"]
    assert s["StateDirectory"] == ["posture"] and s["ConfigurationDirectory"] == ["posture"]
    assert s["CapabilityBoundingSet"] == [""] and s["AmbientCapabilities"] == [""]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "LockPersonality",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
                "RestrictRealtime", "RestrictSUIDSGID"):
        assert s[key] == ["yes"], key
    assert s["RestrictNamespaces"] == ["user pid net"]  # Chromium's sandbox, nothing else
    assert s["ProtectSystem"] == ["strict"] and s["UMask"] == ["0077"]
    assert s["SystemCallFilter"][0] == "@system-service" and s["SystemCallArchitectures"] == ["native"]
    assert s["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX AF_NETLINK"]
    assert s["User"] == ["posture"]
    # The one exception is explained right above it.
    text = (UNITS / "posture.service").read_text()
    assert re.search(r"# EXCEPTION: Chromium's V8 JIT.*\n.*\nMemoryDenyWriteExecute=no", text)


def test_timer_runs_the_once_service() -> None:
    timer = unit_settings("posture.timer")
    once = unit_settings("posture-once.service")
    assert timer["Unit"] == ["posture-once.service"] and timer["Persistent"] == ["true"]
    assert once["Type"] == ["oneshot"] and once["ExecStart"] == [f"{SHIPPED} run --once"]
    assert unit_settings("posture.service")["ExecStart"] == [f"{SHIPPED} run"]


@pytest.mark.parametrize("unit", ["posture.service", "posture-once.service", "posture-scheduler.service",
                                  "posture-worker.service"])
def test_services_have_a_memory_ceiling(unit: str) -> None:
    s = unit_settings(unit)
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    (value,) = s["MemoryMax"]
    size = int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)
    assert 256 << 20 <= size <= 4 << 30, value
    (high,) = s["MemoryHigh"]
    assert int(high[:-1]) * units[high[-1]] < size


HARDENING = ("User", "Group", "StateDirectory", "ConfigurationDirectory", "UMask", "NoNewPrivileges",
             "CapabilityBoundingSet", "AmbientCapabilities", "ProtectSystem", "ProtectHome", "PrivateTmp",
             "PrivateDevices", "PrivateUsers", "ProtectProc", "ProtectKernelTunables", "ProtectKernelModules",
             "ProtectKernelLogs", "ProtectControlGroups", "LockPersonality", "RestrictRealtime",
             "RestrictSUIDSGID", "RestrictNamespaces", "RestrictAddressFamilies", "SystemCallArchitectures",
             "SystemCallFilter", "MemoryMax", "MemoryDenyWriteExecute")


@pytest.mark.parametrize(("unit", "command"), [("posture-scheduler.service", "run"),
                                               ("posture-worker.service", "worker")])
def test_fleet_units_run_their_command_hardened_like_the_service(unit: str, command: str) -> None:
    s = unit_settings(unit)
    assert s["ExecStart"] == [f"{SHIPPED} {command}"] and s["Type"] == ["notify"]
    assert s["Restart"] == ["on-failure"] and s["KillMode"] == ["mixed"]
    assert "postgresql.service" in s["After"][0]
    service = unit_settings("posture.service")
    for key in HARDENING:
        assert s[key] == service[key], key
    # Only the scheduler pings the watchdog; the single-machine units conflict with it.
    assert ("WatchdogSec" in s) == (command == "run")
    assert "posture.timer" in s["Conflicts"][0]
