"""Dates as people typed them; the effective per-asset configuration of each scan.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-04

- ``findings.accepted_until_entered`` and ``external_scans.performed_entered``: the date
  (or date-time) exactly as the person entered it (``2027-03-31``), kept beside the
  instant computed from it in the agent's time zone, so every output shows what was
  entered and comparisons still use the instant.
- ``scans.asset_config_hash``: a hash of the configuration that decides what a scan of
  that asset reports (kind, allow-lists, declared controls, severity overrides, probe
  settings); ``probe_runs.config_hash`` the part of it that decides one probe's findings.
  A finding that vanishes while its probe's hash changed (and the condition is still
  observed, or the probe cannot tell) is resolved by configuration, not fixed.

Nullable columns only: rows written before this revision keep their meaning.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default): both databases do it in place, no table copy.
    op.add_column("findings", sa.Column("accepted_until_entered", sa.String(64), nullable=True))
    op.add_column("external_scans", sa.Column("performed_entered", sa.String(64), nullable=True))
    op.add_column("scans", sa.Column("asset_config_hash", sa.String(128), nullable=True))
    op.add_column("probe_runs", sa.Column("config_hash", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("probe_runs") as batch:
        batch.drop_column("config_hash")
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("asset_config_hash")
    with op.batch_alter_table("external_scans") as batch:
        batch.drop_column("performed_entered")
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("accepted_until_entered")
