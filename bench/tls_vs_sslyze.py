"""posture's TLS strength scan against SSLyze's default scan, on the same local endpoints.

Starts N HTTPS endpoints (one nginx, one ``server`` block per 127.0.6.x address,
four configurations in turn: modern, legacy TLS 1.0/1.1, static RSA only,
anonymous + NULL suites), then runs, each in its own subprocess:

* posture: ``scan_suites`` + ``judge_suites`` on every endpoint;
* SSLyze: ``Scanner().queue_scans`` with default ``ServerScanRequest`` (all scan commands).

and prints each tool's wall time, TCP connections per endpoint (nginx's
stub_status ``accepts`` counter, so both are counted the same way), peak RSS of
the subprocess (``os.wait4`` rusage), and whether the verdicts on
tls.protocol.legacy / tls.cipher.weak / tls.cipher.no_forward_secrecy agree
(SSLyze's accepted suites are judged with posture's suite table).

SSLyze is AGPL: it is used here only, never by the product. It also pins
cryptography < 47, so it lives in its own virtualenv (``--sslyze-python``; by
default ~/.cache/posture-bench/sslyze-venv, created with pip on first use) and
its worker imports nothing from posture.

    .venv/bin/python bench/tls_vs_sslyze.py                  # 20 and 200 endpoints
    .venv/bin/python bench/tls_vs_sslyze.py --sizes 20 --concurrency 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLAVOURS: dict[str, dict[str, str]] = {
    "modern": {"protocols": "TLSv1.2 TLSv1.3", "ciphers": "ECDHE+AESGCM:ECDHE+CHACHA20"},
    "legacy": {"protocols": "TLSv1 TLSv1.1 TLSv1.2", "ciphers": "ECDHE+AES:RSA+AES:@SECLEVEL=0"},
    "rsa_only": {"protocols": "TLSv1.2", "ciphers": "AES128-GCM-SHA256:AES256-SHA"},
    "weak": {"protocols": "TLSv1.2", "ciphers": "ECDHE+AESGCM:aNULL:NULL-SHA256:@SECLEVEL=0"},
}
LEGACY = {"SSLv3", "TLSv1.0", "TLSv1.1"}


# ---------------------------------------------------------------- verdicts, one shape for both tools


def verdicts_from_suites(suites: dict[str, list[str]], preferred_fs: bool | None) -> dict[str, Any]:
    """The three checks' verdicts from accepted suites per protocol.

    ``preferred_fs``: whether the suite picked from a full offer at the best
    version is forward-secret; None derives it from the accepted suites (SSLyze
    reports no preference).
    """
    from probes.tls.suite_data import suite_table

    table = suite_table()
    legacy = sorted(p for p, names in suites.items() if names and p in LEGACY)
    weak = {p: sorted(s.name for s in table.lookup(names) if s.weak) for p, names in suites.items()}
    weak = {p: names for p, names in weak.items() if names}
    tls13 = bool(suites.get("TLSv1.3"))
    if preferred_fs is None:
        best = [p for p in ("TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3") if suites.get(p)]
        preferred_fs = bool(best) and any(s.forward_secret for s in table.lookup(suites[best[0]]))
    return {"legacy": legacy, "weak": weak, "no_forward_secrecy": not tls13 and not preferred_fs}


# ---------------------------------------------------------------- workers (run in subprocesses)


def posture_worker(targets: list[dict[str, Any]], concurrency: int) -> list[dict[str, Any]]:
    from probes.net.connector import Connector
    from probes.net.scope import Pins, parse_networks
    from probes.tls.suites import judge_suites, scan_suites

    async def one(target: dict[str, Any], gate: asyncio.Semaphore) -> dict[str, Any]:
        async with gate:
            host, address, port = target["host"], target["address"], target["port"]
            pins = Pins.of({host: [address]}, allow=parse_networks(["127.0.6.0/24"]))
            scan = await scan_suites(Connector(pins), host, address, port, sni=host, deadline=60)
            findings = {f.check_id: f for f in judge_suites(host, port, [scan])}
        weak = findings.get("tls.cipher.weak")
        legacy = findings.get("tls.protocol.legacy")
        return {
            "name": target["name"],
            "connections": scan.connections,
            "verdicts": {
                "legacy": sorted(legacy.evidence["protocols"]) if legacy else [],
                "weak": {p: sorted(n) for p, n in weak.evidence["suites"].items()} if weak else {},
                "no_forward_secrecy": "tls.cipher.no_forward_secrecy" in findings,
            },
        }

    async def run() -> list[dict[str, Any]]:
        gate = asyncio.Semaphore(concurrency)
        return list(await asyncio.gather(*(one(t, gate) for t in targets)))

    return asyncio.run(run())


def sslyze_worker(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs under SSLyze's own interpreter: imports nothing from posture."""
    from sslyze import (  # type: ignore[import-not-found,attr-defined,unused-ignore]
        Scanner,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )

    by_key = {(t["address"], t["port"]): t for t in targets}
    requests = [
        ServerScanRequest(
            server_location=ServerNetworkLocation(hostname=t["host"], port=t["port"], ip_address=t["address"]),
            network_configuration=ServerNetworkConfiguration(tls_server_name_indication=t["host"]),
        )
        for t in targets
    ]
    scanner = Scanner()  # SSLyze's defaults: 10 servers at once, 5 connections each
    scanner.queue_scans(requests)
    attrs = {"SSLv3": "ssl_3_0_cipher_suites", "TLSv1.0": "tls_1_0_cipher_suites",
             "TLSv1.1": "tls_1_1_cipher_suites", "TLSv1.2": "tls_1_2_cipher_suites",
             "TLSv1.3": "tls_1_3_cipher_suites"}
    out = []
    for result in scanner.get_results():
        loc = result.server_location
        target = by_key[(loc.ip_address, loc.port)]
        suites: dict[str, list[str]] = {}
        for proto, attr in attrs.items():
            attempt = getattr(result.scan_result, attr) if result.scan_result else None
            if attempt is not None and attempt.result is not None:
                suites[proto] = [c.cipher_suite.name for c in attempt.result.accepted_cipher_suites]
        out.append({"name": target["name"], "suites": suites, "status": str(result.scan_status)})
    return out


