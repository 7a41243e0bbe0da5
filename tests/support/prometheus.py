"""A real Prometheus server (Debian's ``prometheus``) on loopback, scraping targets the test names.

Its config and TSDB live in a temporary directory; it is stopped by PID. Nothing else is
touched: no systemd unit, no /etc/prometheus.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import closed_port

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with _OPENER.open(f"{self.url}/api/v1/{path}?{query}", timeout=5) as resp:
            doc = json.load(resp)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=expr)["result"]
        return result


def binary() -> str | None:
    return shutil.which("prometheus")


@contextmanager
def prometheus(workdir: Path, targets: list[str], *, job: str = "posture",
               interval: str = "1s") -> Iterator[Prometheus]:
    exe = binary()
    assert exe, "prometheus is not installed (bash scripts/setup.sh --dev)"
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
        f"scrape_configs:\n  - job_name: {job}\n    scrape_interval: {interval}\n    scrape_timeout: {interval}\n"
        f"    static_configs:\n      - targets: {json.dumps(targets)}\n"
    )
    port = closed_port("127.0.0.1")
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=workdir)
    server = Prometheus(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with _OPENER.open(f"{server.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start:\n{log.read_text('utf-8', 'replace')}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
