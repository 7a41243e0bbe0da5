"""Throughput of a full ``posture scan`` (tls, http, edge and leak probes) against N local HTTPS endpoints.

For each N (default 20, 200, 1000) the bench starts one nginx with N ``server``
blocks, each on its own loopback address (127.1.x.y) with a certificate from a
generated CA, and a dnsmasq that resolves ``eN.bench.test`` to them; writes a
config listing the N assets; and runs the real CLI in a subprocess::

    python -m agent --config C --db sqlite:///... scan --probe tls --probe http --probe edge --probe leak

It prints wall time, endpoints per second, TCP connections per endpoint (nginx's
stub_status ``accepts`` counter: every connection any probe made), and the peak RSS
of the subprocess (``os.wait4`` rusage). SSLyze's default scan of the same
endpoints (the TLS part only) runs beside it through the runner in
``bench/tls_vs_sslyze.py`` (its own virtualenv: SSLyze is AGPL and never a
dependency of posture).

Goals on a 2-core machine: 200 endpoints in under 20 s, cost linear in N, peak
memory under 300 MB at 1000.

    .venv/bin/python bench/throughput.py                     # 20, 200, 1000, with SSLyze
    .venv/bin/python bench/throughput.py --sizes 200 --skip-sslyze
    .venv/bin/python bench/throughput.py --sizes 200 --profile /tmp/scan.svg   # py-spy flame graph

Everything listens on 127.1.0.0/16 only and stops when the bench ends.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROBES = ("tls", "http", "edge", "leak")
GOAL_200_S = 20.0
GOAL_RSS_MIB_1000 = 300.0


def _sibling(name: str) -> ModuleType:
    """Another bench script as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def address(i: int) -> str:
    return f"127.1.{i // 250}.{i % 250 + 1}"


@dataclass(frozen=True)
class Lab:
    targets: list[dict[str, Any]]
    config: Path
    status: Any  # tls_servers.Endpoint of the stub_status page


def start_lab(stack: ExitStack, size: int, workdir: Path, cert: Path, key: Path, bundle: Path,
              concurrency: int) -> Lab:
    from tests.support.dnsserver import DnsServer
    from tests.support.tls_servers import Endpoint, NginxSite, free_port, nginx_tls

    targets: list[dict[str, Any]] = []
    sites = []
    for i in range(size):
        endpoint = Endpoint(address(i), free_port(address(i)))
        # What a typical broker front end offers: TLS 1.2 and 1.3, ECDHE suites.
        sites.append(NginxSite(endpoint, protocols="TLSv1.2 TLSv1.3", ciphers="ECDHE+AESGCM:ECDHE+CHACHA20"))
        targets.append({"name": f"e{i}", "host": f"e{i}.bench.test", "address": endpoint.host,
                        "port": endpoint.port})
    status = Endpoint("127.1.250.1", free_port("127.1.250.1"))
    stack.enter_context(nginx_tls(workdir / f"nginx-{size}", cert, key, sites, workers=2, status=status))
    dns = DnsServer({t["host"]: t["address"] for t in targets}, zones=("bench.test",)).start()
    stack.callback(dns.stop)
    lines = [
        "[agent]",
        f'resolver = "{dns.address}"',
        'allow_addresses = ["127.1.0.0/16"]  # the bench targets live on loopback',
        f'ca_bundle = "{bundle}"',
        f"concurrency = {concurrency}",
        "",
    ]
    for t in targets:
        lines += ["[[assets]]", f'name = "{t["name"]}"', f'url = "https://{t["host"]}:{t["port"]}/"', ""]
    config = workdir / f"posture-{size}.toml"
    config.write_text("\n".join(lines))
    return Lab(targets, config, status)


