"""Scans per second with 1, 2 and 3 ``posture worker`` processes on one PostgreSQL,
beside the single-process daemon on SQLite (the default, the peer).

Everything runs on loopback and is stopped at the end: a throwaway PostgreSQL cluster
(initdb in a temporary directory, listening on 127.0.0.1 only, like scripts/in_netns.sh),
a dnsmasq answering ``aNNN.fleet.test`` and ten counting HTTP servers on 127.0.3.1-10,
serving ``--assets`` ``http://`` assets (kind api, passive probes: http and edge).
Each round starts on a fresh database: one ``posture run`` (scheduler only,
``[workers] in_process = false``) and N ``posture worker``, or one ``posture run`` on
SQLite; the clock runs from the processes' start until every asset has a stored
complete scan, start-up included.

    unshare -n .venv/bin/python bench/workers.py                # 300 assets; 1, 2, 3 workers
    unshare -n .venv/bin/python bench/workers.py --assets 100 --workers 1 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.agent.daemon_lab import Agent, Db, wait_for  # noqa: E402
from tests.support.counting import Counted, counting_server  # noqa: E402
from tests.support.dnsserver import DnsServer  # noqa: E402

SERVERS = [f"127.0.3.{i}" for i in range(1, 11)]
CONCURRENCY = 8  # scans at once per process: [agent] concurrency (SQLite) and [workers] concurrency


@contextmanager
def postgres(workdir: Path, port: int) -> Iterator[str]:
    """A throwaway cluster on 127.0.0.1:port; yields an admin URL (database postgres)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not found:
        raise SystemExit("PostgreSQL server binaries not found under /usr/lib/postgresql")
    pgbin = found[-1]
    data = workdir / "pgdata"
    root = os.geteuid() == 0

    def run(*args: str) -> None:
        cmd = [str(a) for a in args]
        if root:
            cmd = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in cmd)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    if root:
        shutil.chown(workdir, "postgres")
    run(str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=trust",
        "--no-sync")
    run(str(pgbin / "pg_ctl"), "-D", str(data), "-w", "-l", str(workdir / "pg.log"), "-o",
        f"-c listen_addresses=127.0.0.1 -p {port} -k {workdir} -c fsync=off -c full_page_writes=off", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(pgbin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")


def fresh_db(admin: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin.rsplit("/", 1)[0] + f"/{name}"


def config(dns: str, servers: list[Counted], assets: int) -> str:
    ports = {s.host: s.port for s in servers}
    blocks = [f'[[assets]]\nname = "a{i:04d}.fleet.test"\n'
              f'url = "http://a{i:04d}.fleet.test:{ports[SERVERS[i % len(SERVERS)]]}"\n'
              f'kind = "api"\nactive_probes = false\n' for i in range(assets)]
    return (f'[agent]\nresolver = "{dns}"\nconcurrency = {CONCURRENCY}\nper_host_concurrency = 3\n\n'
            f'[workers]\nfleet = true\nconcurrency = {CONCURRENCY}\nstall_timeout = 10\nin_process = false\n\n'
            f'[schedule]\nscan_every = "1d"\njitter = "0"\ndigest = "off"\n\n' + "\n".join(blocks))


class Worker(Agent):
    def __init__(self, workdir: Path, cfg: Path, db: str, name: str) -> None:
        super().__init__(workdir, cfg, db, name=name)
        self.args = [*self.args[:-1], "worker"]


def one_round(workdir: Path, cfg: Path, url: str, workers: int, assets: int) -> float:
    Db(url).close()  # migrate first, outside the clock (as `posture db upgrade` would)
    procs: list[Agent] = []
    started = time.monotonic()
    try:
        procs.append(Agent(workdir, cfg, url, name=f"run-{workers}").start())
        procs += [Worker(workdir, cfg, url, name=f"worker-{workers}-{i}").start() for i in range(workers)]
        db = Db(url)
        try:
            wait_for(f"{assets} scans", lambda: sum(1 for s in db.scans() if s.status.value == "complete") >= assets,
                     timeout=1800, agents=tuple(procs))
        finally:
            db.close()
        elapsed = time.monotonic() - started
        for p in procs:
            p.stop(60)
        return elapsed
    finally:
        for p in procs:
            p.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--pg-port", type=int, default=55499)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False, stderr=subprocess.DEVNULL)
    os.environ.setdefault("POSTURE_ALLOW_ADDRESSES", "127.0.0.0/8")
    with tempfile.TemporaryDirectory(prefix="posture-bench-workers-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        records = {f"a{i:04d}.fleet.test": SERVERS[i % len(SERVERS)] for i in range(args.assets)}
        dns = DnsServer(records).start()
        stack.callback(dns.stop)
        servers = [stack.enter_context(counting_server(host=h)) for h in SERVERS]
        cfg = workdir / "posture.toml"
        cfg.write_text(config(dns.address, servers, args.assets))
        print(f"{args.assets} assets (http, edge probes), {len(SERVERS)} servers, per-host limit 3, "
              f"{CONCURRENCY} scans at once per process, {os.cpu_count()} CPUs")
        if not args.skip_sqlite:
            elapsed = one_round(workdir, cfg, f"sqlite:///{workdir / 'posture.db'}", 0, args.assets)
            print(f"SQLite, one posture run (daemon): {elapsed:6.1f} s  {args.assets / elapsed:6.1f} scans/s")
        pgdir = workdir / "pg"
        pgdir.mkdir()
        admin = stack.enter_context(postgres(pgdir, args.pg_port))
        for n in args.workers:
            url = fresh_db(admin, f"bench_{n}")
            elapsed = one_round(workdir, cfg, url, n, args.assets)
            print(f"PostgreSQL, scheduler + {n} worker(s): {elapsed:6.1f} s  {args.assets / elapsed:6.1f} scans/s")
        peak = max(s.peak for s in servers)
        print(f"peak connections at one server over all rounds: {peak} (limit 3)")


if __name__ == "__main__":
    main()
