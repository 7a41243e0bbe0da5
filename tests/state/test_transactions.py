"""One scan, one transaction: a failure half-way leaves nothing of that scan behind."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select

from state.errors import InvalidRequest, StoreError
from state.records import AssetRecord, FindingState
from state.store import Store
from state.tables.core import EventRow, OccurrenceRow, ProbeRunRow, ScanRow
from tests.state.factory import DAY, T0, WWW, finding, run, scan


def counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table.__tablename__: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (ScanRow, ProbeRunRow, OccurrenceRow, EventRow)
        }


def test_failure_mid_write_stores_nothing_of_the_scan(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "h:443")), run("http")]))
    before = counts(store)
    executed: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        executed.append(statement.split("(")[0].strip())

    moved = AssetRecord(name=WWW.name, url="https://moved.broker.test/", kind=WWW.kind, configured=True)
    # Fixes the tls finding, opens fresh ones, and one evidence value JSON cannot hold.
    poisoned = scan(
        T0 + DAY,
        [
            run("tls"),
            run("http", finding("http.hsts.missing", "h:443", "low"),
                finding("http.no_https", "h:80", "high", ports={80, 8080})),
        ],
        asset=moved,
    )
    event.listen(store.engine, "after_cursor_execute", capture)
    try:
        with pytest.raises(InvalidRequest) as raised:
            store.record_scan(poisoned)
    finally:
        event.remove(store.engine, "after_cursor_execute", capture)

    # It failed half-way: the scan and its probe runs had already been written.
    assert any(s.startswith("INSERT INTO scans") for s in executed), executed
    assert any(s.startswith("INSERT INTO probe_runs") for s in executed), executed
    assert "\n" not in str(raised.value) and "not JSON serializable" in str(raised.value)

    assert counts(store) == before
    assert [s.id for s in store.scans()] == [first.scan_id]
    assert store.assets()[0].url == WWW.url  # the asset update rolled back too
    (only,) = store.findings()
    assert only.state == FindingState.OPEN and only.check_id == "tls.cert.expired"

    # The store is still usable, and the next good scan applies normally.
    retry = store.record_scan(scan(T0 + DAY, [run("tls"), run("http")]))
    assert retry.fixed == (only.id,)


def test_failure_in_finish_keeps_the_running_row(store: Store) -> None:
    scan_id = store.begin_scan(WWW, T0, posture_version="0.1.0", catalog_version="1", config_hash="h")
    with pytest.raises(StoreError):
        store.finish_scan(scan_id, scan(T0, [run("tls", finding("a", "b", bad=float("nan")))]))
    detail = store.scan(scan_id)
    assert detail.scan.status.value == "running" and detail.probe_runs == ()
    assert store.findings() == []
    # The daemon can still mark it interrupted.
    store.mark_interrupted(scan_id, T0 + DAY, "worker crashed")
    assert store.scan(scan_id).scan.error == "worker crashed"
