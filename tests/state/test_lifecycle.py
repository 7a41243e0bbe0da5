"""The finding lifecycle (issue 9) on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest

from state.errors import InvalidRequest, InvalidTransition, NotFound
from state.records import (
    FindingRecord,
    FindingState,
    Observed,
    ProbeRunRecord,
    RunStatus,
    ScanRecord,
    ScanStatus,
)
from state.store import Store
from state.views import EventKind, FindingFilter
from tests.state.factory import DAY, T0, TRADE, done, finding, run, scan

EXPIRED = finding("tls.cert.expired", "www.broker.test:443", "critical", addresses=["127.0.0.1"])
HSTS = finding("http.hsts.missing", "www.broker.test:443", "low")
WAF = finding("edge.waf.absent", "www.broker.test", "high")


def kinds(store: Store, finding_id: int) -> list[EventKind]:
    return [e.kind for e in store.events(finding_id)]


def test_new_finding_opens_and_keeps_its_id(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("tls", EXPIRED), run("http", HSTS)]))
    fid = first.finding_ids[("tls.cert.expired", "www.broker.test:443")]
    assert set(first.opened) == set(first.finding_ids.values()) and len(first.opened) == 2

    second = store.record_scan(scan(T0 + DAY, [run("tls", EXPIRED), run("http", HSTS)]))
    assert second.finding_ids == first.finding_ids  # the same finding keeps its id
    assert second.opened == () and set(second.seen_again) == set(first.opened)

    info = store.finding(fid)
    assert info.state == FindingState.OPEN and info.probe == "tls" and info.asset == "www"
    assert info.first_seen == done(T0) and info.last_seen == done(T0 + DAY)
    assert info.severity == "critical" and info.evidence == {"addresses": ["127.0.0.1"]}
    events = store.events(fid)
    assert [(e.kind, e.from_state, e.to_state, e.scan_id) for e in events] == [
        (EventKind.OPENED, None, FindingState.OPEN, first.scan_id)
    ]


def test_reported_again_updates_severity_and_evidence(store: Store) -> None:
    store.record_scan(scan(T0, [run("tls", EXPIRED)]))
    lowered = finding("tls.cert.expired", "www.broker.test:443", "high", addresses=["127.0.0.2"], why="lab")
    stored = store.record_scan(scan(T0 + DAY, [run("tls", lowered)]))
    fid = stored.finding_ids[("tls.cert.expired", "www.broker.test:443")]
    info = store.finding(fid)
    assert info.severity == "high" and info.evidence == {"addresses": ["127.0.0.2"], "why": "lab"}
    # What each scan saw stays as it was seen.
    severities = [o.severity for s in store.scans() for o in store.scan(s.id).occurrences]
    assert severities == ["critical", "high"]


def test_fixed_then_reopened_with_history(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("tls", EXPIRED), run("http", HSTS)]))
    fid = first.finding_ids[("tls.cert.expired", "www.broker.test:443")]
    hsts = first.finding_ids[("http.hsts.missing", "www.broker.test:443")]

    fixed = store.record_scan(scan(T0 + 10 * DAY, [run("tls"), run("http", HSTS)]))
    assert fixed.fixed == (fid,)
    info = store.finding(fid)
    assert info.state == FindingState.FIXED and info.fixed_at == done(T0 + 10 * DAY)
    assert store.finding(hsts).state == FindingState.OPEN
    assert [f.id for f in store.findings(FindingFilter.FIXED)] == [fid]
    assert [f.id for f in store.findings(FindingFilter.OPEN)] == [hsts]

    back = store.record_scan(scan(T0 + 20 * DAY, [run("tls", EXPIRED), run("http", HSTS)]))
    assert back.reopened == (fid,) and back.finding_ids[("tls.cert.expired", "www.broker.test:443")] == fid
    info = store.finding(fid)
    assert info.state == FindingState.REOPENED and info.reopened_count == 1 and info.fixed_at is None
    assert info.first_seen == done(T0)  # deadlines count from the first sighting
    assert {f.id for f in store.findings(FindingFilter.OPEN)} == {fid, hsts}

    store.record_scan(scan(T0 + 30 * DAY, [run("tls"), run("http", HSTS)]))
    store.record_scan(scan(T0 + 40 * DAY, [run("tls", EXPIRED), run("http", HSTS)]))
    assert store.finding(fid).reopened_count == 2
    events = store.events(fid)
    assert [e.kind for e in events] == [
        EventKind.OPENED, EventKind.FIXED, EventKind.REOPENED, EventKind.FIXED, EventKind.REOPENED
    ]
    assert [e.at for e in events] == [done(T0 + n * DAY) for n in (0, 10, 20, 30, 40)]
    assert events[2].from_state == FindingState.FIXED and events[2].detail["fixed_at"] is not None
    assert all(e.scan_id is not None for e in events)


def test_failed_or_skipped_probe_proves_nothing(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("tls", EXPIRED), run("http", HSTS)]))
    tls = first.finding_ids[("tls.cert.expired", "www.broker.test:443")]
    hsts = first.finding_ids[("http.hsts.missing", "www.broker.test:443")]

    partial = store.record_scan(
        scan(T0 + DAY, [run("tls", status=RunStatus.ERROR), run("http", status=RunStatus.SKIPPED)])
    )
    assert partial.fixed == ()
    assert store.scan(partial.scan_id).scan.status == ScanStatus.PARTIAL
    for fid in (tls, hsts):
        info = store.finding(fid)
        assert info.state == FindingState.OPEN and info.last_seen == done(T0)
        assert kinds(store, fid) == [EventKind.OPENED]

    # The http probe ran fine this time but the tls probe failed: only http's finding is fixed.
    mixed = store.record_scan(scan(T0 + 2 * DAY, [run("tls", status=RunStatus.ERROR), run("http")]))
    assert mixed.fixed == (hsts,)
    assert store.finding(tls).state == FindingState.OPEN


def test_probe_not_asked_for_proves_nothing(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("tls", EXPIRED), run("edge", WAF)]))
    waf = first.finding_ids[("edge.waf.absent", "www.broker.test")]
    narrowed = store.record_scan(scan(T0 + DAY, [run("tls", EXPIRED)], full=False))
    assert narrowed.fixed == ()
    assert store.finding(waf).state == FindingState.OPEN


def test_findings_are_per_asset(store: Store) -> None:
    tls_trade = finding("tls.cert.expired", "order.broker.test:9443", "critical")
    store.record_scan(scan(T0, [run("tls", EXPIRED)]))
    other = store.record_scan(scan(T0, [run("tls", tls_trade)], asset=TRADE))
    # A clean tls run on www does not fix trade's certificate.
    store.record_scan(scan(T0 + DAY, [run("tls")]))
    trade_id = other.finding_ids[("tls.cert.expired", "order.broker.test:9443")]
    assert store.finding(trade_id).state == FindingState.OPEN
    assert [f.id for f in store.findings(FindingFilter.OPEN, asset="trade")] == [trade_id]
    assert [f.asset for f in store.findings(FindingFilter.FIXED)] == ["www"]
    assert store.findings(asset="nobody") == []


@pytest.mark.parametrize("status", [ScanStatus.INTERRUPTED, ScanStatus.FAILED])
def test_interrupted_or_failed_scan_fixes_nothing(store: Store, status: ScanStatus) -> None:
    first = store.record_scan(scan(T0, [run("tls", EXPIRED), run("http", HSTS)]))
    stopped = store.record_scan(scan(T0 + DAY, [run("tls")], status=status))
    assert stopped.fixed == ()
    assert store.scan(stopped.scan_id).scan.status == status
    assert {f.state for f in store.findings()} == {FindingState.OPEN}
    assert len(store.findings(FindingFilter.OPEN)) == len(first.finding_ids)


def test_interrupted_scan_still_records_what_it_saw(store: Store) -> None:
    stopped = store.record_scan(scan(T0, [run("tls", EXPIRED)], status=ScanStatus.INTERRUPTED))
    assert len(stopped.opened) == 1
    assert store.finding(stopped.opened[0]).state == FindingState.OPEN


def test_accept_until_then_expiry_reopens(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("edge", WAF)]))
    fid = first.opened[0]
    until = T0 + 30 * DAY
    store.accept(fid, "WAF contract signed, goes live in March", "ciso@broker.test", until, T0 + DAY)
    info = store.finding(fid)
    assert info.state == FindingState.ACCEPTED and info.accepted_until == until
    assert info.accepted_reason == "WAF contract signed, goes live in March"
    assert info.accepted_by == "ciso@broker.test"
    assert [f.id for f in store.findings(FindingFilter.ACCEPTED)] == [fid]
    assert store.findings(FindingFilter.OPEN) == []

    # Still reported while accepted: refreshed, stays accepted. Absent: not "fixed" either.
    seen = store.record_scan(scan(T0 + 5 * DAY, [run("edge", WAF)]))
    assert seen.seen_again == (fid,) and store.finding(fid).state == FindingState.ACCEPTED
    store.record_scan(scan(T0 + 6 * DAY, [run("edge")]))
    assert store.finding(fid).state == FindingState.ACCEPTED

    assert store.reopen_expired_acceptances(until - DAY) == []
    assert store.reopen_expired_acceptances(until + DAY) == [fid]
    assert store.reopen_expired_acceptances(until + 2 * DAY) == []  # once only
    assert store.finding(fid).state == FindingState.OPEN
    events = store.events(fid)
    assert [e.kind for e in events] == [EventKind.OPENED, EventKind.ACCEPTED, EventKind.ACCEPTANCE_EXPIRED]
    assert events[1].scan_id is None and events[1].at == T0 + DAY
    assert events[1].detail == {
        "reason": "WAF contract signed, goes live in March", "by": "ciso@broker.test",
        "until": until.isoformat(),
    }
    assert events[2].at == until + DAY and events[2].to_state == FindingState.OPEN


def test_scan_after_acceptance_ended_expires_it_first(store: Store) -> None:
    fid = store.record_scan(scan(T0, [run("edge", WAF)])).opened[0]
    store.accept(fid, "interim", "ops", T0 + 10 * DAY, T0 + DAY)
    later = store.record_scan(scan(T0 + 20 * DAY, [run("edge")]))
    # The acceptance lapsed before this scan, so the clean run now proves it fixed.
    assert later.expired == (fid,) and later.fixed == (fid,)
    assert kinds(store, fid)[-2:] == [EventKind.ACCEPTANCE_EXPIRED, EventKind.FIXED]


def test_false_positive_stays_while_reported(store: Store) -> None:
    fid = store.record_scan(scan(T0, [run("edge", WAF)])).opened[0]
    store.mark_false_positive(fid, "Akamai Kona in front, signature missed it", "analyst", T0 + DAY)
    store.record_scan(scan(T0 + 7 * DAY, [run("edge", WAF)]))
    store.record_scan(scan(T0 + 14 * DAY, [run("edge")]))
    info = store.finding(fid)
    assert info.state == FindingState.FALSE_POSITIVE and info.last_seen == done(T0 + 7 * DAY)
    assert info.false_positive_reason == "Akamai Kona in front, signature missed it"
    assert info.false_positive_by == "analyst"
    assert [f.id for f in store.findings(FindingFilter.FALSE_POSITIVE)] == [fid]
    assert kinds(store, fid) == [EventKind.OPENED, EventKind.FALSE_POSITIVE]


def test_decisions_validate(store: Store) -> None:
    fid = store.record_scan(scan(T0, [run("edge", WAF)])).opened[0]
    with pytest.raises(NotFound, match="no finding with id 999"):
        store.accept(999, "r", "me", T0 + DAY, T0)
    with pytest.raises(NotFound):
        store.mark_false_positive(999, "r", "me", T0)
    with pytest.raises(NotFound):
        store.events(999)
    with pytest.raises(NotFound):
        store.finding(999)
    with pytest.raises(InvalidRequest, match="must end after"):
        store.accept(fid, "r", "me", T0, T0 + DAY)
    with pytest.raises(InvalidRequest, match="reason must not be empty"):
        store.accept(fid, "  ", "me", T0 + 9 * DAY, T0 + DAY)
    with pytest.raises(InvalidRequest, match="naive"):
        store.accept(fid, "r", "me", (T0 + 9 * DAY).replace(tzinfo=None), T0 + DAY)
    store.record_scan(scan(T0 + DAY, [run("edge")]))
    with pytest.raises(InvalidTransition, match="is fixed"):
        store.accept(fid, "r", "me", T0 + 9 * DAY, T0 + 2 * DAY)
    assert kinds(store, fid) == [EventKind.OPENED, EventKind.FIXED]  # refusals leave no trace


def test_notes_join_the_history(store: Store) -> None:
    fid = store.record_scan(scan(T0, [run("edge", WAF)])).opened[0]
    store.add_note(fid, "ticket SEC-42 opened with the CDN vendor", "ops", T0 + DAY)
    note = store.events(fid)[-1]
    assert note.kind == EventKind.NOTE and note.from_state == note.to_state == FindingState.OPEN
    assert note.detail == {"text": "ticket SEC-42 opened with the CDN vendor", "by": "ops"}


def test_duplicate_identity_in_one_scan_is_one_finding(store: Store) -> None:
    again = finding("tls.cert.expired", "www.broker.test:443", "high", addresses=["::1"])
    stored = store.record_scan(scan(T0, [run("tls", EXPIRED, again)]))
    assert len(stored.finding_ids) == 1 and len(stored.opened) == 1
    assert store.finding(stored.opened[0]).evidence == {"addresses": ["::1"]}
    assert len(store.scan(stored.scan_id).occurrences) == 1


# ---------------------------------------------------------------- resolved by configuration (issue 14)

PORT = finding("ports.unexpected_open", "3389", "high", port=3389)


def _with_config(record: ScanRecord, config_hash: str | None) -> ScanRecord:
    """Every probe run (and the asset) judged under the configuration ``config_hash``."""
    runs = tuple(dataclasses.replace(r, config_hash=config_hash) for r in record.probe_runs)
    return dataclasses.replace(record, asset_config_hash=config_hash, probe_runs=runs)


def _ports_run(*findings: FindingRecord, present: set[str], looked_at: set[str] | None) -> ProbeRunRecord:
    observed = Observed(
        frozenset({"ports.unexpected_open"}),
        frozenset(("ports.unexpected_open", p) for p in present),
        None if looked_at is None else frozenset(("ports.unexpected_open", p) for p in looked_at),
    )
    return dataclasses.replace(run("ports", *findings), observed=observed)


@pytest.mark.parametrize(
    ("config_after", "present", "looked_at", "expected"),
    [
        ("cfg-b", {"3389"}, {"3389"}, FindingState.RESOLVED_BY_CONFIG),  # allowed now, still open
        ("cfg-b", set(), {"3389"}, FindingState.FIXED),  # closed as the allow-list changed: observed gone
        ("cfg-b", set(), {"22"}, FindingState.RESOLVED_BY_CONFIG),  # no longer scanned: not observed at all
        ("cfg-a", set(), {"3389"}, FindingState.FIXED),  # same configuration, gone
        ("cfg-a", {"3389"}, {"3389"}, FindingState.RESOLVED_BY_CONFIG),  # open but not reported: not a fix
    ],
)
def test_vanished_finding_fixed_or_resolved_by_configuration(
    store: Store, config_after: str, present: set[str], looked_at: set[str], expected: FindingState
) -> None:
    first = store.record_scan(_with_config(scan(T0, [_ports_run(PORT, present={"3389"}, looked_at={"3389"})]),
                                           "cfg-a"))
    fid = first.finding_ids[("ports.unexpected_open", "3389")]
    later = store.record_scan(_with_config(scan(T0 + DAY, [_ports_run(present=present, looked_at=looked_at)]),
                                           config_after))
    info = store.finding(fid)
    assert info.state == expected and info.fixed_at == done(T0 + DAY)
    last = store.events(fid)[-1]
    if expected is FindingState.RESOLVED_BY_CONFIG:
        assert later.resolved_by_config == (fid,) and later.fixed == ()
        assert last.kind == EventKind.RESOLVED_BY_CONFIG
        assert last.detail["config_hash_before"] == "cfg-a" and last.detail["config_hash_after"] == config_after
        assert [f.id for f in store.findings(FindingFilter.RESOLVED_BY_CONFIG)] == [fid]
    else:
        assert later.fixed == (fid,) and later.resolved_by_config == ()
        assert last.kind == EventKind.FIXED
    # Reported again, it reopens either way, keeping its id.
    again = store.record_scan(_with_config(scan(T0 + 2 * DAY, [_ports_run(PORT, present={"3389"},
                                                                           looked_at={"3389"})]), "cfg-a"))
    assert again.reopened == (fid,) and store.finding(fid).state == FindingState.REOPENED


def test_probe_that_cannot_tell_is_not_a_fix_when_the_configuration_changed(store: Store) -> None:
    first = store.record_scan(_with_config(scan(T0, [run("edge", WAF)]), "cfg-a"))
    fid = first.finding_ids[("edge.waf.absent", "www.broker.test")]
    store.record_scan(_with_config(scan(T0 + DAY, [run("edge")]), "cfg-b"))
    assert store.finding(fid).state == FindingState.RESOLVED_BY_CONFIG
    assert store.events(fid)[-1].detail["condition_still_observed"] is None
    # Unchanged configuration (or scans from before the hash existed): the probe ran and did not report it.
    second = store.record_scan(_with_config(scan(T0 + 2 * DAY, [run("edge", WAF)]), "cfg-b"))
    store.record_scan(_with_config(scan(T0 + 3 * DAY, [run("edge")]), "cfg-b"))
    assert second.reopened == (fid,) and store.finding(fid).state == FindingState.FIXED
    legacy = store.record_scan(scan(T0 + 4 * DAY, [run("http", HSTS)]))
    hsts = legacy.finding_ids[("http.hsts.missing", "www.broker.test:443")]
    store.record_scan(_with_config(scan(T0 + 5 * DAY, [run("http")]), "cfg-b"))
    assert store.finding(hsts).state == FindingState.FIXED


def test_resolved_by_configuration_cannot_be_accepted(store: Store) -> None:
    first = store.record_scan(_with_config(scan(T0, [run("edge", WAF)]), "cfg-a"))
    fid = first.finding_ids[("edge.waf.absent", "www.broker.test")]
    store.record_scan(_with_config(scan(T0 + DAY, [run("edge")]), "cfg-b"))
    with pytest.raises(InvalidTransition, match="resolved_by_config"):
        store.accept(fid, "r", "ciso", T0 + 30 * DAY, T0 + 2 * DAY)


def test_acceptance_keeps_the_date_as_entered(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("edge", WAF)]))
    fid = first.finding_ids[("edge.waf.absent", "www.broker.test")]
    store.accept(fid, "WAF in March", "ciso", T0 + 28 * DAY, T0 + DAY, "2025-03-31")
    info = store.finding(fid)
    assert info.accepted_until_entered == "2025-03-31" and info.accepted_until == T0 + 28 * DAY
    assert store.events(fid)[-1].detail["until_entered"] == "2025-03-31"


def test_only_the_findings_probe_configuration_counts(store: Store) -> None:
    """A changed TLS threshold says nothing about an HSTS header that is now sent: fixed."""
    first = store.record_scan(scan(T0, [dataclasses.replace(run("http", HSTS), config_hash="http-a"),
                                        dataclasses.replace(run("tls"), config_hash="tls-a")]))
    hsts = first.finding_ids[("http.hsts.missing", "www.broker.test:443")]
    store.record_scan(scan(T0 + DAY, [dataclasses.replace(run("http"), config_hash="http-a"),
                                      dataclasses.replace(run("tls"), config_hash="tls-b")]))
    assert store.finding(hsts).state == FindingState.FIXED
