"""Run the alembic migrations in-process: no alembic.ini, no subprocess.

Opening a store calls :func:`upgrade`; it holds a write transaction (SQLite) or an
advisory lock (PostgreSQL) so concurrent openers of a fresh database migrate once.
A database already at head costs one query; a brand-new SQLite file gets head's
schema from the tables themselves (:func:`_create_new_sqlite`); only the rest loads
alembic.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from typing import TYPE_CHECKING

from state.errors import SchemaError, StoreError, translate

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

# alembic's `context` is a module-global proxy: two threads migrating at once would
# share it. Processes are kept apart by the database (write lock / advisory lock).
_IN_PROCESS = threading.Lock()


@contextmanager
def alembic_config(connection: Connection | None = None) -> Iterator[Config]:
    from alembic.config import Config

    with as_file(files("state").joinpath("migrations")) as location:
        config = Config()
        config.set_main_option("script_location", str(location))
        config.attributes["connection"] = connection
        yield config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    with alembic_config() as config:
        head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise SchemaError("posture ships no migrations (broken installation)")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


_REVISION = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(?:['\"]([^'\"]+)['\"]|None)\s*$", re.M)


def shipped_head() -> str | None:
    """The head revision read straight from the migration files, without importing alembic.

    None when the files do not make one plain chain (branches, merges, an unusual header):
    then only alembic can say, and the caller takes the slow path.
    """
    revisions: dict[str, str | None] = {}
    with as_file(files("state").joinpath("migrations", "versions")) as location:
        for path in sorted(location.glob("*.py")):
            found = dict((m.group(1), m.group(2)) for m in _REVISION.finditer(path.read_text("utf-8")))
            if "revision" not in found or "down_revision" not in found or not found["revision"]:
                return None
            revisions[found["revision"]] = found["down_revision"]
    parents = [d for d in revisions.values() if d is not None]
    roots = [r for r, d in revisions.items() if d is None]
    heads = [r for r in revisions if r not in parents]
    plain_chain = len(roots) == 1 and len(heads) == 1 and len(parents) == len(set(parents))
    return heads[0] if plain_chain else None


def _at_head(engine: Engine) -> bool:
    """Whether the database already carries the shipped head (one plain read; a database without
    alembic's table says no). ``engine`` must not take the write lock: a reader never waits for a
    writer, so a command opening a current database while another process writes goes on at once.
    Any other failure (a locked or unreadable file) is raised, never taken for a new database."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    head = shipped_head()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            stamped = [row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version"))]
    except SQLAlchemyError as exc:
        if _no_such_table(exc):  # no alembic_version yet (a new database): migrate it
            return False
        raise translate(exc, "cannot read the database's schema version") from None
    return stamped == [head]


def _no_such_table(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def _create_new_sqlite(engine: Engine, head: str) -> bool:
    """Give a brand-new SQLite file head's schema straight from the tables, without alembic.

    Taken only when the file holds nothing at all, as seen under the write lock (the
    writer's BEGIN IMMEDIATE). Anything else (another opener got there first, a database
    of some other program) returns False and the caller takes alembic's path, which
    knows what to do with it. Every revision's data steps act on existing rows, so on an
    empty database head's tables and alembic's version row are all an upgrade leaves:
    tests/state/test_new_database.py compares the two files object by object.
    """
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, text

    import state.tables  # noqa: F401  (every table on the metadata)
    from state.tables.core import metadata

    # alembic's version table, built the way alembic builds it (alembic.runtime.migration).
    version = Table("alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
                    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
    with _IN_PROCESS, engine.connect() as connection:
        connection.begin()
        if connection.execute(text("SELECT count(*) FROM sqlite_master")).scalar_one():
            connection.rollback()
            return False
        metadata.create_all(connection, checkfirst=False)
        version.create(connection, checkfirst=False)
        connection.execute(version.insert().values(version_num=head))
        connection.commit()
    return True


def upgrade(engine: Engine, revision: str = "head", *, reader: Engine | None = None) -> None:
    """Bring the schema to ``revision`` (default: this version's head), keeping all data.

    ``reader``: the same database without the write lock up front, to check whether there is
    anything to do (``engine`` when None)."""
    # Every command opens the store: when the schema is already current, skip importing
    # alembic (and mako, pygments) altogether, about 0.2-0.4 s of each command's start-up;
    # so does the first command on a new SQLite file (about 0.1 s and 12 MiB).
    if revision == "head" and _at_head(reader if reader is not None else engine):
        return
    try:
        head = shipped_head() if revision == "head" and engine.dialect.name == "sqlite" else None
        if head is not None and _create_new_sqlite(engine, head):
            return
    except Exception as exc:
        raise translate(exc, "cannot create the database schema") from None
    from alembic import command
    from alembic.util import CommandError

    try:
        with _IN_PROCESS, engine.connect() as connection:
            # One transaction for the whole upgrade, begun before alembic looks: on SQLite the
            # writer's BEGIN IMMEDIATE takes the write lock first, so alembic reads the version
            # under it and a second process opening the same fresh database waits, then finds
            # the schema current. (Left to itself, alembic gives SQLite, which it treats as
            # non-transactional DDL, a transaction per revision, read the version outside them,
            # and two openers interleaved: "table ... already exists", a version row not found.)
            # On PostgreSQL env.py's advisory lock is held in this transaction all the same.
            connection.begin()
            with alembic_config(connection) as config:
                command.upgrade(config, revision)
            connection.commit()
    except CommandError as exc:
        # Typically a revision this posture does not know: the database is newer than the code.
        raise SchemaError(
            f"cannot migrate the database schema to {revision} ({head_revision()} is this posture's"
            f" newest): {exc}"
        ) from None
    except StoreError:
        raise
    except Exception as exc:
        error = translate(exc, "cannot migrate the database schema")
        if type(error) is StoreError:
            # e.g. "table assets already exists": tables that alembic did not create.
            error = SchemaError(f"{error} (is this a posture database?)")
        raise error from None


def downgrade(engine: Engine, revision: str) -> None:
    """For tests and emergencies; posture itself only ever upgrades."""
    from alembic import command

    with _IN_PROCESS, engine.connect() as connection, alembic_config(connection) as config:
        command.downgrade(config, revision)
        connection.commit()
