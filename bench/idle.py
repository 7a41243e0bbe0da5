"""The daemon's idle CPU and its memory over a long run of short cycles.

Two runs of ``posture run`` in a subprocess, against one loopback TLS service behind a
loopback DNS server (the daemon tests' lab):

1. memory: ``scan_every = "1s"`` until it has made ``--cycles`` scheduled scans; the
   daemon's RSS (/proc/PID/status VmRSS) is sampled every ``--every`` scans, and the
   growth between the first and the last quarter of the run is printed;
2. idle: ``scan_every = "1h"``; after its first scan the daemon has nothing due for an
   hour, and its CPU time (utime + stime from /proc/PID/stat) is measured over
   ``--idle-seconds``. It sleeps until the next due moment, so this should be ~0.

    .venv/bin/python bench/idle.py                      # 200 cycles, 20 s idle
    .venv/bin/python bench/idle.py --cycles 50 --idle-seconds 10
    .venv/bin/python bench/idle.py --database postgres   # RSS without SQLite's page caches
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.agent.daemon_lab import Agent, Db, Lab, asset_toml, config_toml, make_lab, wait_for  # noqa: E402

NAME = "a.daemon.test"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def memory_run(workdir: Path, lab: Lab, cycles: int, every: int, url: str) -> None:
    with lab.gates(NAME) as g:
        cfg = workdir / "memory.toml"
        cfg.write_text(config_toml(lab.dns, lab.ca, asset_toml(NAME, g[NAME]), every="1s"))
        agent = Agent(workdir, cfg, url, name="memory").start()
        db = Db(url)
        samples: list[tuple[int, int, float]] = []
        started = time.monotonic()
        try:
            next_mark = every
            while next_mark <= cycles:
                wait_for(f"{next_mark} scans", lambda n=next_mark: len(db.scans(NAME)) >= n,  # type: ignore[misc]
                         timeout=every * 5 + 30, agents=(agent,))
                samples.append((next_mark, rss_kib(agent.pid), cpu_seconds(agent.pid)))
                next_mark += every
            assert agent.stop() == 0
        finally:
            agent.cleanup()
        statuses = {s.status.value for s in db.scans(NAME)}
        db.close()
    elapsed = time.monotonic() - started
    print(f"memory: {samples[-1][0]} scheduled scans (scan_every = 1s, {url.split(':')[0]}) in {elapsed:.0f} s; "
          f"statuses {sorted(statuses)}")
    print("  scans   RSS (MiB)   CPU (s)")
    for n, rss, cpu in samples:
        print(f"  {n:5d}   {rss / 1024:9.1f}   {cpu:7.2f}")
    quarter = max(len(samples) // 4, 1)
    early = sum(r for _, r, _ in samples[:quarter]) / quarter
    late = sum(r for _, r, _ in samples[-quarter:]) / quarter
    print(f"  RSS first quarter {early / 1024:.1f} MiB, last quarter {late / 1024:.1f} MiB: "
          f"{(late - early) / 1024:+.1f} MiB ({(late - early) / early * 100:+.1f}%)")
    if url.startswith("sqlite"):
        size = sum(p.stat().st_size for p in workdir.glob("memory.db*"))
        print(f"  the SQLite database grew to {size / 1048576:.1f} MiB (each pooled connection caches up to "
              "2 MiB of its pages: RSS follows the file until then)")


def idle_run(workdir: Path, lab: Lab, seconds: float) -> None:
    url = f"sqlite:///{workdir / 'idle.db'}"
    with lab.gates(NAME) as g:
        cfg = workdir / "idle.toml"
        cfg.write_text(config_toml(lab.dns, lab.ca, asset_toml(NAME, g[NAME]), every="1h"))
        agent = Agent(workdir, cfg, url, name="idle").start()
        db = Db(url)
        try:
            wait_for("the first scan", lambda: db.scans(NAME) and db.scans(NAME)[0].status.value != "running",
                     timeout=60, agents=(agent,))
            time.sleep(2)  # let the first evaluation cycle finish
            before, rss_before, t0 = cpu_seconds(agent.pid), rss_kib(agent.pid), time.monotonic()
            time.sleep(seconds)
            after, rss_after, t1 = cpu_seconds(agent.pid), rss_kib(agent.pid), time.monotonic()
            assert agent.stop() == 0
        finally:
            agent.cleanup()
            db.close()
    used = after - before
    print(f"idle: {used:.2f} s CPU over {t1 - t0:.1f} s ({used / (t1 - t0) * 100:.2f}% of one core; "
          f"clock tick {1 / TICK:.2f} s); RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="scheduled scans in the memory run")
    parser.add_argument("--every", type=int, default=20, help="sample RSS every N scans")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite",
                        help="for the memory run; postgres: a fresh database on POSTURE_TEST_PG_URL's server")
    args = parser.parse_args()
    # The lab lives on loopback, which the address policy refuses unless allowed explicitly.
    os.environ.setdefault("POSTURE_ALLOW_ADDRESSES", "127.0.0.0/8")
    with tempfile.TemporaryDirectory(prefix="posture-idle-") as tmp, make_lab(Path(tmp)) as lab:
        idle_run(Path(tmp), lab, args.idle_seconds)
        if args.database == "sqlite":
            memory_run(Path(tmp), lab, args.cycles, args.every, f"sqlite:///{Path(tmp) / 'memory.db'}")
        else:
            from tests.support.pg import fresh_database

            with fresh_database("posture_bench") as url:
                memory_run(Path(tmp), lab, args.cycles, args.every, url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
