"""A generated scan history (default: 500 assets x 156 weekly scans = three years), then timed queries.

The history is simulated with the same lifecycle rules as ``state.lifecycle`` (a
finding opens, is fixed by a later scan whose probe ran and did not report it,
reopens when it comes back; a probe that failed proves nothing; an accepted risk
stays accepted) and written with bulk INSERTs through the store's own tables, so a
three-year database takes a minute instead of the hours ``Store.record_scan`` would.
Each scan has the four probe runs of a real one (tls with a grade and certificate,
http, edge, leak), 2% of them with a failed tls probe; findings are the common ones
on broker sites (no WAF, missing HSTS, version banners, legacy TLS, yearly
certificate expiry, stack traces that come and go, end-of-life software).

Then it times, each in a fresh ``posture`` subprocess with ``--now`` just after the
last week (best of three runs)::

    posture findings --status open --format json
    posture findings --overdue --format json        (when the command has --overdue)
    posture digest --format json                    (when the command exists)
    posture report --format json                    (the last declaration half-year)
    posture report                                  (the same, as HTML)

    .venv/bin/python bench/gen_history.py                                  # SQLite in a temp dir
    .venv/bin/python bench/gen_history.py --db postgresql+psycopg://... --keep
    .venv/bin/python bench/gen_history.py --assets 50 --weeks 52           # a quick one
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

END = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)  # the last scan week: a Monday, 09:00 Asia/Taipei
WEEK = timedelta(days=7)
PROBES = ("tls", "http", "edge", "leak")
CHUNK = 5000


@dataclass
class Issue:
    """One finding's life on one asset: the weeks it is reported."""

    check_id: str
    key: str
    severity: str
    probe: str
    weeks: set[int]
    accepted_at: int | None = None  # week a person accepts the risk (until after the end)


@dataclass
class FindingState:
    id: int
    issue: Issue
    state: str = "open"
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    fixed_at: datetime | None = None
    reopened: int = 0


@dataclass
class Rows:
    assets: list[dict[str, Any]] = field(default_factory=list)
    scans: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    occurrences: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _pick(rng: random.Random, lo: int, hi: int, weeks: int) -> int:
    """A week in [lo, hi), both clamped into the history, so short histories still work."""
    lo = min(lo, weeks - 1)
    return rng.randrange(lo, max(min(hi, weeks), lo + 1))


def _span(weeks: int, start: int, length: int) -> set[int]:
    return set(range(start, min(start + length, weeks)))


def issues_for(rng: random.Random, host: str, weeks: int) -> tuple[list[Issue], int]:
    """The asset's findings over the weeks, and the week of the year its certificate is renewed."""
    out: list[Issue] = []
    if rng.random() < 0.6:  # a missing WAF is common (seed 000: 8-38% adoption), and slow to fix
        end = _pick(rng, 20, weeks, weeks) if rng.random() < 0.3 else weeks
        issue = Issue("edge.waf.absent", host, "high", "edge", _span(weeks, 0, end))
        if end == weeks and rng.random() < 0.1:
            issue.accepted_at = _pick(rng, 4, 40, weeks)
        out.append(issue)
    if rng.random() < 0.05:
        out.append(Issue("edge.cdn.absent", host, "high", "edge", set(range(weeks))))
    if rng.random() < 0.4:
        out.append(Issue("http.hsts.missing", f"{host}:443", "low", "http",
                         _span(weeks, 0, _pick(rng, 10, weeks, weeks) if rng.random() < 0.5 else weeks)))
    if rng.random() < 0.5:
        banner = _span(weeks, 0, _pick(rng, 30, weeks, weeks))
        if rng.random() < 0.3:  # an upgrade brings the banner back
            banner |= _span(weeks, _pick(rng, 60, weeks, weeks), 26)
        out.append(Issue("leak.version_banner", f"{host}:server", "low", "leak", banner))
    if rng.random() < 0.25:
        out.append(Issue("tls.protocol.legacy", f"{host}:443", "medium", "tls",
                         _span(weeks, 0, _pick(rng, 10, 60, weeks))))
    if rng.random() < 0.15:
        eol = _span(weeks, _pick(rng, 0, weeks, weeks), 40)
        out.append(Issue("software.eol", f"{host}:nginx", "high", "leak", eol))
    if rng.random() < 0.1:
        start = _pick(rng, 0, weeks, weeks)
        trace = _span(weeks, start, _pick(rng, 1, 7, weeks))
        if rng.random() < 0.2:
            trace |= _span(weeks, start + 20, 2)
        out.append(Issue("leak.stack_trace", f"{host}:/api/orders", "high", "leak", trace))
    # The certificate is renewed yearly; each one is flagged in its last month (a new key each year).
    renew = rng.randrange(52)
    for year, week in enumerate(range(renew, weeks + 52, 52)):
        flagged = {w for w in range(week - 4, week) if 0 <= w < weeks}
        if flagged:
            out.append(Issue("tls.cert.expiring_soon", f"{host}:443:cert{year}", "medium", "tls", flagged))
    return out, renew


