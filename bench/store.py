"""CPU and SQL statements per stored scan (``Store.record_scan``), this tree beside a baseline.

Each scan is what a web scan of a broker site stores: five probe runs (reach, tls, http,
edge, leak) with realistic observations (a certificate chain, headers, paths tried), and
findings drawn from a per-asset pool: some reported every time (still open), some that
come and go (fixed, then reopened), some that appear late (new), a tls probe that fails
now and then (proves nothing), an http allow-list change that leaves a banner observed
but unreported (resolved by configuration), and accepted risks that expire during the
run. First one scan per asset (not measured), then ``--scans`` measured ones over the
assets in turn, into a fresh database.

Printed per variant: ms of this process's CPU per stored scan (user + system: on SQLite
that includes the database engine, on PostgreSQL only the client side), ms wall, and SQL
statements per stored scan (a ``before_cursor_execute`` listener; an executemany counts
once). Each variant runs in its own subprocess; the baseline is the ``state`` and
``vocab`` packages of a git revision (``git archive``), the rest of this tree unchanged.
The stored rows of both variants are compared column by column (raw, as the database
holds them; events by finding, without their ids): "same rows" must say yes.

    .venv/bin/python bench/store.py                          # SQLite; baseline c94ca5b
    .venv/bin/python bench/store.py --scans 200 --baseline none
    .venv/bin/python bench/store.py --pg postgresql+psycopg://posture:posture@127.0.0.1:55432/postgres
    .venv/bin/python bench/store.py --profile /tmp/store.prof    # cProfile of this tree's run

``--pg`` (or ``POSTURE_TEST_PG_URL``) is an admin URL: each variant gets a fresh database,
dropped afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BASELINE = "c94ca5b"  # the tree before the store got cheaper (branch wt-store)
WEEK = timedelta(days=7)
TABLES = ("assets", "scans", "probe_runs", "findings", "finding_occurrences", "finding_events")

# (probe, check_id, key, severity, pattern): "always" reported every scan, "flap" in some
# scans (fixed, then reopened), "late" from the asset's second measured round on.
POOL: tuple[tuple[str, str, str, str, str], ...] = (
    ("tls", "tls.protocol_legacy", "TLSv1.0", "high", "always"),
    ("tls", "tls.protocol_legacy", "TLSv1.1", "high", "always"),
    ("tls", "tls.cert_expiring", "leaf", "medium", "flap"),
    ("tls", "tls.weak_suite", "TLS_RSA_WITH_AES_128_CBC_SHA", "medium", "flap"),
    ("http", "http.hsts_missing", "/", "medium", "always"),
    ("http", "http.header_missing", "content-security-policy", "low", "always"),
    ("http", "http.header_missing", "x-frame-options", "low", "flap"),
    ("http", "http.server_banner", "server", "low", "always"),
    ("edge", "edge.no_waf", "/", "medium", "always"),
    ("edge", "edge.rate_limit_missing", "/login", "medium", "late"),
    ("leak", "leak.stack_trace", "/api/v1/orders", "high", "flap"),
    ("leak", "leak.exposed_file", "/.git/HEAD", "critical", "late"),
)


def _observations(probe: str, host: str, rng: random.Random) -> dict[str, Any]:
    if probe == "reach":
        return {"addresses": ["127.1.0.1"], "tcp_ms": round(rng.uniform(0.1, 3), 3), "port": 443}
    if probe == "tls":
        cert = {"subject": f"CN={host}", "issuer": "CN=Bench CA,O=證券商測試", "serial": f"{rng.getrandbits(64):x}",
                "not_before": "2026-01-01T00:00:00+00:00", "not_after": "2027-01-01T00:00:00+00:00",
                "san": [host, f"www.{host}"], "key": "EC-256", "sha256": f"{rng.getrandbits(128):032x}"}
        return {"grade": rng.choice("ABC"), "versions": ["TLSv1.2", "TLSv1.3"],
                "chain": [cert, cert | {"subject": "CN=Bench CA"}],
                "suites": {"TLSv1.2": ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"],
                           "TLSv1.3": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"]},
                "ocsp_stapled": False, "handshake_ms": round(rng.uniform(1, 9), 3)}
    if probe == "http":
        return {"status": 200, "final_url": f"https://{host}/", "headers": {
            "server": "nginx/1.22.1", "content-type": "text/html; charset=utf-8",
            "strict-transport-security": None, "x-content-type-options": "nosniff"},
            "redirects": [], "title": "網路下單 - 測試證券", "requests": 3}
    if probe == "edge":
        return {"waf": None, "cdn": None, "rate_limit": {"/login": rng.choice([None, 20])}, "requests": 12}
    return {"paths_tried": ["/.git/HEAD", "/.env", "/server-status", "/api/v1/orders"], "requests": 8,
            "responses": {"/.env": 404, "/server-status": 403}}


def build(assets: int, scans: int, seed: int) -> tuple[list[Any], list[Any]]:
    """(warm-up scans: one per asset, measured scans), deterministic for the seed."""
    from state.records import AssetRecord, Observed, RunStatus, ScanStatus
    from tests.state.factory import T0, finding, run, scan
    from vocab import AssetKind

    def one(a: int, rnd: int) -> Any:
        rng = random.Random(f"{seed}-{a}-{rnd}")
        host = f"e{a}.bench.test"
        asset = AssetRecord(name=f"e{a}", url=f"https://{host}/", kind=AssetKind.WEBSITE, configured=True)
        at = T0 + rnd * WEEK + timedelta(minutes=a)
        allow_banner = a % 10 == 0 and rnd >= 2  # the http allow-list now covers the banner
        runs = []
        for i, probe in enumerate(("reach", "tls", "http", "edge", "leak")):
            failed = probe == "tls" and rng.random() < 0.03
            found = []
            for p, check_id, key, severity, pattern in POOL:
                if p != probe or failed:
                    continue
                if (pattern == "flap" and rng.random() < 0.4) or (pattern == "late" and rnd < 2):
                    continue
                if allow_banner and check_id == "http.server_banner":
                    continue
                found.append(finding(check_id, key, severity, host=host, seen=at.isoformat(),
                                     detail=f"{check_id} on {host}: {key}", 說明="測試證據"))
            r = run(probe, *found, status=RunStatus.ERROR if failed else RunStatus.OK,
                    at=at + timedelta(seconds=i), observations=_observations(probe, host, rng))
            observed = None
            if probe == "http":
                present = {(f.check_id, f.key) for f in found}
                if allow_banner:
                    present.add(("http.server_banner", "server"))
                observed = Observed(checks=frozenset({"http.server_banner"}), present=frozenset(present))
            version = "v2" if allow_banner and probe == "http" else "v1"
            runs.append(dataclasses.replace(r, observed=observed, config_hash=f"sha256:{probe}-{version}"))
        rec = scan(at, runs, asset=asset)
        status = ScanStatus.PARTIAL if any(r.status != RunStatus.OK for r in runs) else ScanStatus.COMPLETE
        return dataclasses.replace(rec, status=status, asset_config_hash=f"sha256:asset-{a}")

    warm = [one(a, 0) for a in range(assets)]
    measured = [one(j % assets, 1 + j // assets) for j in range(scans)]
    return warm, measured


def _fingerprint(store: Any, dump: str | None = None) -> tuple[str, dict[str, int]]:
    """sha256 over every stored row as the database holds it, and the row counts."""
    digest = hashlib.sha256()
    out = open(dump, "w") if dump else None  # noqa: SIM115
    counts: dict[str, int] = {}
    with store.engine.connect() as conn:
        for table in TABLES:
            # Events by finding, without their ids: which of two findings fixed by one scan gets
            # the lower event id is no part of either history (each finding's order is kept).
            order = "finding_id, id" if table == "finding_events" else "id"
            rows = conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
            if table == "finding_events":
                rows = [row[1:] for row in rows]
            counts[table] = len(rows)
            for row in rows:
                shown = repr(tuple(json.dumps(v, sort_keys=True) if isinstance(v, dict) else v for v in row))
                digest.update(shown.encode())
                if out:
                    print(table, shown, file=out)
    if out:
        out.close()
    return digest.hexdigest(), counts


def measure(url: str, assets: int, scans: int, seed: int, profile: str | None) -> dict[str, Any]:
    from sqlalchemy import event

    from state.store import Store
    from tests.state.factory import DAY

    warm, measured = build(assets, scans, seed)
    counted = [0]

    def count(*_: object, **__: object) -> None:
        counted[0] += 1

    with Store.open(url) as store:
        for rec in warm:
            stored = store.record_scan(rec)
        # Accept a few risks (asset e3, e7, ...) until just after their first measured scan.
        for a in range(3, assets, 4):
            ids = sorted(store.findings(asset=f"e{a}"), key=lambda f: f.id)
            at = warm[a].finished_at
            store.accept(ids[0].id, "compensating control", "bench", at + 7 * DAY + timedelta(hours=1), at)
        del stored
        event.listen(store.engine, "before_cursor_execute", count)
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
        cpu = wall = 0.0
        for rec in measured:
            if profiler:
                profiler.enable()
            c0, w0 = time.process_time(), time.perf_counter()
            store.record_scan(rec)
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            if profiler:
                profiler.disable()
        event.remove(store.engine, "before_cursor_execute", count)
        if profiler and profile:
            profiler.dump_stats(profile)
        fingerprint, counts = _fingerprint(store, os.environ.get("POSTURE_BENCH_STORE_DUMP"))
        dialect = store.dialect
    return {"dialect": dialect, "cpu_ms": 1000 * cpu / scans, "wall_ms": 1000 * wall / scans,
            "statements": counted[0] / scans, "fingerprint": fingerprint, "rows": counts}


def _baseline_tree(rev: str, into: Path) -> Path:
    data = subprocess.run(["git", "-C", str(REPO), "archive", rev, "state", "vocab"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def _run_variant(code: Path | None, args: argparse.Namespace, db: str, profile: str | None) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", db, "--assets", str(args.assets), "--scans", str(args.scans),
           "--seed", str(args.seed)]
    if code is not None:
        cmd += ["--code", str(code)]
    if profile:
        cmd += ["--profile", profile]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy()).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _databases(args: argparse.Namespace, tmp: Path) -> list[tuple[str, Any]]:
    """(label, factory of a fresh database URL, with its cleanup)."""
    dbs: list[tuple[str, Any]] = [("sqlite", None)]
    if args.pg:
        dbs.append(("postgresql", args.pg))
    return dbs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--scans", type=int, default=500, help="measured scans (after one per asset)")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--baseline", default=BASELINE, help="git revision to compare with, or 'none'")
    parser.add_argument("--pg", default=os.environ.get("POSTURE_TEST_PG_URL"),
                        help="PostgreSQL admin URL (CREATEDB): also measure on a fresh database there")
    parser.add_argument("--profile", help="write a cProfile of this tree's SQLite run here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        sys.path.insert(0, str(REPO))
        if args.code:
            sys.path.insert(0, args.code)
        print(json.dumps(measure(args.worker, args.assets, args.scans, args.seed, args.profile)))
        return 0

    sys.path.insert(0, str(REPO))
    print(f"record_scan: {args.scans} measured scans over {args.assets} assets "
          f"(after {args.assets} warm-up scans), 5 probe runs each", flush=True)
    with tempfile.TemporaryDirectory(prefix="posture-bench-store-") as tmp_name:
        tmp = Path(tmp_name)
        variants: list[tuple[str, Path | None]] = []
        if args.baseline != "none":
            variants.append((f"before ({args.baseline})", _baseline_tree(args.baseline, tmp / "baseline")))
        variants.append(("this tree", None))
        print(f"{'database':<11} {'code':<18} {'CPU ms/scan':>11} {'wall ms/scan':>12} {'SQL/scan':>9}  rows")
        for label, admin in _databases(args, tmp):
            results = []
            for n, (name, code) in enumerate(variants):
                if admin is None:
                    db = f"sqlite:///{tmp / f'{label}-{n}.db'}"
                    res = _run_variant(code, args, db, args.profile if code is None else None)
                else:
                    os.environ["POSTURE_TEST_PG_URL"] = admin
                    from tests.support.pg import fresh_database

                    with fresh_database("posture_bench_store") as db:
                        res = _run_variant(code, args, db, None)
                results.append(res)
                rows = " ".join(f"{t}={c}" for t, c in res["rows"].items())
                print(f"{label:<11} {name:<18} {res['cpu_ms']:>11.2f} {res['wall_ms']:>12.2f} "
                      f"{res['statements']:>9.1f}  {rows}", flush=True)
            if len(results) == 2:
                same = results[0]["fingerprint"] == results[1]["fingerprint"]
                print(f"{label:<11} CPU {results[0]['cpu_ms'] / results[1]['cpu_ms']:.2f}x less, "
                      f"same rows: {'yes' if same else 'NO'}", flush=True)
                if not same:
                    return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
