"""PostgreSQL: procrastinate's schema, for scans run as tasks by a fleet of workers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

On PostgreSQL, ``posture run`` schedules scans as procrastinate tasks and ``posture
worker`` runs them (agent/scheduling/fleet.py). This revision applies the schema
shipped inside the installed procrastinate package (its ``schema.sql``: the
``procrastinate_*`` tables, types, functions and triggers), once: a database that
already has ``procrastinate_jobs`` is left as it is. Later procrastinate schema
changes ship as later posture revisions running the package's own migration files.

The ``jobs`` table stays: it is the ledger of which scan each scheduled slot
produced (state/task_ledger.py). Nothing in it moves: a pending row keeps its key
(``scan:ASSET:DUE``), which is the key the scheduler queues that slot under, so the
first task for it adopts the row; a row still running under an old daemon's lease
is left to that lease, then taken over and its scan marked interrupted.

SQLite: nothing changes (one process, posture's own job table, no procrastinate).
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    exists = bind.exec_driver_sql("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").scalar()
    if exists:
        return
    from procrastinate.schema import SchemaManager

    schema = SchemaManager.get_schema()
    # psycopg's raw cursor: the schema's plpgsql holds '%' and ':' that a bound statement would misread.
    raw = bind.connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    try:
        cursor.execute(schema)
    finally:
        cursor.close()


def downgrade() -> None:
    """Drop everything procrastinate's schema made (tables, functions, types), queued jobs included."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    ours = "left({}, 13) = 'procrastinate'"
    tables = bind.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND "
                                  + ours.format("tablename")).scalars().all()
    for name in tables:
        op.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
    functions = bind.exec_driver_sql(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = current_schema() AND " + ours.format("p.proname")).scalars().all()
    for signature in functions:
        op.execute(f"DROP FUNCTION IF EXISTS {signature} CASCADE")
    types = bind.exec_driver_sql(
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = current_schema() AND t.typtype IN ('e', 'c') AND " + ours.format("t.typname")
    ).scalars().all()
    for name in types:
        op.execute(f'DROP TYPE IF EXISTS "{name}" CASCADE')