def tls_observations(host: str, address: str, week_at: datetime, renew_in: int, grade: str) -> dict[str, Any]:
    not_after = week_at + timedelta(days=renew_in)
    return {
        "host": host, "port": 443, "sni": host,
        "addresses": {address: {
            "protocol": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "cipher_bits": 256,
            "certificate": {"subject": f"CN={host}", "issuer": "CN=Bench CA", "not_before": "2024-01-01T00:00:00Z",
                            "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"), "days_left": renew_in,
                            "key_type": "EC", "key_bits": 256, "signature_algorithm": "ecdsa-with-SHA256",
                            "fingerprint_sha256": f"{abs(hash((host, not_after.year))):064x}"[:64]},
            "trust": {"trusted": True, "path": [f"CN={host}", "CN=Bench CA"], "method": "verifier"},
            "hostname_match": True, "status": "ok",
        }},
        "skipped_addresses": {},
        "suites": {address: {"protocols": {"TLSv1.2": True, "TLSv1.3": True},
                             "suites": {"TLSv1.2": ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"],
                                        "TLSv1.3": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"]},
                             "connections": 17}},
        "hsts_max_age": 31536000,
        "grade": {"grade": grade, "score": 90, "protocol_score": 100, "key_exchange_score": 90,
                  "cipher_score": 90, "caps": []},
    }


