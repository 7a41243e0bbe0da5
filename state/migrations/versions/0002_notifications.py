"""Remediation tracking: the notification delivery log and third-party scans.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-21

Written by hand, portable to SQLite and PostgreSQL, like 0001: enums are VARCHAR(32),
timestamps timestamptz on PostgreSQL and naive UTC on SQLite, evidence files BLOB/BYTEA.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ENUM = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("channel_label", sa.Text(), nullable=False),
        sa.Column("event", ENUM, nullable=False),
        sa.Column("condition", sa.String(255), nullable=False),
        sa.Column("state", ENUM, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", TS, nullable=True),
        sa.Column("next_retry_at", TS, nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("channel", "condition", name="uq_deliveries_channel_condition"),
    )
    op.create_index("ix_deliveries_state_next_retry_at", "deliveries", ["state", "next_retry_at"])
    op.create_index("ix_deliveries_channel_state", "deliveries", ["channel", "state"])
    op.create_index("ix_deliveries_created_at", "deliveries", ["created_at"])

    op.create_table(
        "external_scans",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("performed_at", TS, nullable=False),
        sa.Column("performed_by", sa.String(255), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("evidence_name", sa.String(255), nullable=False),
        sa.Column("evidence_sha256", sa.String(64), nullable=False),
        sa.Column("evidence_size", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_external_scans"),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name="fk_external_scans_asset_id_assets", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_external_scans_asset_id_performed_at", "external_scans", ["asset_id", "performed_at"])


def downgrade() -> None:
    op.drop_table("external_scans")
    op.drop_table("deliveries")
