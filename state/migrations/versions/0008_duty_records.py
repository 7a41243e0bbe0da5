"""The compliance calendar: duty records (penetration tests, drills, declarations...).

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-04

``duty_records``: one row per duty done: its kind, the calendar date exactly as entered
(``performed_entered``) and as a date (``performed_on``, in the agent's time zone), who
did it, when it was recorded, and its evidence file kept byte for byte with its path as
given, SHA-256 and size. Third-party scans registered before this revision stay in
``external_scans`` and are read as ``scan`` duties beside these rows: nothing is copied.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "duty_records",
        sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("performed_on", sa.Date(), nullable=False),
        sa.Column("performed_entered", sa.String(64), nullable=False),
        sa.Column("performed_by", sa.String(255), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("evidence_name", sa.String(255), nullable=True),
        sa.Column("evidence_path", sa.Text(), nullable=True),
        sa.Column("evidence_sha256", sa.String(64), nullable=True),
        sa.Column("evidence_size", sa.Integer(), nullable=True),
        sa.Column("evidence", sa.LargeBinary(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_duty_records"),
    )
    op.create_index("ix_duty_records_kind_performed_on", "duty_records", ["kind", "performed_on"])


def downgrade() -> None:
    op.drop_table("duty_records")