def simulate(assets: int, weeks: int, seed: int, end: datetime) -> Rows:
    rng = random.Random(seed)
    rows = Rows()
    ids = {"scan": 0, "run": 0, "finding": 0, "occ": 0, "event": 0}

    def nid(kind: str) -> int:
        ids[kind] += 1
        return ids[kind]

    first_week = end - (weeks - 1) * WEEK
    for a in range(1, assets + 1):
        host = f"a{a}.broker.test"
        address = f"127.2.{a // 250}.{a % 250 + 1}"
        kind = "website" if a % 10 < 7 else ("trading" if a % 10 < 9 else "api")
        offset = timedelta(minutes=(a * 7) % 600)  # scans spread over the morning
        rows.assets.append({"id": a, "name": f"asset-{a:03d}", "url": f"https://{host}/", "kind": kind,
                            "configured": True, "added_at": first_week + offset})
        issues, renew = issues_for(rng, host, weeks)
        known: dict[tuple[str, str], FindingState] = {}
        grade = rng.choice(["A+", "A", "A", "A", "B"])
        for w in range(weeks):
            at = first_week + w * WEEK + offset
            done = at + timedelta(seconds=40)
            scan_id = nid("scan")
            tls_failed = rng.random() < 0.02
            rows.scans.append({"id": scan_id, "asset_id": a, "status": "partial" if tls_failed else "complete",
                               "trigger": "scheduled", "full": True, "forced_active": False, "started_at": at,
                               "finished_at": done, "posture_version": "0.1.0", "catalog_version": "bench",
                               "config_hash": "bench", "dns": {"addresses": [address]}, "error": None})
            run_ids = {}
            for probe in PROBES:
                run_id = run_ids[probe] = nid("run")
                failed = probe == "tls" and tls_failed
                obs: dict[str, Any] = {}
                if probe == "tls" and not failed:
                    days_left = ((renew - w - 1) % 52 + 1) * 7  # 7 days in the week before renewal, then 364
                    obs = tls_observations(host, address, at, days_left, grade)
                elif probe != "tls":
                    obs = {"requests": 6, "status": 200, "server": "nginx"}
                rows.runs.append({"id": run_id, "scan_id": scan_id, "probe": probe,
                                  "status": "error" if failed else "ok", "started_at": at,
                                  "finished_at": at + timedelta(seconds=20), "observations": obs,
                                  "error_kind": "timeout" if failed else None,
                                  "error": "handshake timed out" if failed else None, "skip_reason": None})
            for issue in issues:
                ident = (issue.check_id, issue.key)
                reported = w in issue.weeks and not (issue.probe == "tls" and tls_failed)
                f = known.get(ident)
                if reported:
                    if f is None:
                        f = known[ident] = FindingState(nid("finding"), issue, first_seen=done)
                        _event(rows, nid("event"), f.id, scan_id, done, "opened", None, "open",
                               {"severity": issue.severity})
                    elif f.state == "fixed":
                        _event(rows, nid("event"), f.id, scan_id, done, "reopened", "fixed", "reopened",
                               {"severity": issue.severity})
                        f.state, f.fixed_at, f.reopened = "reopened", None, f.reopened + 1
                    f.last_seen = done
                    rows.occurrences.append({"id": nid("occ"), "scan_id": scan_id, "finding_id": f.id,
                                             "probe_run_id": run_ids[issue.probe], "severity": issue.severity,
                                             "evidence": {"key": issue.key}})
                    if issue.accepted_at == w and f.state in ("open", "reopened"):
                        _event(rows, nid("event"), f.id, None, done + timedelta(hours=2), "accepted", f.state,
                               "accepted", {"reason": "compensating control", "by": "ciso",
                                            "until": (end + 400 * timedelta(days=1)).isoformat()})
                        f.state = "accepted"
                elif f is not None and f.state in ("open", "reopened") and not (issue.probe == "tls" and tls_failed):
                    _event(rows, nid("event"), f.id, scan_id, done, "fixed", f.state, "fixed",
                           {"probe": issue.probe, "probe_run_id": run_ids[issue.probe]})
                    f.state, f.fixed_at = "fixed", done
        for f in known.values():
            i = f.issue
            rows.findings.append({
                "id": f.id, "asset_id": a, "check_id": i.check_id, "key": i.key, "probe": i.probe,
                "severity": i.severity, "state": f.state, "first_seen": f.first_seen, "last_seen": f.last_seen,
                "fixed_at": f.fixed_at, "reopened_count": f.reopened,
                "accepted_reason": "compensating control" if f.state == "accepted" else None,
                "accepted_by": "ciso" if f.state == "accepted" else None,
                "accepted_until": end + timedelta(days=400) if f.state == "accepted" else None,
                "false_positive_reason": None, "false_positive_by": None, "evidence": {"key": i.key},
            })
    return rows


def _event(rows: Rows, event_id: int, finding_id: int, scan_id: int | None, at: datetime, kind: str,
           from_state: str | None, to_state: str, detail: dict[str, Any]) -> None:
    rows.events.append({"id": event_id, "finding_id": finding_id, "scan_id": scan_id, "at": at, "kind": kind,
                        "from_state": from_state, "to_state": to_state, "detail": detail})


def _chunks(items: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def write(url: str, rows: Rows) -> dict[str, int]:
    """Bulk-insert the rows into a fresh database at ``url`` (schema by the store's migrations)."""
    from sqlalchemy import text

    from state.store import Store
    from state.tables.core import metadata

    order = [("assets", rows.assets), ("scans", rows.scans), ("probe_runs", rows.runs),
             ("findings", rows.findings), ("finding_occurrences", rows.occurrences),
             ("finding_events", rows.events)]
    with Store.open(url) as store:
        if store.assets():
            raise SystemExit(f"{store.url} already holds assets: give an empty database")
        with store.engine.begin() as conn:
            for name, items in order:
                table = metadata.tables[name]
                for chunk in _chunks(items):
                    conn.execute(table.insert(), chunk)
            if store.dialect == "postgresql":  # explicit ids: move each sequence past them
                for name, _ in order:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                      f"(SELECT COALESCE(MAX(id), 1) FROM {name}))"))
            conn.execute(text("ANALYZE"))  # planner statistics, as a database in use would have
    return {name: len(items) for name, items in order}


