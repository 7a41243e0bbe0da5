"""PostgreSQL for tests: a fresh, uniquely named database per test, dropped afterwards.

The server is the one .ci/run starts (Debian's postgresql package, cluster 15/main);
POSTURE_TEST_PG_URL points at a database the test role can connect to and that role
needs CREATEDB. An unreachable server FAILS the test with instructions: the storage
must be proven on both databases, so it is never skipped.

Reuse in any conftest.py::

    from tests.support.pg import pg_url, store_url  # noqa: F401  (fixtures)

``store_url`` runs the test twice, on an SQLite file and on a fresh PostgreSQL database.
Creating a database costs a few hundred milliseconds; suites with many tests can share
one per module (``pg_module_url``) and call :func:`empty_tables` before each test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import psycopg

DEFAULT_ADMIN_URL = "postgresql+psycopg://posture:posture@127.0.0.1:5432/postgres"
SETUP_HINT = (
    "start it and create the test role as root: pg_ctlcluster 15 main start && "
    "su postgres -c \"psql -c \\\"CREATE ROLE posture LOGIN PASSWORD 'posture' CREATEDB\\\"\"; "
    "or point POSTURE_TEST_PG_URL at another server"
)


def admin_url() -> str:
    return os.environ.get("POSTURE_TEST_PG_URL", DEFAULT_ADMIN_URL)


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as a libpq conninfo string psycopg accepts."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _admin_connection(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    import psycopg

    try:
        return psycopg.connect(_libpq(url), autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.fail(f"PostgreSQL at {_shown(url)} is not reachable ({first}); {SETUP_HINT}", pytrace=False)


def create_database(prefix: str = "posture_test") -> str:
    """Create a uniquely named database; return its SQLAlchemy URL."""
    from psycopg import sql

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    base = admin_url()
    with _admin_connection(base) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' TEMPLATE template0").format(sql.Identifier(name)))
    from sqlalchemy.engine import make_url

    return make_url(base).set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )


def drop_database(url: str) -> None:
    """Drop the database even if a leaked connection still holds it (PostgreSQL 13+: FORCE)."""
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    if not name:
        raise ValueError(f"no database name in {_shown(url)}")
    with _admin_connection(admin_url()) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def fresh_database(prefix: str = "posture_test") -> Iterator[str]:
    url = create_database(prefix)
    try:
        yield url
    finally:
        drop_database(url)


def empty_tables(url: str) -> None:
    """Delete every row (ids restart at 1) but keep the schema and its alembic revision.

    DELETE in foreign-key order rather than TRUNCATE: on tables this small it is several
    times faster (TRUNCATE writes and syncs new files for every table and index).
    """
    from psycopg import sql

    with _admin_connection(url) as conn, conn.transaction():
        names = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename <> 'alembic_version'"
        )]
        refers: dict[str, set[str]] = {name: set() for name in names}
        for child, parent in conn.execute(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint"
            " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
        ):
            if child in refers and parent != child:
                refers[child].add(parent)
        # Children before parents: repeatedly take the tables nothing left refers to.
        while refers:
            leaves = [t for t in refers if not any(t in parents for parents in refers.values())]
            if not leaves:  # a reference cycle: give up on ordering, let CASCADE sort it out
                conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in refers)))
                return
            for table in leaves:
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
                del refers[table]
        for (sequence,) in conn.execute(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
        ).fetchall():
            conn.execute(sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier(sequence)))


@pytest.fixture(scope="module")
def pg_module_url() -> Iterator[str]:
    """One fresh PostgreSQL database shared by a test module, dropped after it."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'posture.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on an SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'posture.db'}"
        return
    with fresh_database() as url:
        yield url
