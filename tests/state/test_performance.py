"""Performance sanity: timings are printed, not asserted (machines differ)."""

from __future__ import annotations

import time

import pytest

from state.store import Store
from tests.state.factory import DAY, T0, finding, run, scan


def test_record_scan_with_50_findings(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    reports = [
        finding("ports.unexpected_open", f"{port}", "medium", port=port, banner="OpenSSH_9.2p1 中文")
        for port in range(8000, 8050)
    ]
    timings: dict[str, float] = {}
    with Store.open(store_url) as store:
        store.record_scan(scan(T0 - DAY, [run("tls")]))  # warm: asset row, connection pool
        for label, at, runs in [
            ("50 new", T0, [run("ports", *reports), run("tls")]),
            ("50 seen again", T0 + DAY, [run("ports", *reports), run("tls")]),
            ("50 fixed", T0 + 2 * DAY, [run("ports"), run("tls")]),
        ]:
            started = time.perf_counter()
            stored = store.record_scan(scan(at, runs))
            timings[label] = (time.perf_counter() - started) * 1000
            assert len(stored.finding_ids) == (0 if label == "50 fixed" else 50)
        assert len(store.findings()) == 50
        dialect = store.dialect
    with capsys.disabled():
        shown = ", ".join(f"{label} {ms:.1f} ms" for label, ms in timings.items())
        print(f"\n[perf] record_scan on {dialect}: {shown}")
