"""Performance sanity: SQL statements per stored scan are bounded (they do not vary between
machines); timings are printed, and only a generous ceiling is asserted (machines differ)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event

from state.store import Store
from tests.state.factory import DAY, T0, finding, run, scan


def test_record_scan_with_50_findings(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    reports = [
        finding("ports.unexpected_open", f"{port}", "medium", port=port, banner="OpenSSH_9.2p1 中文")
        for port in range(8000, 8050)
    ]
    timings: dict[str, float] = {}
    statements: dict[str, int] = {}
    # A scan costs the same few statements however many findings it has (state.scan_write): asset
    # upsert, scan row, probe runs, the asset's findings; then new findings, occurrences, events
    # (with the config hashes the fixed ones were last seen under), one UPDATE per set of changed
    # columns. SQLite adds its BEGIN IMMEDIATE. One statement more, or one per finding, fails this.
    bounds = {"50 new": 7, "50 seen again": 6, "50 fixed": 7}
    counted = [0]

    def count(*_: object, **__: object) -> None:
        counted[0] += 1

    with Store.open(store_url) as store:
        store.record_scan(scan(T0 - DAY, [run("tls")]))  # warm: asset row, connection pool
        event.listen(store.engine, "before_cursor_execute", count)
        begin = 1 if store.dialect == "sqlite" else 0
        for label, at, runs in [
            ("50 new", T0, [run("ports", *reports), run("tls")]),
            ("50 seen again", T0 + DAY, [run("ports", *reports), run("tls")]),
            ("50 fixed", T0 + 2 * DAY, [run("ports"), run("tls")]),
        ]:
            counted[0] = 0
            started = time.perf_counter()
            stored = store.record_scan(scan(at, runs))
            timings[label] = (time.perf_counter() - started) * 1000
            statements[label] = counted[0]
            assert counted[0] <= bounds[label] + begin, (label, counted[0])
            assert timings[label] < 10_000, (label, timings[label])  # a ceiling no machine should reach
            assert len(stored.finding_ids) == (0 if label == "50 fixed" else 50)
        assert len(store.findings()) == 50
        dialect = store.dialect
    with capsys.disabled():
        shown = ", ".join(f"{label} {ms:.1f} ms ({statements[label]} statements)" for label, ms in timings.items())
        print(f"\n[perf] record_scan on {dialect}: {shown}")
