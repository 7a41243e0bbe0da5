"""How many lookalike candidates a domain yields, and how long a watch of three domains takes.

Against a dnsmasq on loopback only (no forwarding: every candidate outside its zones gets
NXDOMAIN from it), serving three firms' zones with SPF/DMARC and a few registered lookalikes.
Runs ``posture watch`` as the real CLI in a subprocess, storing into SQLite, at a few
``[watch] rate`` settings (queries per second) so the pacing's cost is visible.
Run it inside a network namespace (as the tests do):

    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/watch.py'
    unshare -n bash -c 'ip link set lo up && .venv/bin/python bench/watch.py --rates 50 --concurrency 8'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from probes.watch.candidates import candidates  # noqa: E402
from probes.watch.model import Settings  # noqa: E402
from tests.support.dnsserver import DnsServer  # noqa: E402

DOMAINS = ("broker.com.tw", "yuanta-futures.com.tw", "capital.com.tw")
ZONES = ("com.tw", "tw", "com", "net", "xn--kpry57d")


def lab() -> DnsServer:
    records: dict[str, str] = {}
    extra: list[str] = []
    for i, d in enumerate(DOMAINS):
        label, _, _ = d.partition(".")
        records[d] = f"127.0.1.{i + 1}"
        records[f"{label}.com"] = f"127.0.2.{i + 1}"  # a TLD swap
        records[f"{label}-login.com.tw"] = f"127.0.3.{i + 1}"  # an added word, taking mail
        extra += [f"--mx-host={label}-login.com.tw,mx.{label}-login.com.tw,10",
                  f"--txt-record={d},v=spf1 -all", f"--txt-record=_dmarc.{d},v=DMARC1; p=none"]
    return DnsServer(records, zones=ZONES, extra_args=extra).start()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", type=float, nargs="+", default=[50.0, 500.0, 5000.0], help="[watch] rate values")
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()

    print("candidates per domain (dnstwist + TLD swaps + IDN homoglyphs):")
    total = 0
    for d in DOMAINS:
        n = len(candidates(d, Settings(domains=(d,))))
        total += n
        print(f"  {d:28} {n:5d}")
    print(f"  {'three domains':28} {total:5d}  (x4 queries: A, AAAA, MX, NS; 1 when the A answer is NXDOMAIN)")

    dns = lab()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"\nposture watch of {len(DOMAINS)} domains via dnsmasq at {dns.address}:")
            print(f"  {'rate q/s':>9} {'concurrency':>11} {'seconds':>8} {'lookalikes':>10} {'status':>9}")
            for rate in args.rates:
                cfg = Path(tmp) / f"w{rate:g}.toml"
                domains = ", ".join(f'"{d}"' for d in DOMAINS)
                cfg.write_text(f'[agent]\nresolver = "{dns.address}"\n\n[watch]\ndomains = [{domains}]\n'
                               f"rate = {rate}\nconcurrency = {args.concurrency}\n")
                db = f"sqlite:///{tmp}/w{rate:g}.db"
                started = time.monotonic()
                proc = subprocess.run([sys.executable, "-m", "agent", "--config", str(cfg), "--db", db, "watch",
                                       "--format", "json"], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                                      capture_output=True, text=True, check=False)
                seconds = time.monotonic() - started
                doc = json.loads(proc.stdout) if proc.stdout.strip() else {"scans": []}
                found = sum(1 for s in doc["scans"] for f in s["findings"] if f["check_id"] == "phishing.lookalike")
                status = ",".join(sorted({s["status"] for s in doc["scans"]})) or f"exit {proc.returncode}"
                print(f"  {rate:9g} {args.concurrency:11d} {seconds:8.2f} {found:10d} {status:>9}")
    finally:
        dns.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
