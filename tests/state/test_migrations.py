"""The schema is alembic's: migrations match the tables, upgrade in place, refuse strangers."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Boolean, Engine, bindparam, inspect, text
from sqlalchemy.types import TypeEngine

from state import migrate
from state.coltypes import UTCDateTime
from state.engine import make_engine, parse_url
from state.errors import SchemaError
from state.records import FindingState
from state.store import Store
from state.tables.core import metadata
from tests.state.factory import DAY, T0, finding, run, scan

TABLES = {"assets", "scans", "probe_runs", "findings", "finding_occurrences", "finding_events",
          "deliveries", "external_scans", "jobs", "duty_records"}


def _posture_object(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
    """procrastinate's own tables (migration 0009, PostgreSQL) are its schema, not posture's metadata."""
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", "")
    return not str(table or "").startswith("procrastinate_")


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True,
                                                         "include_object": _posture_object})
        return list(compare_metadata(context, metadata))


def test_head_matches_the_tables(store_url: str) -> None:
    with Store.open(store_url) as store:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        assert set(inspect(store.engine).get_table_names()) >= TABLES
        assert schema_diff(store.engine) == []


def test_comparison_sees_a_missing_schema(store_url: str) -> None:
    # Guards the test above: the comparison is not vacuous.
    with Store.open(store_url) as store:
        migrate.downgrade(store.engine, "base")
        assert migrate.current_revision(store.engine) is None
        diff = schema_diff(store.engine)
        assert {d[1].name for d in diff if isinstance(d, tuple) and d[0] == "add_table"} == TABLES


def test_reopening_upgrades_in_place_keeping_history(store_url: str) -> None:
    with Store.open(store_url) as store:
        fid = store.record_scan(scan(T0, [run("tls", finding("tls.cert.expired", "h:443"))])).opened[0]
        store.record_scan(scan(T0 + DAY, [run("tls")]))
    with Store.open(store_url) as store:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        assert len(store.scans()) == 2 and store.finding(fid).state == FindingState.FIXED
        assert len(store.events(fid)) == 2
        # The next scan continues the same history.
        back = store.record_scan(scan(T0 + 2 * DAY, [run("tls", finding("tls.cert.expired", "h:443"))]))
        assert back.reopened == (fid,)


def test_every_revision_applies_in_order_from_an_empty_database(store_url: str) -> None:
    engine = make_engine(parse_url(store_url))
    try:
        with migrate.alembic_config() as config:
            revisions = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
        assert revisions[0].down_revision is None and revisions[-1].revision == migrate.head_revision()
        for script in revisions:  # linear history, each step upgrades what the last one left
            migrate.upgrade(engine, script.revision)
            assert migrate.current_revision(engine) == script.revision
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_a_first_revision_database_with_history_upgrades_in_place(store_url: str) -> None:
    # A database written by the first release (raw SQL with 0001's columns only), then
    # opened by this version: every later revision applies on top and the history stays.
    engine = make_engine(parse_url(store_url))
    try:
        migrate.upgrade(engine, "0001")
        statements = [
            "INSERT INTO assets (name, url, kind, configured, added_at)"
            " VALUES ('www', 'https://www.broker.test/', 'website', :yes, :at)",
            "INSERT INTO scans (asset_id, status, trigger, \"full\", forced_active, started_at, finished_at,"
            " posture_version, catalog_version, config_hash, dns) VALUES (1, 'complete', 'manual', :yes,"
            " :no, :at, :at, '0.0.9', '2024.2', 'h', :blob)",
            "INSERT INTO probe_runs (scan_id, probe, status, started_at, finished_at, observations)"
            " VALUES (1, 'tls', 'ok', :at, :at, :blob)",
            "INSERT INTO findings (asset_id, check_id, key, probe, severity, state, first_seen, last_seen,"
            " reopened_count, evidence) VALUES (1, 'tls.cert.expired', 'h:443', 'tls', 'critical', 'open',"
            " :at, :at, 0, :blob)",
            "INSERT INTO finding_occurrences (scan_id, finding_id, probe_run_id, severity, evidence)"
            " VALUES (1, 1, 1, 'critical', :blob)",
            "INSERT INTO finding_events (finding_id, scan_id, at, kind, to_state, detail)"
            " VALUES (1, 1, :at, 'opened', 'open', :blob)",
        ]
        # Typed parameters, so values are stored exactly as the tables' types store them.
        params: dict[str, tuple[Any, TypeEngine[Any]]] = {
            "at": (T0, UTCDateTime()), "blob": ({"from": "0001"}, JSON()),
            "yes": (True, Boolean()), "no": (False, Boolean()),
        }
        with engine.begin() as conn:
            for statement in statements:
                used = [name for name in params if f":{name}" in statement]
                clause = text(statement).bindparams(
                    *(bindparam(name, params[name][0], type_=params[name][1]) for name in used))
                conn.execute(clause)
    finally:
        engine.dispose()

    with Store.open(store_url) as store:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        old = store.finding(1)
        assert (old.check_id, old.state, old.first_seen, old.evidence) == (
            "tls.cert.expired", FindingState.OPEN, T0, {"from": "0001"})
        assert store.scan(1).scan.posture_version == "0.0.9"
        fixed = store.record_scan(scan(T0 + DAY, [run("tls")]))
        assert fixed.fixed == (1,)
        assert [e.kind.value for e in store.events(1)] == ["opened", "fixed"]


def test_database_from_a_newer_posture_is_refused(store_url: str) -> None:
    with Store.open(store_url) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(SchemaError, match="9999_future"):
        Store.open(store_url)


def test_tables_alembic_did_not_create_are_refused(store_url: str) -> None:
    engine = make_engine(parse_url(store_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE assets (id INTEGER PRIMARY KEY, label TEXT)"))
    finally:
        engine.dispose()
    with pytest.raises(SchemaError, match="posture database") as raised:
        Store.open(store_url)
    assert "\n" not in str(raised.value)


def _open_and_close(url: str) -> None:
    Store.open(url).close()


def test_concurrent_openers_of_a_fresh_database_migrate_once(store_url: str) -> None:
    # Separate processes, like a daemon and a CLI started together on a new database.
    # spawn, not fork: the test process has threads (servers, pools) whose locks a forked child
    # could inherit held, and hang.
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=3, mp_context=spawn) as pool:
        results = [pool.submit(_open_and_close, store_url) for _ in range(3)]
        for result in results:
            result.result(timeout=60)
    # And threads of one process (alembic's global context is guarded by a lock).
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            _open_and_close(store_url)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with Store.open(store_url) as store:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
        assert schema_diff(store.engine) == []


def _warm() -> None:
    import state.store  # noqa: F401  (the imports done: the openers below start together)


def test_warm_openers_of_new_sqlite_files_never_collide(tmp_path: Path) -> None:
    """Processes with posture already imported (a daemon and CLIs) opening one new SQLite file at
    the same moment, many times: every one opens, and the schema is made once. Before the upgrade
    ran in one transaction taken before alembic read the version, about one round in ten failed
    ("table ... already exists", "database is locked", a version row not found)."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=4, mp_context=spawn) as pool:
        for warm in [pool.submit(_warm) for _ in range(8)]:
            warm.result(timeout=120)
        for n in range(40):
            url = f"sqlite:///{tmp_path / f'new-{n}.db'}"
            for opened in [pool.submit(_open_and_close, url) for _ in range(4)]:
                opened.result(timeout=60)
            with Store.open(url) as store:
                assert migrate.current_revision(store.engine) == migrate.head_revision()