def write_config(path: Path, rows: Rows) -> None:
    lines = []
    for a in rows.assets:
        lines += ["[[assets]]", f'name = "{a["name"]}"', f'url = "{a["url"]}"', f'kind = "{a["kind"]}"', ""]
    path.write_text("\n".join(lines))


def commands(help_text: str, findings_help: str) -> list[tuple[str, list[str]]]:
    out = [("findings --status open", ["findings", "--status", "open", "--format", "json"])]
    if "--overdue" in findings_help:
        out.append(("findings --overdue", ["findings", "--overdue", "--format", "json"]))
    if " digest " in help_text:
        out.append(("digest --format json", ["digest", "--format", "json"]))
    out.append(("report --format json", ["report", "--format", "json"]))
    out.append(("report (html)", ["report"]))
    return out


def measure(url: str, config: Path, now: str, repeat: int) -> list[dict[str, Any]]:
    base = [sys.executable, "-m", "agent", "--config", str(config), "--db", url, "--now", now]
    help_text = subprocess.run([sys.executable, "-m", "agent", "--help"], capture_output=True, text=True,
                               cwd=REPO).stdout
    findings_help = subprocess.run([sys.executable, "-m", "agent", "findings", "--help"], capture_output=True,
                                   text=True, cwd=REPO).stdout
    startup, _ = _time([sys.executable, "-m", "agent", "--version"], repeat)
    results: list[dict[str, Any]] = [{"command": "posture --version (start-up alone)", "best_s": min(startup),
                                      "median_s": statistics.median(startup), "bytes": 0}]
    for label, args in commands(help_text, findings_help):
        times, size = _time(base + args, repeat)
        results.append({"command": label, "best_s": min(times), "median_s": statistics.median(times),
                        "bytes": size})
    return results


def _time(cmd: list[str], repeat: int) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, cwd=REPO)
        times.append(round(time.perf_counter() - start, 3))
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(cmd[3:])} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
        size = len(proc.stdout)
    return times, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="an EMPTY database URL (default: a new SQLite file in a temp dir)")
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--weeks", type=int, default=156)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (best and median shown)")
    parser.add_argument("--keep", type=Path,
                        help="keep the SQLite file and config in this directory (and measure them again next time)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="posture-history-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        url = args.db or f"sqlite:///{workdir / 'history.db'}"
        config = workdir / "posture.toml"
        counts: dict[str, int] = {}
        if args.keep and not args.db and (workdir / "history.db").exists() and config.exists():
            print(f"measuring the history kept in {workdir} (delete it to generate a new one)")
        else:
            started = time.perf_counter()
            rows = simulate(args.assets, args.weeks, args.seed, END)
            simulated = time.perf_counter() - started
            counts = write(url, rows)
            written = time.perf_counter() - started - simulated
            write_config(config, rows)
            open_now = sum(f["state"] in ("open", "reopened") for f in rows.findings)
            print(f"generated {args.assets} assets x {args.weeks} weekly scans in {simulated:.1f} s, "
                  f"written in {written:.1f} s: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
            print(f"{open_now} findings open at the end; database {url.split('@')[-1]}")
        if url.startswith("sqlite:///"):
            print(f"SQLite file: {Path(url.removeprefix('sqlite:///')).stat().st_size / 2**20:.0f} MiB")
        now = (END + timedelta(days=1)).isoformat()
        results = measure(url, config, now, args.repeat)
        print(f"\n{'command (--now ' + now + ')':<52} {'best s':>8} {'median s':>9} {'output KiB':>11}")
        for r in results:
            print(f"{r['command']:<52} {r['best_s']:>8.2f} {r['median_s']:>9.2f} {r['bytes'] / 1024:>11.0f}")
        if args.json:
            print(json.dumps({"rows": counts, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
