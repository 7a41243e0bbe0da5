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
    with raw.cursor() as cursor:
        cursor.execute(schema)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for name in ("procrastinate_events", "procrastinate_periodic_defers", "procrastinate_jobs",
                 "procrastinate_workers"):
        op.execute(f"DROP TABLE IF EXISTS {name} CASCADE")
    op.execute("DROP TYPE IF EXISTS procrastinate_job_status CASCADE")
    op.execute("DROP TYPE IF EXISTS procrastinate_job_event_type CASCADE")
