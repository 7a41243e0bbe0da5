"""Alembic environment. posture runs it in-process (state.migrate) on a connection
it hands over in ``config.attributes["connection"]``; a Config with ``sqlalchemy.url``
set works too (handy for trying a new revision by hand).

A new revision: copy the shape of versions/0001_initial.py (written by hand, portable,
batch mode for SQLite ALTERs) and change state/tables/core.py to match;
tests/state/test_migrations.py fails until the two agree.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from state.tables.core import metadata

# Any constant works; it only has to be the same for every posture process.
PG_MIGRATION_LOCK = 0x706F7374  # "post"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later revisions rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Two posture processes opening one fresh database must not both create tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection in config.attributes")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("posture migrations run online only")
main()
