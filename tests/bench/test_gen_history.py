"""The bench's generated history is what posture itself would have stored.

``bench/gen_history.py`` writes three years of scans with bulk INSERTs instead of
``Store.record_scan`` (minutes instead of hours). Its timings only mean something if
the rows are the ones the real lifecycle produces, so a small history is written
both ways, the bulk way and scan by scan through the store, and compared: every
finding's state, dates and reopen count, and every finding's event sequence.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from state.records import AssetRecord, FindingRecord, ProbeRunRecord, RunStatus, ScanRecord, ScanStatus, Trigger
from state.store import Store
from state.views import EventKind, FindingFilter

BENCH = Path(__file__).resolve().parents[2] / "bench" / "gen_history.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gen_history", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def replay_through_store(url: str, rows: Any) -> None:
    """Every generated scan as a ScanRecord through Store.record_scan; acceptances through Store.accept."""
    assets = {a["id"]: AssetRecord(a["name"], a["url"], a["kind"], a["configured"]) for a in rows.assets}
    runs_by_scan: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for run in rows.runs:
        runs_by_scan[run["scan_id"]].append(run)
    findings = {f["id"]: f for f in rows.findings}
    reported: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for occ in rows.occurrences:
        reported[occ["probe_run_id"]].append((occ["finding_id"], occ))
    accepts = defaultdict(list)
    for event in rows.events:
        if event["kind"] == "accepted":
            accepts[event["at"] - timedelta(hours=2)].append(event)  # accepted two hours after that scan
    with Store.open(url) as store:
        ids: dict[tuple[str, str, str], int] = {}
        for scan in rows.scans:
            asset = assets[scan["asset_id"]]
            probe_runs = tuple(
                ProbeRunRecord(
                    r["probe"], RunStatus(r["status"]), r["started_at"], r["finished_at"], r["observations"],
                    tuple(FindingRecord(findings[fid]["check_id"], findings[fid]["key"], occ["severity"],
                                        occ["evidence"]) for fid, occ in reported[r["id"]]),
                    error_kind=r["error_kind"], error=r["error"],
                )
                for r in runs_by_scan[scan["id"]]
            )
            stored = store.record_scan(ScanRecord(
                asset, ScanStatus(scan["status"]), scan["started_at"], scan["finished_at"], "0.1.0", "bench",
                "bench", probe_runs, trigger=Trigger(scan["trigger"]), full=scan["full"],
            ))
            for (check_id, key), fid in stored.finding_ids.items():
                ids[(asset.name, check_id, key)] = fid
            for event in accepts.get(scan["finished_at"], []):
                f = findings[event["finding_id"]]
                name = assets[f["asset_id"]].name
                store.accept(ids[(name, f["check_id"], f["key"])], event["detail"]["reason"], event["detail"]["by"],
                             f["accepted_until"], event["at"])


def summary(url: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    with Store.open(url) as store:
        out = {}
        for f in store.findings(FindingFilter.ALL):
            kinds = tuple(EventKind(e.kind).value for e in store.events(f.id))
            out[(f.asset, f.check_id, f.key)] = (f.state.value, f.first_seen, f.last_seen, f.fixed_at,
                                                 f.reopened_count, f.severity, kinds)
        return out


def test_bulk_history_equals_the_real_lifecycle(tmp_path: Path) -> None:
    bench = load_bench()
    # Seed and size chosen so the sample has every kind of life: fixed, reopened, accepted, failed tls runs.
    rows = bench.simulate(4, 40, 0, bench.END)
    kinds = {e["kind"] for e in rows.events}
    assert kinds == {"opened", "fixed", "reopened", "accepted"}, kinds
    assert any(r["status"] == "error" for r in rows.runs)

    bulk, real = f"sqlite:///{tmp_path / 'bulk.db'}", f"sqlite:///{tmp_path / 'real.db'}"
    counts = bench.write(bulk, rows)
    assert counts["scans"] == 4 * 40 and counts["probe_runs"] == 4 * 40 * 4
    replay_through_store(real, rows)

    expected, got = summary(real), summary(bulk)
    assert got.keys() == expected.keys() and len(got) == len(rows.findings)
    for ident, value in expected.items():
        assert got[ident] == value, ident
    with Store.open(bulk) as b, Store.open(real) as r:
        assert [(s.asset, s.status, s.started_at) for s in b.scans()] == [
            (s.asset, s.status, s.started_at) for s in r.scans()
        ]


def test_new_scans_follow_a_bulk_history(store_url: str) -> None:
    """Explicit ids in the bulk INSERTs: the writer must move PostgreSQL's sequences past them."""
    bench = load_bench()
    rows = bench.simulate(2, 5, 0, bench.END)
    bench.write(store_url, rows)
    asset = AssetRecord(rows.assets[0]["name"], rows.assets[0]["url"], rows.assets[0]["kind"], True)
    at = bench.END + timedelta(days=7)
    run = ProbeRunRecord("http", RunStatus.OK, at, at, {}, (FindingRecord("http.hsts.missing", "new", "low", {}),))
    with Store.open(store_url) as store:
        stored = store.record_scan(ScanRecord(asset, ScanStatus.COMPLETE, at, at, "0.1.0", "bench", "bench", (run,)))
        assert stored.scan_id == len(rows.scans) + 1
        assert stored.finding_ids[("http.hsts.missing", "new")] == len(rows.findings) + 1
