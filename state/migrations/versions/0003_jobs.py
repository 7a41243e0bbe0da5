"""The daemon's job table: scheduled work claimed with a lease.

Revision ID: 0003
Revises: 0002
Create Date: 2025-11-21

Written by hand, portable to SQLite and PostgreSQL, like 0001: enums are VARCHAR(32),
timestamps timestamptz on PostgreSQL and naive UTC on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ENUM = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("asset", sa.String(255), nullable=True),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("state", ENUM, nullable=False),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("key", name="uq_jobs_key"),
        sa.ForeignKeyConstraint(["scan_id"], ["scans.id"], name="fk_jobs_scan_id_scans", ondelete="SET NULL"),
    )
    op.create_index("ix_jobs_state_lease_until", "jobs", ["state", "lease_until"])
    op.create_index("ix_jobs_kind_asset_state", "jobs", ["kind", "asset", "state"])
    op.create_index("ix_jobs_finished_at", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_table("jobs")
