"""Children die with their parent: kill -9 of posture mid-nmap leaves no nmap behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_kill_9_of_posture_mid_nmap_kills_nmap(tmp_path: Path) -> None:
    cfg = tmp_path / "posture.toml"
    ports = ", ".join(str(p) for p in range(20000, 21500))
    cfg.write_text(f'[agent]\nresolver = "127.0.0.1:9"\n[ports]\nmax_rate = 1\nhost_timeout = 600\nports = [{ports}]\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POSTURE_ALLOW_ADDRESSES": "127.0.0.0/8"}
    # Something answers on the asset's port, so the scan reaches its probes (an unreachable
    # asset gets no port scan at all).
    listener = socket.create_server(("127.0.0.1", 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'p.db'}",
         "scan", "--probe", "ports", f"http://127.0.0.1:{listener.getsockname()[1]}/"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    nmap: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not nmap and proc.poll() is None:
            nmap = [c for c in _children(proc.pid) if _comm(c) == "nmap"]
            time.sleep(0.1)
        assert nmap, "no nmap started"
        time.sleep(0.5)
        assert all(_alive(pid) for pid in nmap)  # mid-scan: it would run for about 25 minutes
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        listener.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in nmap):
        time.sleep(0.1)
    left = [pid for pid in nmap if _alive(pid)]
    for pid in left:  # the test's own cleanup: these are the children of the process it started
        os.kill(pid, signal.SIGKILL)
    assert not left, "nmap outlived posture"


def _descendants(root: int) -> dict[int, str]:
    from tests.support.social_site import descendants

    return descendants(root)


@pytest.mark.slow
def test_kill_9_of_posture_mid_page_kills_chromium(tmp_path: Path) -> None:
    from tests.support import social_site as site
    from tests.support.servers import http_server

    cfg = tmp_path / "posture.toml"
    cfg.write_text('[agent]\nresolver = "127.0.0.1:9"\nprobe_timeout = 300\n'
                   '[social]\nbrowser = true\npage_timeout = 200\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POSTURE_ALLOW_ADDRESSES": "127.0.0.0/8"}
    with http_server(site.hang_routes()) as srv:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "--config", str(cfg), "--db", f"sqlite:///{tmp_path / 'p.db'}",
             "scan", "--probe", "social", f"http://127.0.0.1:{srv.port}/"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        browser: dict[int, str] = {}
        driver: list[int] = []
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                browser = {p: c for p, c in _descendants(proc.pid).items() if "--type=renderer" in c}
                if browser and any(s.path == "/spin" for s in srv.seen):
                    break
                time.sleep(0.2)
            assert browser, "no Chromium renderer started"
            everything = _descendants(proc.pid)
            browser = {p: c for p, c in everything.items() if "chromium" in c}
            driver = [p for p, c in everything.items() if p not in browser]
        finally:
            proc.send_signal(signal.SIGKILL)
            # Playwright's driver too, at the same moment: nobody is left to close the browser
            # politely, so only the kernel (the parent-death signal) can end it.
            for pid in driver:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(pid) for pid in browser):
            time.sleep(0.2)
        left = {pid: browser[pid] for pid in browser if _alive(pid)}
        for pid in left:  # the test's own cleanup: processes below the posture it started
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert not left, f"outlived posture: {sorted(c.split()[0] for c in left.values())}"
