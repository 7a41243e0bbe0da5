"""A brand-new SQLite file gets head's schema from the tables, without alembic, and the result
is the database alembic's revisions make, object by object; anything that is not an empty
file still goes through alembic."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from state import migrate
from state.engine import make_engine, parse_url, writer
from state.errors import SchemaError
from state.store import Store

REPO = Path(__file__).resolve().parents[2]

Schema = dict[str, object]


def _schema(path: Path) -> Schema:
    """Every object of the file (its DDL, whitespace and quoting aside), every table's columns in
    order, indexes and foreign keys as SQLite reports them, and alembic's version rows."""
    out: Schema = {}
    with sqlite3.connect(path) as db:
        for kind, name, sql in db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name"):
            out[f"{kind} {name}"] = re.sub(r"\s+", " ", (sql or "").replace('"', "")).replace("( ", "(")
            if kind != "table":
                continue
            out[f"columns {name}"] = db.execute(f"PRAGMA table_info('{name}')").fetchall()
            out[f"foreign keys {name}"] = db.execute(f"PRAGMA foreign_key_list('{name}')").fetchall()
            for index in db.execute(f"PRAGMA index_list('{name}')").fetchall():
                # (seq, name, unique, origin, partial): seq is only the order of creation.
                columns = db.execute(f"PRAGMA index_info('{index[1]}')").fetchall()
                out[f"index {index[1]} of {name}"] = (index[1:], columns)
        out["alembic_version"] = db.execute("SELECT version_num FROM alembic_version").fetchall()
        out["journal_mode"] = db.execute("PRAGMA journal_mode").fetchall()
        out["user_version"] = db.execute("PRAGMA user_version").fetchall()
    return out


def _migrated(path: Path, revision: str) -> Schema:
    """The file alembic's revisions make, one after another, up to ``revision``."""
    engine = make_engine(parse_url(f"sqlite:///{path}"))
    try:
        with migrate.alembic_config() as config:
            from alembic.script import ScriptDirectory

            scripts = list(reversed(list(ScriptDirectory.from_config(config).walk_revisions())))
        for script in scripts:
            migrate.upgrade(writer(engine), script.revision)  # a named revision: always alembic
            if script.revision == revision:
                break
    finally:
        engine.dispose()
    return _schema(path)


def test_a_new_file_is_what_the_migrations_make(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'new.db'}"):
        pass
    made = _schema(tmp_path / "new.db")
    migrated = _migrated(tmp_path / "migrated.db", migrate.head_revision())
    assert made.keys() == migrated.keys()
    assert {k: v for k, v in made.items() if migrated[k] != v} == {}
    assert made["alembic_version"] == [(migrate.head_revision(),)]


def test_the_comparison_sees_an_older_schema(tmp_path: Path) -> None:
    # Guards the test above: columns a later revision added change what it compares.
    with Store.open(f"sqlite:///{tmp_path / 'new.db'}"):
        pass
    older = _migrated(tmp_path / "old.db", "0001")
    made = _schema(tmp_path / "new.db")
    assert made["columns scans"] != older["columns scans"]
    assert made["alembic_version"] != older["alembic_version"]


def test_a_new_file_opens_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys\nfrom state.store import Store\n"
        f"Store.open({url!r}).close()\n"
        "print(sorted(m for m in ('alembic', 'mako', 'pygments') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
    with Store.open(url) as store:
        assert migrate.current_revision(store.engine) == migrate.head_revision()


def test_a_file_behind_the_head_goes_through_alembic_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _migrated(path, "0001")
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO assets (name, url, kind, configured, added_at) VALUES "
                   "('www', 'https://www.example.test/', 'website', 1, '2026-01-01 00:00:00')")
    with Store.open(f"sqlite:///{path}") as store:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM assets").fetchall() == [("www",)]
    assert _schema(path) | {"alembic_version": None} == _migrated(tmp_path / "m.db", migrate.head_revision()) | {
        "alembic_version": None}


def test_a_file_of_another_program_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE assets (id INTEGER PRIMARY KEY, what TEXT)")
        db.execute("INSERT INTO assets (what) VALUES ('theirs')")
    with pytest.raises(SchemaError, match="posture database"):
        Store.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("assets",)]
        assert db.execute("SELECT what FROM assets").fetchall() == [("theirs",)]
