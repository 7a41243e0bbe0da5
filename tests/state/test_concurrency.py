"""Several stores on one database: a daemon and a CLI at the same time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import text

from state.engine import writer
from state.records import AssetRecord
from state.store import Store
from state.views import FindingFilter
from tests.state.factory import DAY, T0, finding, run, scan


def test_sqlite_wal_readers_do_not_wait_and_writers_queue(sqlite_url: str) -> None:
    with Store.open(sqlite_url) as daemon, Store.open(sqlite_url) as cli:
        daemon.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "h:443"))]))
        held = writer(daemon.engine).connect()
        try:
            # The daemon holds the write lock with an uncommitted change.
            held.execute(text(
                "INSERT INTO assets (name, url, kind, configured, added_at)"
                " VALUES ('pending', 'https://p.test/', 'website', 1, '2025-01-01 00:00:00')"
            ))
            started = time.monotonic()
            assert [a.name for a in cli.assets()] == ["www"]  # reads the last commit, at once
            assert len(cli.findings(FindingFilter.OPEN)) == 1
            assert time.monotonic() - started < 7.5  # not the 15 s busy timeout

            finished = threading.Event()

            def write() -> None:
                cli.record_scan(scan(T0 + DAY, [run("tls")]))
                finished.set()

            with ThreadPoolExecutor(max_workers=1) as pool:
                pending = pool.submit(write)
                time.sleep(0.3)
                assert not finished.is_set()  # queued on the lock (busy timeout), not failed
                held.commit()
                pending.result(timeout=10)
        finally:
            held.close()
        assert {a.name for a in daemon.assets()} == {"www", "pending"}
        assert daemon.findings(FindingFilter.OPEN) == []  # the cli's scan fixed it


def test_concurrent_scans_of_one_asset_share_findings(store_url: str) -> None:
    # Each round both stores report a finding new to the database at the same moment:
    # without serialisation both would insert it (a unique violation, or two ids).
    stores = [Store.open(store_url) for _ in range(2)]
    rounds = 8
    barrier = threading.Barrier(2)
    try:
        def rounds_of(index: int) -> list[int]:
            ids = []
            for n in range(rounds):
                # Everything found so far is still there, plus one finding new this round.
                reports = [finding("leak.stack_trace", f"/probe-{i}", "high") for i in range(n + 1)]
                barrier.wait(timeout=30)
                at = T0 + timedelta(minutes=10 * n + index)
                stored = stores[index].record_scan(scan(at, [run("leak", *reports)]))
                ids.append(stored.finding_ids[("leak.stack_trace", f"/probe-{n}")])
            return ids

        def worker(index: int) -> list[int]:
            try:
                return rounds_of(index)
            except BaseException:
                barrier.abort()  # release the other worker at once instead of after its timeout
                raise

        with ThreadPoolExecutor(max_workers=2) as pool:
            first, second = (f.result(timeout=60) for f in [pool.submit(worker, i) for i in range(2)])
        assert first == second  # both saw the same finding each round
        found = stores[0].findings()
        assert sorted(f.id for f in found) == sorted(first) and len(found) == rounds
        assert len(stores[1].scans()) == 2 * rounds
        for info in found:
            assert [e.kind.value for e in stores[0].events(info.id)] == ["opened"]  # opened once
    finally:
        for store in stores:
            store.close()


def test_concurrent_new_assets(store_url: str) -> None:
    stores = [Store.open(store_url) for _ in range(3)]
    try:
        def worker(index: int) -> None:
            for n in range(5):
                asset = AssetRecord(name=f"api{n}", url=f"https://api{n}.broker.test/", kind="api",
                                    configured=True)
                stores[index].record_scan(scan(T0 + timedelta(seconds=index), [run("tls")], asset=asset))

        with ThreadPoolExecutor(max_workers=3) as pool:
            for future in [pool.submit(worker, i) for i in range(3)]:
                future.result(timeout=60)
        assert [a.name for a in stores[0].assets()] == [f"api{n}" for n in range(5)]
        assert len(stores[0].scans()) == 15
    finally:
        for store in stores:
            store.close()
