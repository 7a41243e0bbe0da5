"""Initial schema: assets, scans, probe runs, findings, occurrences, events.

Revision ID: 0001
Revises:
Create Date: 2025-11-21

Written by hand, portable to SQLite and PostgreSQL. Enums are VARCHAR(32) holding
the enum's value; timestamps are timestamptz on PostgreSQL and naive UTC on SQLite.
Constraint names follow state.tables.core.NAMING so later revisions can address them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
ENUM = sa.String(32)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer(), primary_key=True, nullable=False)


def upgrade() -> None:
    op.create_table(
        "assets",
        _id(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("configured", sa.Boolean(), nullable=False),
        sa.Column("added_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assets"),
        sa.UniqueConstraint("name", name="uq_assets_name"),
    )

    op.create_table(
        "scans",
        _id(),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("trigger", ENUM, nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("forced_active", sa.Boolean(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("posture_version", sa.String(64), nullable=False),
        sa.Column("catalog_version", sa.String(64), nullable=False),
        sa.Column("config_hash", sa.String(128), nullable=False),
        sa.Column("dns", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_scans"),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name="fk_scans_asset_id_assets", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_scans_asset_id_started_at", "scans", ["asset_id", "started_at"])
    op.create_index(
        "ix_scans_asset_id_status_full_finished_at", "scans", ["asset_id", "status", "full", "finished_at"]
    )
    op.create_index("ix_scans_status", "scans", ["status"])
    op.create_index("ix_scans_started_at", "scans", ["started_at"])

    op.create_table(
        "probe_runs",
        _id(),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("probe", sa.String(64), nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=False),
        sa.Column("observations", sa.JSON(), nullable=False),
        sa.Column("error_kind", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_probe_runs"),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scans.id"], name="fk_probe_runs_scan_id_scans", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_probe_runs_scan_id", "probe_runs", ["scan_id"])

    op.create_table(
        "findings",
        _id(),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.String(128), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("probe", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", ENUM, nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("fixed_at", TS, nullable=True),
        sa.Column("reopened_count", sa.Integer(), nullable=False),
        sa.Column("accepted_reason", sa.Text(), nullable=True),
        sa.Column("accepted_by", sa.String(255), nullable=True),
        sa.Column("accepted_until", TS, nullable=True),
        sa.Column("false_positive_reason", sa.Text(), nullable=True),
        sa.Column("false_positive_by", sa.String(255), nullable=True),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_findings"),
        sa.UniqueConstraint("asset_id", "check_id", "key", name="uq_findings_asset_id_check_id_key"),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"], name="fk_findings_asset_id_assets", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_findings_asset_id_probe_state", "findings", ["asset_id", "probe", "state"])
    op.create_index("ix_findings_state", "findings", ["state"])
    op.create_index("ix_findings_accepted_until", "findings", ["accepted_until"])

    op.create_table(
        "finding_occurrences",
        _id(),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("probe_run_id", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_finding_occurrences"),
        sa.UniqueConstraint("scan_id", "finding_id", name="uq_finding_occurrences_scan_id_finding_id"),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scans.id"], name="fk_finding_occurrences_scan_id_scans", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["findings.id"],
            name="fk_finding_occurrences_finding_id_findings",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["probe_run_id"],
            ["probe_runs.id"],
            name="fk_finding_occurrences_probe_run_id_probe_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_finding_occurrences_finding_id", "finding_occurrences", ["finding_id"])
    op.create_index("ix_finding_occurrences_probe_run_id", "finding_occurrences", ["probe_run_id"])

    op.create_table(
        "finding_events",
        _id(),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("from_state", ENUM, nullable=True),
        sa.Column("to_state", ENUM, nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_finding_events"),
        sa.ForeignKeyConstraint(
            ["finding_id"], ["findings.id"], name="fk_finding_events_finding_id_findings", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scans.id"], name="fk_finding_events_scan_id_scans", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_finding_events_finding_id_at", "finding_events", ["finding_id", "at"])
    op.create_index("ix_finding_events_scan_id", "finding_events", ["scan_id"])
    op.create_index("ix_finding_events_at", "finding_events", ["at"])


def downgrade() -> None:
    for table in ("finding_events", "finding_occurrences", "findings", "probe_runs", "scans", "assets"):
        op.drop_table(table)