def cpu_of_children() -> float:
    """CPU seconds (user + system) of every child process waited for so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_posture(lab: Lab, db: str, out: Path, profile: Path | None,
                probes: tuple[str, ...] = PROBES) -> tuple[float, int, dict[str, Any]]:
    """The CLI in a subprocess: wall seconds, peak RSS (KiB), and its JSON output."""
    cmd = [sys.executable, "-m", "agent", "--config", str(lab.config), "--db", db, "scan", "--format", "json"]
    for probe in probes:
        cmd += ["--probe", probe]
    if profile is not None:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        fmt = ["--format", "raw"] if profile.suffix == ".txt" else []  # collapsed stacks, for grep and sort
        cmd = [spy, "record", "--rate", "200", "--subprocesses", *fmt, "-o", str(profile), "--", *cmd]
    start = time.perf_counter()
    with out.open("wb") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1: some scan failed; the figures still stand, the summary says which
        raise SystemExit(f"posture scan exited with {code}: {stderr.decode(errors='replace')[-2000:]}")
    text = out.read_text()
    return wall, int(usage.ru_maxrss), json.loads(text[text.index("{"):])  # py-spy prints a line first


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    scans = doc["scans"]
    statuses: dict[str, int] = {}
    findings: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in scans:
        statuses[s["status"]] = statuses.get(s["status"], 0) + 1
        for f in s["findings"]:
            findings[f["check_id"]] = findings.get(f["check_id"], 0) + 1
        for e in s["errors"]:
            errors[e["probe"]] = errors.get(e["probe"], 0) + 1
    return {"statuses": statuses, "findings": findings, "errors": errors}


def bench(size: int, workdir: Path, pki: tuple[Path, Path, Path], args: argparse.Namespace,
          sslyze: str | None) -> dict[str, Any]:
    from tests.support.tls_servers import stub_accepts

    cert, key, bundle = pki
    report: dict[str, Any] = {"size": size}
    with ExitStack() as stack:
        lab = start_lab(stack, size, workdir, cert, key, bundle, args.concurrency)
        db = f"sqlite:///{workdir / f'bench-{size}.db'}"
        before, cpu = stub_accepts(lab.status), cpu_of_children()
        wall, rss, doc = run_posture(lab, db, workdir / f"scan-{size}.json", args.profile, tuple(args.probes))
        accepted = stub_accepts(lab.status) - before - 1  # minus the status request itself
        report["posture"] = {
            "wall_s": round(wall, 2), "cpu_s": round(cpu_of_children() - cpu, 2),
            "endpoints_per_s": round(size / wall, 1),
            "connections_per_endpoint": round(accepted / size, 1), "peak_rss_mib": round(rss / 1024, 1),
            **summarise(doc),
        }
        if sslyze:
            runner = _sibling("tls_vs_sslyze")
            targets_file = workdir / f"targets-{size}.json"
            targets_file.write_text(json.dumps(lab.targets))
            before, cpu = stub_accepts(lab.status), cpu_of_children()
            s_wall, s_rss, output = runner.run_worker("sslyze", sslyze, targets_file, args.concurrency)
            accepted = stub_accepts(lab.status) - before - 1
            report["sslyze"] = {
                "wall_s": round(s_wall, 2), "cpu_s": round(cpu_of_children() - cpu, 2),
                "endpoints_per_s": round(size / s_wall, 1),
                "connections_per_endpoint": round(accepted / size, 1), "peak_rss_mib": round(s_rss / 1024, 1),
                "completed": sum(1 for o in output if "COMPLETED" in o.get("status", "")),
            }
    return report


def print_report(r: dict[str, Any], probes: list[str]) -> None:
    print(f"\n== {r['size']} endpoints: posture scan --probe {' --probe '.join(probes)} ==", flush=True)
    print(f"{'tool':<22} {'wall s':>8} {'CPU s':>8} {'endpoints/s':>12} {'conns/endpoint':>15} {'peak RSS MiB':>13}")
    for tool, label in (("posture", f"posture ({len(probes)} probes)"), ("sslyze", "SSLyze (TLS only)")):
        if tool in r:
            x = r[tool]
            print(f"{label:<22} {x['wall_s']:>8} {x['cpu_s']:>8} {x['endpoints_per_s']:>12} "
                  f"{x['connections_per_endpoint']:>15} {x['peak_rss_mib']:>13}")
    p = r["posture"]
    print(f"posture scans: {p['statuses']}; probe errors: {p['errors'] or 'none'}")
    print(f"posture findings: {p['findings']}")


def verdicts(reports: list[dict[str, Any]]) -> list[str]:
    out = []
    by_size = {r["size"]: r["posture"] for r in reports}
    if 200 in by_size:
        wall = by_size[200]["wall_s"]
        out.append(f"200 endpoints in {wall} s (goal < {GOAL_200_S:g} s): {'met' if wall < GOAL_200_S else 'MISSED'}")
    if 1000 in by_size:
        rss = by_size[1000]["peak_rss_mib"]
        out.append(f"peak RSS at 1000: {rss} MiB (goal < {GOAL_RSS_MIB_1000:g}): "
                   f"{'met' if rss < GOAL_RSS_MIB_1000 else 'MISSED'}")
    # Linear cost: the extra seconds per extra endpoint stay flat as N grows (start-up cancels out).
    sizes = sorted(by_size)
    for lo, hi in pairwise(sizes):
        wall = (by_size[hi]["wall_s"] - by_size[lo]["wall_s"]) / (hi - lo)
        cpu = (by_size[hi]["cpu_s"] - by_size[lo]["cpu_s"]) / (hi - lo)
        out.append(f"marginal cost {lo}->{hi}: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU per endpoint")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 200, 1000])
    parser.add_argument("--concurrency", type=int, default=16,
                        help="[agent] concurrency for posture (assets at once; posture's default is 16) and "
                             "the number of endpoints the SSLyze runner is given at once")
    parser.add_argument("--skip-sslyze", action="store_true")
    parser.add_argument("--probes", nargs="+", default=list(PROBES),
                        help="posture probes to run (default: %(default)s)")
    parser.add_argument("--sslyze-python", help="interpreter with sslyze (default: the tls_vs_sslyze venv)")
    parser.add_argument("--profile", type=Path,
                        help="record the posture run with py-spy into this file (.svg flame graph, .txt raw stacks)")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON too")
    args = parser.parse_args()
    if max(args.sizes) > 250 * 250:
        parser.error("at most 62500 endpoints (127.1.0.1-127.1.249.250)")

    from tests.support.certs import Authority, write_pair

    sslyze = None if args.skip_sslyze else _sibling("tls_vs_sslyze").sslyze_python(args.sslyze_python)
    authority = Authority("posture throughput bench root")
    leaf = authority.leaf("*.bench.test")
    reports = []
    with tempfile.TemporaryDirectory(prefix="posture-throughput-") as tmp:
        workdir = Path(tmp)
        cert, key = write_pair(workdir, "leaf", authority.chain_pem(leaf), leaf.key_pem)
        bundle = authority.write_trust(workdir / "ca.pem")
        for size in args.sizes:
            report = bench(size, workdir, (cert, key, bundle), args, sslyze)
            print_report(report, args.probes)
            reports.append(report)
    print()
    for line in verdicts(reports):
        print(line)
    if args.json:
        print(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
