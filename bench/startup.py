"""Start-up cost of the ``posture`` command line: ``--help``, ``scan --help`` and a scan of one local endpoint.

Each command runs N times (default 15) as a fresh process; the figure is the
median wall time, beside floors and peers run the same way: ``python -c pass``
(the interpreter alone, with the virtualenv's site-packages), ``nmap --version``
and, when the ``bench/tls_vs_sslyze.py`` virtualenv exists, ``sslyze --help``.

The scan is the real entry point (``posture`` next to this interpreter)::

    posture --config C --db sqlite:///D scan --probe tls --probe http --format json

against one nginx ``server`` block (TLS 1.2 and 1.3, a certificate from a
generated CA) on 127.1.0.1, named ``e0.bench.test`` by a dnsmasq on 127.1.250.2.
"first scan" stores into a new SQLite file each time (the schema is created);
"repeat scan" stores into one file already at the newest schema, as the daemon's
and a pipeline's scans do.

Goals (issue 21): ``--help`` and ``scan --help`` under 0.15 s; a scan of one local
endpoint (tls+http) under 0.6 s.

    .venv/bin/python bench/startup.py
    .venv/bin/python bench/startup.py --runs 30 --json

Everything listens on 127.1.0.0/16 only and stops when the bench ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL_HELP_S = 0.15
GOAL_SCAN_S = 0.6
SSLYZE = Path.home() / ".cache" / "posture-bench" / "sslyze-venv" / "bin" / "sslyze"


def posture_command() -> list[str]:
    """The installed ``posture`` script beside this interpreter, else ``python -m agent``."""
    script = Path(sys.executable).with_name("posture")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent"]


def run_once(cmd: Sequence[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, from ``wait4``) of one run of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} exited with {code}: {stderr.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def medians(cmd: Sequence[str], runs: int, before: Callable[[int], None] | None = None) -> tuple[float, float]:
    """Median wall and median CPU seconds of ``runs`` fresh processes (one warm-up run first, not counted)."""
    walls, cpus = [], []
    for i in range(runs + 1):
        if before is not None:
            before(i)
        wall, cpu = run_once(cmd)
        if i:
            walls.append(wall)
            cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def bytecode_present() -> bool:
    """Whether the project's modules have bytecode a run can load instead of compiling them."""
    import importlib.util

    return Path(importlib.util.cache_from_source(str(REPO / "agent" / "cli.py"))).is_file()


def start_endpoint(stack: ExitStack, workdir: Path) -> Path:
    """One nginx site and a dnsmasq naming it; returns a config listing it as the one asset."""
    from tests.support.certs import Authority, write_pair
    from tests.support.dnsserver import DnsServer
    from tests.support.tls_servers import Endpoint, NginxSite, free_port, nginx_tls

    authority = Authority("posture startup bench root")
    leaf = authority.leaf("*.bench.test")
    cert, key = write_pair(workdir, "leaf", authority.chain_pem(leaf), leaf.key_pem)
    bundle = authority.write_trust(workdir / "ca.pem")
    endpoint = Endpoint("127.1.0.1", free_port("127.1.0.1"))
    site = NginxSite(endpoint, protocols="TLSv1.2 TLSv1.3", ciphers="ECDHE+AESGCM:ECDHE+CHACHA20")
    stack.enter_context(nginx_tls(workdir / "nginx", cert, key, [site], workers=2))
    dns = DnsServer({"e0.bench.test": endpoint.host}, zones=("bench.test",), listen="127.1.250.2").start()
    stack.callback(dns.stop)
    config = workdir / "posture.toml"
    config.write_text("\n".join([
        "[agent]",
        f'resolver = "{dns.address}"',
        'allow_addresses = ["127.1.0.0/16"]  # the bench target lives on loopback',
        f'ca_bundle = "{bundle}"',
        "",
        "[[assets]]",
        'name = "e0"',
        f'url = "https://e0.bench.test:{endpoint.port}/"',
        "",
    ]))
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="runs per command (median; default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    posture = posture_command()
    rows: list[tuple[str, float, float, float | None]] = []  # (what, median wall s, median CPU s, goal s)

    def measure(label: str, cmd: Sequence[str], goal: float | None = None,
                before: Callable[[int], None] | None = None) -> None:
        rows.append((label, *medians(cmd, args.runs, before), goal))

    measure("python -c pass (floor)", [sys.executable, "-c", "pass"])
    measure("posture --help", [*posture, "--help"], GOAL_HELP_S)
    measure("posture scan --help", [*posture, "scan", "--help"], GOAL_HELP_S)
    if shutil.which("nmap"):
        measure("nmap --version (peer)", ["nmap", "--version"])
    if SSLYZE.exists():
        measure("sslyze --help (peer)", [str(SSLYZE), "--help"])
    with tempfile.TemporaryDirectory(prefix="posture-startup-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        config = start_endpoint(stack, workdir)
        scan = ["scan", "--probe", "tls", "--probe", "http", "--format", "json"]

        def fresh_db(i: int) -> None:
            (workdir / "fresh.db").unlink(missing_ok=True)

        fresh = [*posture, "--config", str(config), "--db", f"sqlite:///{workdir / 'fresh.db'}", *scan]
        measure("posture scan, 1 endpoint tls+http (first scan, new DB)", fresh, GOAL_SCAN_S, fresh_db)
        repeat = [*posture, "--config", str(config), "--db", f"sqlite:///{workdir / 'repeat.db'}", *scan]
        measure("posture scan, 1 endpoint tls+http (repeat scan)", repeat, GOAL_SCAN_S)
    width = max(len(r[0]) for r in rows)
    print(f"{'command':<{width}}  wall s  CPU s  goal s  verdict   (median of {args.runs} runs each)")
    for label, wall, cpu, goal in rows:
        verdict = "" if goal is None else ("met" if wall <= goal else "MISSED")
        print(f"{label:<{width}}  {wall:6.3f}  {cpu:5.3f}  {'' if goal is None else f'{goal:6.2f}':>6}  {verdict}")
    if not bytecode_present():
        print("note: the project's bytecode (__pycache__) is missing, so every run compiles it from source; "
              "scripts/setup.sh writes it (python -m compileall)")
    if args.json:
        print(json.dumps([{"command": r[0], "wall_s": round(r[1], 4), "cpu_s": round(r[2], 4), "goal_s": r[3]}
                          for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
