"""Throughput of ``posture scan`` against N local HTTPS endpoints, beside SSLyze, with what the server saw.

For each N (default 20, 200, 1000) the bench starts one nginx with N ``server``
blocks, each on its own loopback address (127.1.x.y) with a certificate from a
generated CA, and a dnsmasq that resolves ``eN.bench.test`` to them; writes a
config listing the N assets; and runs, one after the other against the same nginx:

* the real CLI in a subprocess with the four web probes
  (``python -m agent ... scan --probe tls --probe http --probe edge --probe leak``);
* the same with ``--probe tls --probe http`` (what SSLyze's scan is compared with);
* SSLyze's default scan of the same endpoints through the runner in
  ``bench/tls_vs_sslyze.py`` (its own virtualenv, made on first use: SSLyze is AGPL
  and never a dependency of posture), at the sizes the goals compare (20, 200).

For each run it prints wall and CPU time (the scan's worker processes included),
endpoints per second, peak memory (the larger of ``os.wait4``'s ru_maxrss and the peak
summed PSS of the scan's process tree, ``bench/proctree.py``), the scanning processes
it used (``[agent] processes``, ``--processes``), nginx's own CPU time while the tool ran (``srv CPU``), and
from nginx (``bench/serverside.py``): TCP connections,
connections that carried requests, requests, full TLS handshakes, resumed sessions
and refused hellos per endpoint; the most connections with a request open at once
to one server address, against ``per_host_concurrency``; and requests nginx's own
``limit_conn`` (same limit, per server address) answered 429 (must be 0). Then
each goal of issue 21 with PASS or MISS.

    .venv/bin/python bench/throughput.py                     # 20, 200, 1000; SSLyze at 20 and 200
    .venv/bin/python bench/throughput.py --sizes 200 --skip-sslyze
    .venv/bin/python bench/throughput.py --sizes 200 --probes tls http edge leak --profile /tmp/scan.txt

Everything listens on 127.1.0.0/16 only and stops when the bench ends; run it in
``unshare -n`` (bring lo up) to keep it off every real network.
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
#: What one run measures at each size, side by side: label -> probes.
PROBE_SETS = {"posture (4 probes)": PROBES, "posture tls+http": ("tls", "http")}
STATUS_ADDRESS = "127.1.250.1"
# Goals (issue 21), checked and printed by the script.
GOAL_WALL_S = {200: 8.0, 1000: 40.0}  # the 4 probes
GOAL_RSS_MIB_1000 = 250.0
GOAL_SPEEDUP = {20: 5.0, 200: 20.0}  # tls+http against SSLyze's default scan
GOAL_RSS_SHARE = 0.25  # tls+http peak RSS against SSLyze's


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
    logs: Path  # nginx's working directory: access.log, error.log
    server_pid: int  # nginx's master: it and its workers are the server side's CPU


def start_lab(stack: ExitStack, size: int, workdir: Path, cert: Path, key: Path, bundle: Path,
              concurrency: int, per_host: int, processes: str = "auto") -> Lab:
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
    status = Endpoint(STATUS_ADDRESS, free_port(STATUS_ADDRESS))
    nginx = stack.enter_context(nginx_tls(workdir / f"nginx-{size}", cert, key, sites, workers=2, status=status,
                                          logs=True, limit_conn=per_host))
    dns = DnsServer({t["host"]: t["address"] for t in targets}, zones=("bench.test",)).start()
    stack.callback(dns.stop)
    lines = [
        "[agent]",
        f'resolver = "{dns.address}"',
        'allow_addresses = ["127.1.0.0/16"]  # the bench targets live on loopback',
        f'ca_bundle = "{bundle}"',
        f"concurrency = {concurrency}",
        f"per_host_concurrency = {per_host}",
        'processes = "auto"' if processes == "auto" else f"processes = {int(processes)}",
        "",
    ]
    for t in targets:
        lines += ["[[assets]]", f'name = "{t["name"]}"', f'url = "https://{t["host"]}:{t["port"]}/"', ""]
    config = workdir / f"posture-{size}.toml"
    config.write_text("\n".join(lines))
    return Lab(targets, config, status, workdir / f"nginx-{size}", nginx.pid)


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
        proctree = _sibling("proctree")
        proctree.adopt_orphans()  # the workers' fork server ends just after the command: its CPU counts
        with proctree.TreeSampler(proc.pid) as tree:  # the scan's worker processes too
            stderr = proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proctree.reap(tree.seen - {proc.pid})
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1: some scan failed; the figures still stand, the summary says which
        raise SystemExit(f"posture scan exited with {code}: {stderr.decode(errors='replace')[-2000:]}")
    text = out.read_text()
    doc = json.JSONDecoder().raw_decode(text[text.index("{"):])[0]  # py-spy adds lines
    doc["processes"] = max(1, tree.most_workers)  # worker processes, or the one scanning process
    doc["memory_by_process"] = proctree.breakdown(tree.at_peak) if len(tree.at_peak) > 1 else ""
    return wall, max(int(usage.ru_maxrss), tree.peak_kib), doc


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


def measured(lab: Lab, size: int, run: Any) -> dict[str, Any]:
    """Run ``run()`` (-> wall s, peak RSS KiB, extra figures) and add what nginx saw of it."""
    from tests.support.tls_servers import stub_accepts

    side = _sibling("serverside")
    mark, before, cpu = side.LogMark.of(lab.logs), stub_accepts(lab.status), cpu_of_children()
    server_cpu = side.process_tree_cpu(lab.server_pid)
    wall, rss, extra = run()
    accepted = stub_accepts(lab.status) - before - 1  # minus the status request itself
    server_cpu = side.process_tree_cpu(lab.server_pid) - server_cpu
    server = side.read(lab.logs, mark, accepted, ignore=STATUS_ADDRESS)
    return {
        "wall_s": round(wall, 2), "cpu_s": round(cpu_of_children() - cpu, 2), "server_cpu_s": round(server_cpu, 2),
        "endpoints_per_s": round(size / wall, 1), "peak_rss_mib": round(rss / 1024, 1),
        "per_endpoint": server.per_endpoint(size), "max_concurrent_per_host": server.max_concurrent,
        "rejected_over_limit": server.rejected_429, **extra,
    }


def bench(size: int, workdir: Path, pki: tuple[Path, Path, Path], args: argparse.Namespace,
          sslyze: str | None) -> dict[str, Any]:
    cert, key, bundle = pki
    report: dict[str, Any] = {"size": size, "per_host_limit": args.per_host, "tools": {}}
    with ExitStack() as stack:
        lab = start_lab(stack, size, workdir, cert, key, bundle, args.concurrency, args.per_host, args.processes)
        sets = {"posture": tuple(args.probes)} if args.probes else PROBE_SETS
        for n, (label, probes) in enumerate(sets.items()):
            db = f"sqlite:///{workdir / f'bench-{size}-{n}.db'}"
            out = workdir / f"scan-{size}-{n}.json"

            def posture(probes: tuple[str, ...] = probes, db: str = db, out: Path = out) -> tuple[float, int, Any]:
                wall, rss, doc = run_posture(lab, db, out, args.profile, probes)
                return wall, rss, {**summarise(doc), "processes": doc["processes"],
                                   "memory_by_process": doc["memory_by_process"]}

            report["tools"][label] = {"probes": list(probes), **measured(lab, size, posture)}
        if sslyze and size in args.sslyze_sizes:
            runner = _sibling("tls_vs_sslyze")
            targets_file = workdir / f"targets-{size}.json"
            targets_file.write_text(json.dumps(lab.targets))

            def scan() -> tuple[float, int, Any]:
                wall, rss, output = runner.run_worker("sslyze", sslyze, targets_file, args.concurrency)
                return wall, rss, {"completed": sum(1 for o in output if "COMPLETED" in o.get("status", ""))}

            report["tools"]["SSLyze default scan"] = measured(lab, size, scan)
    return report


def print_report(r: dict[str, Any]) -> None:
    print(f"\n== {r['size']} endpoints (per-host limit {r['per_host_limit']}) ==", flush=True)
    print(f"{'tool':<21} {'wall s':>7} {'CPU s':>6} {'srv CPU':>7} {'ep/s':>6} {'RSS MiB':>8} {'conns':>6} "
          f"{'http':>5} {'reqs':>5} {'full hs':>7} {'resumed':>7} {'refused':>7} {'max/host':>8} {'429s':>5}"
          "   (per endpoint)")
    for label, x in r["tools"].items():
        e = x["per_endpoint"]
        print(f"{label:<21} {x['wall_s']:>7} {x['cpu_s']:>6} {x.get('server_cpu_s', ''):>7} {x['endpoints_per_s']:>6} "
              f"{x['peak_rss_mib']:>8} "
              f"{e['connections']:>6} {e['http_connections']:>5} {e['requests']:>5} {e['full_handshakes']:>7} "
              f"{e['resumed']:>7} {e['refused_hellos']:>7} {x['max_concurrent_per_host']:>8} "
              f"{x['rejected_over_limit']:>5}")
    for label, x in r["tools"].items():
        if "statuses" in x:
            print(f"{label}: {x['processes']} scanning process(es); scans {x['statuses']}; "
                  f"probe errors: {x['errors'] or 'none'}")
            if x.get("memory_by_process"):
                print(f"{label}: peak MiB by process (PSS): {x['memory_by_process']}")


def verdicts(reports: list[dict[str, Any]]) -> list[str]:
    """Each goal: PASS or MISS, with the figures."""
    out = []

    def line(ok: bool, text: str) -> None:
        out.append(f"{'PASS' if ok else 'MISS'}  {text}")

    four, pair, ssl = "posture (4 probes)", "posture tls+http", "SSLyze default scan"
    by_size = {r["size"]: r["tools"] for r in reports}
    for size, goal in GOAL_WALL_S.items():
        if size in by_size and four in by_size[size]:
            wall = by_size[size][four]["wall_s"]
            line(wall <= goal, f"4 probes, {size} endpoints: {wall} s (goal <= {goal:g} s)")
    if 1000 in by_size and four in by_size[1000]:
        rss = by_size[1000][four]["peak_rss_mib"]
        line(rss < GOAL_RSS_MIB_1000, f"4 probes, 1000 endpoints: peak RSS {rss} MiB (goal < {GOAL_RSS_MIB_1000:g})")
    for size, goal in GOAL_SPEEDUP.items():
        tools = by_size.get(size, {})
        if pair in tools and ssl in tools:
            speedup = tools[ssl]["wall_s"] / tools[pair]["wall_s"]
            line(speedup >= goal, f"tls+http vs SSLyze, {size} endpoints: {speedup:.1f}x faster (goal >= {goal:g}x)")
            share = tools[pair]["peak_rss_mib"] / tools[ssl]["peak_rss_mib"]
            line(share <= GOAL_RSS_SHARE, f"tls+http vs SSLyze, {size} endpoints: peak RSS {share:.2f} of SSLyze's "
                                          f"(goal <= {GOAL_RSS_SHARE:g})")
    for size, tools in by_size.items():
        for label, x in tools.items():
            if label.startswith("posture"):
                limit = reports[0]["per_host_limit"]
                line(x["rejected_over_limit"] == 0 and x["max_concurrent_per_host"] <= limit,
                     f"{label}, {size} endpoints: server saw at most {x['max_concurrent_per_host']} connections "
                     f"per host with requests open (limit {limit}), {x['rejected_over_limit']} requests over it")
    # Linear cost: the extra seconds per extra endpoint stay flat as N grows (start-up cancels out).
    sizes = sorted(s for s in by_size if four in by_size[s])
    for lo, hi in pairwise(sizes):
        wall = (by_size[hi][four]["wall_s"] - by_size[lo][four]["wall_s"]) / (hi - lo)
        cpu = (by_size[hi][four]["cpu_s"] - by_size[lo][four]["cpu_s"]) / (hi - lo)
        out.append(f"      marginal cost of the 4 probes {lo}->{hi}: {wall * 1000:.1f} ms wall, "
                   f"{cpu * 1000:.1f} ms CPU per endpoint")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 200, 1000])
    parser.add_argument("--concurrency", type=int, default=16,
                        help="[agent] concurrency for posture (assets at once; posture's default is 16) and "
                             "the number of endpoints the SSLyze runner is given at once")
    parser.add_argument("--processes", default="auto",
                        help="[agent] processes for posture: auto (its default) or a number; 1: one process")
    parser.add_argument("--skip-sslyze", action="store_true")
    parser.add_argument("--sslyze-sizes", type=int, nargs="+", default=[20, 200],
                        help="sizes SSLyze runs at (default: those the goals compare, %(default)s)")
    parser.add_argument("--probes", nargs="+",
                        help="one posture run with these probes (default: the 4 probes, then tls+http)")
    parser.add_argument("--per-host", type=int, default=4,
                        help="per_host_concurrency given to posture and enforced by nginx's limit_conn")
    parser.add_argument("--sslyze-python", help="interpreter with sslyze (default: the tls_vs_sslyze venv)")
    parser.add_argument("--profile", type=Path,
                        help="record the posture run with py-spy into this file (.svg flame graph, .txt raw stacks)")
    parser.add_argument("--json", action="store_true", help="print the reports as JSON too")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (nginx logs, scan output)")
    args = parser.parse_args()
    if max(args.sizes) > 250 * 250:
        parser.error("at most 62500 endpoints (127.1.0.1-127.1.249.250)")

    from tests.support.certs import Authority, write_pair

    sslyze = None if args.skip_sslyze else _sibling("tls_vs_sslyze").sslyze_python(args.sslyze_python)
    authority = Authority("posture throughput bench root")
    leaf = authority.leaf("*.bench.test")
    reports = []
    with ExitStack() as outer:
        workdir = args.keep or Path(outer.enter_context(tempfile.TemporaryDirectory(prefix="posture-throughput-")))
        workdir.mkdir(parents=True, exist_ok=True)
        cert, key = write_pair(workdir, "leaf", authority.chain_pem(leaf), leaf.key_pem)
        bundle = authority.write_trust(workdir / "ca.pem")
        for size in args.sizes:
            report = bench(size, workdir, (cert, key, bundle), args, sslyze)
            print_report(report)
            reports.append(report)
    print()
    for line in verdicts(reports):
        print(line)
    if args.json:
        print(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