# ---------------------------------------------------------------- driver


SSLYZE_VENV = Path.home() / ".cache" / "posture-bench" / "sslyze-venv"


def sslyze_python(given: str | None) -> str:
    """An interpreter with SSLyze: the one given, or a private virtualenv made on first use."""
    if given:
        return given
    python = SSLYZE_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {SSLYZE_VENV} for SSLyze (it pins cryptography < 47)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(SSLYZE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "sslyze>=6,<7"], check=True)
    return str(python)


def run_worker(tool: str, python: str, targets_file: Path, concurrency: int) -> tuple[float, int, list[dict[str, Any]]]:
    """Run one tool in a subprocess; wall seconds, peak RSS (KiB) and its output."""
    out_file = targets_file.with_suffix(f".{tool}.json")
    cmd = [python, __file__, "--worker", tool, "--targets", str(targets_file), "--out", str(out_file),
           "--concurrency", str(concurrency)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} worker failed with {proc.returncode}")
    return wall, int(usage.ru_maxrss), json.loads(out_file.read_text())


def bench(size: int, workdir: Path, cert: Path, key: Path, concurrency: int,
          sslyze: str | None) -> dict[str, Any]:
    from tests.support.tls_servers import Endpoint, NginxSite, free_port, nginx_tls, stub_accepts

    names = list(FLAVOURS)
    targets, sites = [], []
    for i in range(size):
        address = f"127.0.6.{i + 1}"
        flavour = names[i % len(names)]
        endpoint = Endpoint(address, free_port(address))
        config = FLAVOURS[flavour]
        sites.append(NginxSite(endpoint, protocols=config["protocols"], ciphers=config["ciphers"]))
        targets.append({"name": f"e{i}", "host": f"e{i}.bench.test", "address": address, "port": endpoint.port,
                        "flavour": flavour})
    targets_file = workdir / f"targets-{size}.json"
    targets_file.write_text(json.dumps(targets))
    status = Endpoint("127.0.6.250", free_port("127.0.6.250"))
    report: dict[str, Any] = {"size": size}
    with nginx_tls(workdir / f"nginx-{size}", cert, key, sites, workers=2, status=status):
        tools = {"posture": sys.executable, **({"sslyze": sslyze} if sslyze else {})}
        outputs = {}
        for tool, python in tools.items():
            before = stub_accepts(status)
            wall, rss, output = run_worker(tool, python, targets_file, concurrency)
            accepted = stub_accepts(status) - before - 1  # minus the status request itself
            for entry in output:
                if "suites" in entry:  # SSLyze's accepted suites, judged with posture's suite table
                    entry["verdicts"] = verdicts_from_suites(entry["suites"], None)
            outputs[tool] = {o["name"]: o for o in output}
            report[tool] = {"wall_s": round(wall, 2), "connections_per_host": round(accepted / size, 1),
                            "peak_rss_mib": round(rss / 1024, 1)}
    if sslyze:
        agree = sum(outputs["posture"][t["name"]]["verdicts"] == outputs["sslyze"][t["name"]]["verdicts"]
                    for t in targets)
        report["verdicts_agree"] = f"{agree}/{size}"
        report["disagreements"] = [
            {"name": t["name"], "flavour": t["flavour"], "posture": outputs["posture"][t["name"]]["verdicts"],
             "sslyze": outputs["sslyze"][t["name"]]["verdicts"]}
            for t in targets
            if outputs["posture"][t["name"]]["verdicts"] != outputs["sslyze"][t["name"]]["verdicts"]
        ][:5]
        report["speedup"] = round(report["sslyze"]["wall_s"] / report["posture"]["wall_s"], 1)
        report["memory_ratio"] = round(report["posture"]["peak_rss_mib"] / report["sslyze"]["peak_rss_mib"], 2)
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"\n== {report['size']} endpoints ==")
    print(f"{'tool':<8} {'wall s':>8} {'conns/host':>11} {'peak RSS MiB':>13}")
    for tool in ("posture", "sslyze"):
        if tool in report:
            r = report[tool]
            print(f"{tool:<8} {r['wall_s']:>8} {r['connections_per_host']:>11} {r['peak_rss_mib']:>13}")
    if "verdicts_agree" in report:
        print(f"verdicts agree: {report['verdicts_agree']}; posture {report['speedup']}x faster, "
              f"{report['memory_ratio']}x the memory")
        for d in report["disagreements"]:
            print(f"  disagreement {d}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--concurrency", type=int, default=10, help="endpoints posture scans at once (SSLyze: 10)")
    parser.add_argument("--skip-sslyze", action="store_true")
    parser.add_argument("--sslyze-python", help=f"interpreter with sslyze installed (default: {SSLYZE_VENV})")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON too")
    parser.add_argument("--worker", choices=["posture", "sslyze"], help=argparse.SUPPRESS)
    parser.add_argument("--targets", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        targets = json.loads(args.targets.read_text())
        result = posture_worker(targets, args.concurrency) if args.worker == "posture" else sslyze_worker(targets)
        args.out.write_text(json.dumps(result))
        return 0

    from tests.support.certs import Authority, write_pair

    sslyze = None if args.skip_sslyze else sslyze_python(args.sslyze_python)
    authority = Authority("posture bench root")
    leaf = authority.leaf("bench.test")
    reports = []
    with tempfile.TemporaryDirectory(prefix="posture-bench-") as tmp:
        workdir = Path(tmp)
        cert, key = write_pair(workdir, "leaf", authority.chain_pem(leaf), leaf.key_pem)
        for size in args.sizes:
            report = bench(size, workdir, cert, key, args.concurrency, sslyze)
            print_report(report)
            reports.append(report)
    if args.json:
        print(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
