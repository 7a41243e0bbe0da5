"""Scans, assets and the read side: begin/finish, interruption, queries, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from state.errors import InvalidRequest, InvalidTransition, NotFound
from state.records import AssetRecord, FindingRecord, FindingState, RunStatus, ScanStatus, Trigger
from state.store import Store
from state.views import EventKind, FindingFilter, HistoryKind
from tests.state.factory import DAY, T0, TRADE, WWW, done, finding, run, scan

TAIPEI = timezone(timedelta(hours=8))
EXPIRED = finding("tls.cert.expired", "www.broker.test:443", "critical")


def begin(store: Store, at: datetime = T0) -> int:
    return store.begin_scan(WWW, at, posture_version="0.1.0", catalog_version="2025.1",
                            config_hash="sha256:cafe", trigger=Trigger.SCHEDULED)


def test_begin_then_finish(store: Store) -> None:
    scan_id = begin(store)
    running = store.scans(status=ScanStatus.RUNNING)
    assert [s.id for s in running] == [scan_id] and running[0].finished_at is None
    assert running[0].trigger == Trigger.SCHEDULED

    stored = store.finish_scan(scan_id, scan(T0, [run("tls", EXPIRED)], trigger=Trigger.SCHEDULED))
    assert stored.scan_id == scan_id and len(stored.opened) == 1
    detail = store.scan(scan_id)
    assert detail.scan.status == ScanStatus.COMPLETE and detail.scan.finished_at == done(T0)
    assert [r.probe for r in detail.probe_runs] == ["tls"]
    assert detail.occurrences[0].finding_id == stored.opened[0]
    assert store.scans(status=ScanStatus.RUNNING) == []
    with pytest.raises(InvalidTransition, match="is complete, not running"):
        store.finish_scan(scan_id, scan(T0, [run("tls")]))


def test_interrupted_running_scan(store: Store) -> None:
    fid = store.record_scan(scan(T0 - DAY, [run("tls", EXPIRED)])).opened[0]
    scan_id = begin(store)
    store.mark_interrupted(scan_id, T0 + timedelta(minutes=3))
    info = store.scan(scan_id).scan
    assert info.status == ScanStatus.INTERRUPTED and info.finished_at == T0 + timedelta(minutes=3)
    assert info.error == "interrupted before the scan finished"
    assert store.finding(fid).state == FindingState.OPEN
    with pytest.raises(InvalidTransition):
        store.mark_interrupted(scan_id, T0 + DAY)
    with pytest.raises(InvalidTransition):
        store.finish_scan(scan_id, scan(T0, [run("tls")]))
    with pytest.raises(NotFound, match="no scan with id 4242"):
        store.mark_interrupted(4242, T0)


def test_finish_refuses_running_status_and_other_asset(store: Store) -> None:
    scan_id = begin(store)
    with pytest.raises(InvalidRequest, match="cannot have status running"):
        store.finish_scan(scan_id, scan(T0, [run("tls")], status=ScanStatus.RUNNING))
    with pytest.raises(InvalidRequest, match="another asset"):
        store.finish_scan(scan_id, scan(T0, [run("tls")], asset=TRADE))
    assert store.scan(scan_id).scan.status == ScanStatus.RUNNING


def test_asset_upsert_updates_and_keeps_added_at(store: Store) -> None:
    added = store.upsert_asset(WWW, T0)
    assert added.added_at == T0 and added.configured
    moved = AssetRecord(name="www", url="https://www2.broker.test/", kind="api", configured=False)
    store.record_scan(scan(T0 + DAY, [run("tls")], asset=moved))
    (info,) = store.assets()
    assert (info.url, info.kind, info.configured, info.added_at) == (moved.url, "api", False, T0)
    assert store.asset("www") == info
    with pytest.raises(NotFound):
        store.asset("nope")


def test_last_complete_scan_counts_only_full_complete_scans(store: Store) -> None:
    assert store.last_complete_scan("www") is None
    complete = store.record_scan(scan(T0, [run("tls"), run("http")]))
    store.record_scan(scan(T0 + DAY, [run("tls"), run("http", status=RunStatus.ERROR)]))  # partial
    store.record_scan(scan(T0 + 2 * DAY, [run("tls")], full=False))  # narrowed with --probe
    store.record_scan(scan(T0 + 3 * DAY, [run("tls")], status=ScanStatus.INTERRUPTED))
    begin(store, T0 + 4 * DAY)
    last = store.last_complete_scan("www")
    assert last is not None and last.id == complete.scan_id
    assert store.last_complete_scan("unknown") is None


def test_scans_window_and_asset_filter(store: Store) -> None:
    ids = [store.record_scan(scan(T0 + n * DAY, [run("tls")])).scan_id for n in range(4)]
    other = store.record_scan(scan(T0, [run("tls")], asset=TRADE)).scan_id
    assert [s.id for s in store.scans(asset="www")] == ids
    assert [s.id for s in store.scans(asset="www", since=T0 + DAY, until=T0 + 3 * DAY)] == ids[1:3]
    assert {s.id for s in store.scans(until=T0 + DAY)} == {ids[0], other}
    assert store.scans(asset="nobody") == []
    assert store.scan(ids[0]).scan.dns == {"resolver": "127.0.0.1:5353", "addresses": ["127.0.0.1"]}
    with pytest.raises(NotFound):
        store.scan(99_999)


def test_history_replays_scans_and_events_in_order(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("tls", EXPIRED)]))
    fid = first.opened[0]
    store.accept(fid, "renewal ordered", "ops", T0 + 5 * DAY, T0 + DAY)
    second = store.record_scan(scan(T0 + 10 * DAY, [run("tls")]))
    store.record_scan(scan(T0, [run("tls")], asset=TRADE))  # another asset's history stays out
    entries = store.history("www")
    summary = [(e.kind, e.scan.id if e.scan else e.event.kind if e.event else None) for e in entries]
    assert summary == [
        (HistoryKind.SCAN, first.scan_id),
        (HistoryKind.EVENT, EventKind.OPENED),
        (HistoryKind.EVENT, EventKind.ACCEPTED),
        (HistoryKind.SCAN, second.scan_id),
        (HistoryKind.EVENT, EventKind.ACCEPTANCE_EXPIRED),
        (HistoryKind.EVENT, EventKind.FIXED),
    ]
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    opened = entries[1].event
    assert opened is not None and (opened.check_id, opened.key, opened.asset) == (
        "tls.cert.expired", "www.broker.test:443", "www")
    windowed = store.history("www", since=T0 + DAY, until=T0 + 10 * DAY + timedelta(seconds=1))
    assert [e.kind for e in windowed] == [HistoryKind.EVENT, HistoryKind.SCAN]
    with pytest.raises(NotFound):
        store.history("nobody")


def test_timestamps_come_back_aware_utc(store: Store) -> None:
    local = datetime(2025, 3, 3, 9, 0, tzinfo=TAIPEI)  # the same instant as T0
    stored = store.record_scan(scan(local, [run("tls", EXPIRED, at=local)]))
    detail = store.scan(stored.scan_id)
    info = store.finding(stored.opened[0])
    stamps = [
        detail.scan.started_at, detail.scan.finished_at, detail.probe_runs[0].started_at,
        detail.probe_runs[0].finished_at, info.first_seen, info.last_seen,
        store.events(info.id)[0].at, store.assets()[0].added_at,
    ]
    for stamp in stamps:
        assert stamp is not None and stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
    assert detail.scan.started_at == T0 and detail.scan.started_at.tzinfo == UTC
    # Microseconds survive both databases.
    precise = T0 + timedelta(days=2, microseconds=123456)
    sid = store.record_scan(scan(precise, [run("tls")])).scan_id
    assert store.scan(sid).scan.started_at == precise


def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = T0.replace(tzinfo=None)
    with pytest.raises(InvalidRequest, match="started_at: naive datetime"):
        store.record_scan(scan(naive, [run("tls")]))
    with pytest.raises(InvalidRequest, match="naive"):
        store.record_scan(scan(T0, [run("tls", at=naive)]))
    with pytest.raises(InvalidRequest, match="now: naive"):
        store.reopen_expired_acceptances(naive)
    assert store.scans() == [] and store.assets() == []


def test_unicode_evidence_round_trips(store: Store) -> None:
    evidence = {"title": "憑證已過期", "pages": ["https://www.broker.test/關於我們"], "n": 3, "ok": None}
    report = FindingRecord(check_id="tls.cert.expired", key="k", severity="high", evidence=evidence)
    stored = store.record_scan(scan(T0, [run("tls", report)]))
    assert store.finding(stored.opened[0]).evidence == evidence


def test_prune_removes_old_scans_but_keeps_finding_history(store: Store) -> None:
    old = store.record_scan(scan(T0, [run("tls", EXPIRED)]))
    fid = old.opened[0]
    recent = store.record_scan(scan(T0 + 400 * DAY, [run("tls", EXPIRED)]))
    running = begin(store, T0 - DAY)
    assert store.prune_scans(T0 + 365 * DAY) == 1  # the running scan is not pruned
    assert [s.id for s in store.scans()] == [running, recent.scan_id]
    info = store.finding(fid)
    assert info.first_seen == done(T0) and info.state == FindingState.OPEN
    (opened,) = store.events(fid)
    assert opened.kind == EventKind.OPENED and opened.scan_id is None  # history kept, link dropped
    assert len(store.scan(recent.scan_id).occurrences) == 1
    with store.engine.connect() as conn:  # the database cascaded the old scan's rows away
        counts = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("probe_runs", "finding_occurrences")]
    assert counts == [1, 1]


def test_enum_fields_are_stored_as_their_words_and_read_back_as_plain_strings(store: Store) -> None:
    """AssetRecord.kind and FindingRecord.severity are vocab enums; the columns keep the same
    strings as before (no migration), so rows an older posture wrote read back alike."""
    from vocab import AssetKind, Severity

    assert isinstance(WWW.kind, AssetKind) and isinstance(EXPIRED.severity, Severity)
    store.record_scan(scan(T0, [run("tls", EXPIRED)]))
    with store.engine.connect() as conn:
        kinds = {row[0] for row in conn.execute(text("SELECT kind FROM assets"))}
        severities = {row[0] for row in conn.execute(text("SELECT severity FROM findings"))}
        occurrences = {row[0] for row in conn.execute(text("SELECT severity FROM finding_occurrences"))}
    assert kinds == {"website"} and severities == occurrences == {"critical"}
    assert all(type(v) is str for v in kinds | severities)
    asset = store.asset("www")
    assert asset.kind == AssetKind.WEBSITE and type(asset.kind) is str
    (f,) = store.findings(FindingFilter.OPEN)
    assert f.severity == Severity.CRITICAL and Severity(f.severity).rank == 4


def test_findings_with_ids_reads_only_those_across_assets_in_batches(store: Store) -> None:
    """What ``posture scan --format json`` annotates its findings from: the findings with these ids,
    whatever their asset, unknown ids left out, more ids than one IN (...) batch holds."""
    many = [finding("http.hsts.missing", f"www.broker.test:{port}") for port in range(1, 601)]
    store.record_scan(scan(T0, [run("http", *many)]))
    store.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "order.broker.test:9443"))], asset=TRADE))
    every = {f.id: f for f in store.findings()}
    assert len(every) == 601
    trade = next(i for i, f in every.items() if f.asset == "trade")
    some = sorted(every)[::2]
    got = store.findings_with_ids([*some, trade, 10**9])
    assert [f.id for f in got] == sorted({*some, trade})
    assert {f.asset for f in got} == {"www", "trade"}
    assert got == [every[f.id] for f in got]  # the same views as a listing gives
    assert store.findings_with_ids([]) == []
