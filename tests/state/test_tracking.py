"""The delivery log, third-party scans and tracking reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from state import deliveries, external_scans
from state import history_reads as tracking
from state.deliveries import Wanted
from state.delivery_views import DeliveryEvent, DeliveryState
from state.errors import InvalidRequest, NotFound
from state.records import RunStatus, ScanStatus
from state.store import Store
from tests.state.factory import DAY, T0, TRADE, WWW, done, finding, run, scan

LEASE = timedelta(minutes=5)


def want(condition: str, channel: str = "c1") -> Wanted:
    return Wanted(channel, "json://127.0.0.1:1/", DeliveryEvent.ALERT, condition, {"condition": condition})


def test_a_condition_is_logged_once_per_channel(store: Store) -> None:
    first = deliveries.record(store, [want("a"), want("b"), want("a")], T0)
    assert len(first) == 2
    assert deliveries.record(store, [want("a"), want("b")], T0 + DAY) == []
    assert len(deliveries.record(store, [want("a", channel="c2")], T0)) == 1
    rows = deliveries.deliveries(store, channel="c1")
    assert [r.condition for r in rows] == ["a", "b"]
    assert all(r.state == DeliveryState.PENDING and r.attempts == 0 and r.payload["condition"] == r.condition
               for r in rows)


def test_claim_send_fail_and_retry(store: Store) -> None:
    deliveries.record(store, [want("a"), want("b")], T0)
    claimed = deliveries.claim(store, "c1", T0, LEASE)
    assert [c.condition for c in claimed] == ["a", "b"] and all(c.attempts == 1 for c in claimed)
    # Claimed rows are leased: nobody else takes them meanwhile.
    assert deliveries.claim(store, "c1", T0 + timedelta(minutes=1), LEASE) == []
    deliveries.mark_failed(store, [c.id for c in claimed], "HTTP 500", T0 + timedelta(minutes=2))
    assert deliveries.claim(store, "c1", T0 + timedelta(minutes=1), LEASE) == []
    again = deliveries.claim(store, "c1", T0 + timedelta(minutes=2), LEASE)
    assert [c.attempts for c in again] == [2, 2] and again[0].last_error == "HTTP 500"
    deliveries.mark_sent(store, [c.id for c in again], T0 + timedelta(minutes=3))
    sent = deliveries.deliveries(store, states=[DeliveryState.SENT])
    assert len(sent) == 2 and all(s.sent_at == T0 + timedelta(minutes=3) and s.last_error is None for s in sent)
    assert deliveries.claim(store, "c1", T0 + DAY, LEASE) == []


def test_a_dead_sender_leaves_its_claim_to_be_retried(store: Store) -> None:
    deliveries.record(store, [want("a")], T0)
    assert len(deliveries.claim(store, "c1", T0, LEASE)) == 1
    (retaken,) = deliveries.claim(store, "c1", T0 + LEASE, LEASE)
    assert retaken.attempts == 2


def test_one_off_failure_and_supersede_and_prune(store: Store) -> None:
    deliveries.record(store, [want("warn"), want("once")], T0)
    rows = {r.condition: r for r in deliveries.deliveries(store)}
    deliveries.supersede(store, [rows["warn"].id])
    claimed = deliveries.claim(store, "c1", T0, LEASE)
    assert [c.condition for c in claimed] == ["once"]
    deliveries.mark_failed(store, [claimed[0].id], "refused", None)
    states = {r.condition: r.state for r in deliveries.deliveries(store)}
    assert states == {"warn": DeliveryState.SUPERSEDED, "once": DeliveryState.FAILED}
    deliveries.record(store, [want("still-pending")], T0)
    assert deliveries.prune(store, T0 + DAY) == 2
    assert [r.condition for r in deliveries.deliveries(store)] == ["still-pending"]
    assert [r.condition for r in deliveries.deliveries(store, prefix="still")] == ["still-pending"]


def test_third_party_scans_keep_their_evidence(store: Store) -> None:
    store.upsert_asset(WWW, T0)
    report = "弱點掃描報告\n".encode() + bytes(range(256)) * 10
    info = external_scans.record(store, "www", performed_at=T0 + DAY, performed_by="ACME 資安",
                                 evidence_name="report.pdf", evidence=report, recorded_at=T0 + 2 * DAY)
    assert info.evidence_sha256 == hashlib.sha256(report).hexdigest()
    assert info.evidence_size == len(report) and info.performed_at == T0 + DAY and info.asset == "www"
    assert external_scans.evidence(store, info.id) == ("report.pdf", report)
    assert external_scans.scans(store, "www") == [info]
    assert external_scans.latest(store) == {"www": T0 + DAY}
    assert external_scans.latest(store, until=T0 + DAY) == {}
    with pytest.raises(NotFound):
        external_scans.record(store, "nope", performed_at=T0, performed_by="x", evidence_name="r",
                              evidence=b"x", recorded_at=T0)
    with pytest.raises(InvalidRequest, match="future"):
        external_scans.record(store, "www", performed_at=T0 + 9 * DAY, performed_by="x", evidence_name="r",
                              evidence=b"x", recorded_at=T0)
    with pytest.raises(InvalidRequest, match="empty"):
        external_scans.record(store, "www", performed_at=T0, performed_by="x", evidence_name="r",
                              evidence=b"", recorded_at=T0)
    assert external_scans.prune(store, T0 + 2 * DAY) == 1 and external_scans.scans(store) == []


def test_scan_times_and_latest_runs(store: Store) -> None:
    store.record_scan(scan(T0, [run("tls", observations={"n": 1})]))
    store.record_scan(scan(T0 + DAY, [run("tls", observations={"n": 2})], full=False))
    store.record_scan(scan(T0 + 2 * DAY, [run("tls", status=RunStatus.ERROR)]))
    store.record_scan(scan(T0, [run("tls", observations={"n": 9})], asset=TRADE, status=ScanStatus.FAILED))
    times = tracking.scan_times(store)
    assert times["www"].last_complete == done(T0) and times["www"].last_attempt == T0 + 2 * DAY
    assert times["trade"].last_complete is None and times["trade"].last_attempt == T0
    assert tracking.scan_times(store, until=T0 + DAY)["www"].last_attempt == T0
    latest = tracking.latest_runs(store, "tls")
    assert latest["www"].observations == {"n": 2}  # the newest OK run, narrowed scans included
    assert tracking.latest_runs(store, "tls", ["trade"])["trade"].observations == {"n": 9}
    assert tracking.latest_runs(store, "http") == {}


def test_reopened_at(store: Store) -> None:
    bad = finding("tls.cert.expired", "h:443", "critical")
    fid = store.record_scan(scan(T0, [run("tls", bad)])).opened[0]
    store.record_scan(scan(T0 + DAY, [run("tls")]))
    store.record_scan(scan(T0 + 3 * DAY, [run("tls", bad)]))
    assert tracking.reopened_at(store, [fid, 999]) == {fid: done(T0 + 3 * DAY)}
