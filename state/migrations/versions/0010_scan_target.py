"""Where each scan looked.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

``scans.target``: the asset's URL as the scan probed it, without its query or fragment.
An asset keeps its name when its URL changes; a finding last seen at the old target is
then resolved by configuration (the scan never looked there), not fixed, and its event
names both targets. Nullable: scans stored before this revision have none, and their
findings are judged as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scans", sa.Column("target", sa.Text(), nullable=True))  # in place on both databases


def downgrade() -> None:
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("target")
