"""How a stored scan is written (state.scan_write): every transition of the lifecycle in one
scan, many findings at once, a probe run twice, evidence rewritten only when it changed;
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from state.records import FindingRecord, FindingState
from state.store import Store
from state.views import EventKind
from tests.state.factory import DAY, T0, done, finding, run, scan

A = finding("tls.protocol.legacy", "TLSv1.0", "high", versions=["TLSv1.0"])
B = finding("tls.suite.weak", "RC4", "medium")
C = finding("tls.cert.expiring", "leaf", "medium", days=20)
D = finding("http.hsts.missing", "/", "low")
E = finding("http.header.missing", "x-frame-options", "low")
F = finding("edge.waf.absent", "www.broker.test", "high")
N = finding("tls.ocsp.unstapled", "leaf", "low")


def ident(f: FindingRecord) -> tuple[str, str]:
    return (f.check_id, f.key)


def test_one_scan_opens_reopens_fixes_expires_and_refreshes(store: Store) -> None:
    first = store.record_scan(scan(T0, [run("tls", A, B, C), run("http", D, E), run("edge", F)]))
    ids = {k: first.finding_ids[ident(f)] for k, f in zip("ABCDEF", (A, B, C, D, E, F), strict=True)}
    store.accept(ids["E"], "header comes with the March release", "ciso", T0 + 3 * DAY, T0 + DAY)
    store.accept(ids["F"], "WAF contract signed", "ciso", T0 + 30 * DAY, T0 + DAY, until_entered="2025-04-02")
    second = store.record_scan(scan(T0 + DAY, [run("tls", A, B), run("http", D, E), run("edge", F)]))
    assert second.fixed == (ids["C"],) and second.opened == ()
    store.mark_false_positive(ids["B"], "RC4 offered only to a test client", "analyst", T0 + 2 * DAY)

    lowered = finding("tls.protocol.legacy", "TLSv1.0", "medium", versions=["TLSv1.0"], note="lab only")
    at = T0 + 5 * DAY
    third = store.record_scan(scan(at, [run("tls", lowered, C, N), run("http", D), run("edge", F)]))
    fid_n = third.finding_ids[ident(N)]
    assert third.opened == (fid_n,)
    assert third.reopened == (ids["C"],)
    assert third.expired == (ids["E"],) and third.fixed == (ids["E"],)  # lapsed, then proven gone
    assert third.resolved_by_config == ()
    assert sorted(third.seen_again) == sorted([ids["A"], ids["D"], ids["F"]])
    assert set(third.finding_ids.values()) == {ids["A"], ids["C"], fid_n, ids["D"], ids["F"]}

    a = store.finding(ids["A"])
    assert (a.state, a.severity, a.evidence) == (FindingState.OPEN, "medium", {"versions": ["TLSv1.0"],
                                                                                 "note": "lab only"})
    assert a.first_seen == done(T0) and a.last_seen == done(at)
    b = store.finding(ids["B"])  # a false positive not reported: stays one, not fixed
    assert b.state == FindingState.FALSE_POSITIVE and b.fixed_at is None and b.last_seen == done(T0 + DAY)
    c = store.finding(ids["C"])
    assert (c.state, c.fixed_at, c.reopened_count) == (FindingState.REOPENED, None, 1)
    n = store.finding(fid_n)
    assert (n.state, n.probe, n.first_seen, n.reopened_count) == (FindingState.OPEN, "tls", done(at), 0)
    e = store.finding(ids["E"])
    assert e.state == FindingState.FIXED and e.fixed_at == done(at)
    f = store.finding(ids["F"])  # reported while accepted: refreshed, still accepted
    assert f.state == FindingState.ACCEPTED and f.last_seen == done(at) and f.accepted_until_entered == "2025-04-02"

    events = store.events(ids["E"])
    assert [(ev.kind, ev.from_state, ev.to_state) for ev in events] == [
        (EventKind.OPENED, None, FindingState.OPEN),
        (EventKind.ACCEPTED, FindingState.OPEN, FindingState.ACCEPTED),
        (EventKind.ACCEPTANCE_EXPIRED, FindingState.ACCEPTED, FindingState.OPEN),
        (EventKind.FIXED, FindingState.OPEN, FindingState.FIXED),
    ]
    assert events[2].scan_id == events[3].scan_id == third.scan_id and events[2].id < events[3].id
    assert events[2].detail == {"until": (T0 + 3 * DAY).isoformat(),
                                "reason": "header comes with the March release", "by": "ciso"}
    run_ids = {r.probe: r.id for r in store.scan(third.scan_id).probe_runs}
    assert events[3].detail == {"probe": "http", "probe_run_id": run_ids["http"]}
    reopened = store.events(ids["C"])[-1]
    assert (reopened.kind, reopened.from_state, reopened.to_state) == (
        EventKind.REOPENED, FindingState.FIXED, FindingState.REOPENED)
    assert reopened.detail == {"severity": "medium", "fixed_at": done(T0 + DAY).isoformat()}
    assert store.events(fid_n)[0].detail == {"severity": "low"}
    assert [ev.kind for ev in store.events(ids["F"])] == [EventKind.OPENED, EventKind.ACCEPTED]

    occurrences = store.scan(third.scan_id).occurrences
    assert {(o.finding_id, o.probe_run_id, o.severity) for o in occurrences} == {
        (ids["A"], run_ids["tls"], "medium"), (ids["C"], run_ids["tls"], "medium"),
        (fid_n, run_ids["tls"], "low"), (ids["D"], run_ids["http"], "low"), (ids["F"], run_ids["edge"], "high"),
    }


def test_many_findings_in_one_scan_keep_their_ids_and_runs(store: Store) -> None:
    # More rows than one multi-row INSERT batch holds (1,000 on PostgreSQL).
    ports = [finding("ports.unexpected_open", str(p), "medium", port=p) for p in range(20000, 21200)]
    suites = [finding("tls.suite.weak", f"suite-{i}", "low", i=i) for i in range(150)]
    first = store.record_scan(scan(T0, [run("ports", *ports), run("tls", *suites)]))
    assert len(first.opened) == len(first.finding_ids) == 1350
    by_id = {f.id: f for f in store.findings()}
    assert all((by_id[fid].check_id, by_id[fid].key) == k for k, fid in first.finding_ids.items())
    assert by_id[first.finding_ids[("ports.unexpected_open", "20007")]].evidence == {"port": 20007}
    detail = store.scan(first.scan_id)
    run_probe = {r.id: r.probe for r in detail.probe_runs}
    assert len(detail.occurrences) == 1350
    assert all(run_probe[o.probe_run_id] == by_id[o.finding_id].probe for o in detail.occurrences)

    # Half the ports closed, 100 suites still there, 50 new ones.
    newer = [finding("tls.suite.weak", f"suite-{i}", "low", i=i) for i in range(50, 200)]
    second = store.record_scan(scan(T0 + DAY, [run("ports", *ports[::2]), run("tls", *newer)]))
    assert len(second.fixed) == 600 + 50 and len(second.opened) == 50 and len(second.seen_again) == 600 + 100
    assert len({e.id for fid in second.fixed[:5] for e in store.events(fid)}) == 10
    fixed_ports = {by_id[fid].key for fid in second.fixed if by_id[fid].probe == "ports"}
    assert fixed_ports == {str(p) for p in range(20001, 21200, 2)}


def test_one_probe_run_twice_in_one_scan(store: Store) -> None:
    first = run("tls", A, at=T0)
    again = run("tls", B, at=T0 + timedelta(seconds=5))
    stored = store.record_scan(scan(T0, [first, again]))
    detail = store.scan(stored.scan_id)
    assert [r.started_at for r in detail.probe_runs] == [T0, T0 + timedelta(seconds=5)]
    run_of = {o.finding_id: o.probe_run_id for o in detail.occurrences}
    assert run_of[stored.finding_ids[ident(A)]] == detail.probe_runs[0].id
    assert run_of[stored.finding_ids[ident(B)]] == detail.probe_runs[1].id
    # The last run of a probe speaks for it: B, reported by the first tls run only, is fixed by
    # the second, and its event names that run.
    later = store.record_scan(scan(T0 + DAY, [run("tls", A), run("tls")]))
    fid_b = stored.finding_ids[ident(B)]
    assert later.fixed == (fid_b,) and later.seen_again == (stored.finding_ids[ident(A)],)
    second_run = store.scan(later.scan_id).probe_runs[1].id
    assert store.events(fid_b)[-1].detail == {"probe": "tls", "probe_run_id": second_run}


def test_evidence_is_rewritten_only_when_it_changed(store: Store) -> None:
    def stored_text(fid: int) -> str:
        with store.engine.connect() as conn:
            return str(conn.execute(text("SELECT CAST(evidence AS TEXT) FROM findings WHERE id = :i"),
                                    {"i": fid}).scalar_one())

    fid = store.record_scan(scan(T0, [run("http", finding("http.banner", "server", "low", b=1, a=2))])).opened[0]
    written = stored_text(fid)
    assert written == '{"b":1,"a":2}'
    # The same evidence in another order is the same evidence: the stored text stays.
    store.record_scan(scan(T0 + DAY, [run("http", finding("http.banner", "server", "low", a=2, b=1))]))
    assert stored_text(fid) == written and store.finding(fid).last_seen == done(T0 + DAY)
    store.record_scan(scan(T0 + 2 * DAY, [run("http", finding("http.banner", "server", "low", a=3, b=1))]))
    assert stored_text(fid) == '{"a":3,"b":1}'


def test_an_asset_pointed_elsewhere_resolves_by_configuration_not_fixed(store: Store) -> None:
    """The asset keeps its name, its URL changes: what was seen at the old target was not looked
    at again, so it is resolved by configuration (both targets on the event), never fixed; what the
    new target shows is judged there from then on, fixed when it goes."""
    from dataclasses import replace

    from tests.state.factory import WWW

    moved = replace(WWW, url="https://b.broker.test/?token=SECRET")
    first = store.record_scan(scan(T0, [run("http", D, E), run("edge", F)]))
    ids = {k: first.finding_ids[ident(f)] for k, f in zip("DEF", (D, E, F), strict=True)}
    second = store.record_scan(scan(T0 + DAY, [run("http", D), run("edge")], asset=moved))
    assert second.fixed == () and set(second.resolved_by_config) == {ids["E"], ids["F"]}
    events = {i: store.events(i)[-1] for i in (ids["E"], ids["F"])}
    for event in events.values():
        assert event.kind is EventKind.RESOLVED_BY_CONFIG
        assert (event.detail["target_before"], event.detail["target_after"]) == (
            "https://www.broker.test/", "https://b.broker.test/")  # the query is never stored
    assert store.finding(ids["D"]).state is FindingState.OPEN  # seen at the new target too
    assert [s.target for s in store.scans()] == ["https://www.broker.test/", "https://b.broker.test/"]
    third = store.record_scan(scan(T0 + 2 * DAY, [run("http"), run("edge")], asset=moved))
    assert third.fixed == (ids["D"],)  # last seen at this target, now gone there: fixed
    fourth = store.record_scan(scan(T0 + 3 * DAY, [run("http", E), run("edge")], asset=moved))
    assert fourth.reopened == (ids["E"],)
    # Scans stored before scans.target existed (NULL) are judged as before: gone is fixed.
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE scans SET target = NULL"))
    fifth = store.record_scan(scan(T0 + 4 * DAY, [run("http"), run("edge")], asset=WWW))
    assert fifth.fixed == (ids["E"],) and fifth.resolved_by_config == ()
