"""Re-mask what the delivery log stored of notification URLs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Earlier versions stored each channel's label as Apprise's privacy rendering of its URL,
which keeps ``json://`` paths and query values: tokens. A channel is now stored only as
``scheme://host[:port]`` (the host masked when it is itself a token). This rewrites the
stored labels that way, and every URL quoted in a stored error likewise. Data only, no
schema change; the downgrade keeps the masked values (the secrets are gone for good).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://([^\s'\"<>]*)")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:\d{1,5})?")


def _mask(match: re.Match[str]) -> str:
    scheme, rest = match.group(1).lower(), match.group(2)
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
    if _HOST.fullmatch(netloc) is None or ".." in netloc:  # Apprise shows a token host as "1...0"
        return f"{scheme}://****"
    return f"{scheme}://{netloc}"


def mask_text(text: str) -> str:
    """Every URL in ``text`` as scheme://host[:port]: no user, password, path or query."""
    return _URL.sub(_mask, text)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":  # overwrite the old values' bytes, not only unlink them
        bind.exec_driver_sql("PRAGMA secure_delete = ON")
    deliveries = sa.table("deliveries", sa.column("id", sa.Integer()), sa.column("channel_label", sa.Text()),
                          sa.column("last_error", sa.Text()))
    rows = bind.execute(sa.select(deliveries.c.id, deliveries.c.channel_label, deliveries.c.last_error)).all()
    for id_, label, error in rows:
        new_label = mask_text(label or "")
        new_error = None if error is None else mask_text(error)
        if new_label != label or new_error != error:
            bind.execute(sa.update(deliveries).where(deliveries.c.id == id_)
                         .values(channel_label=new_label, last_error=new_error))


def downgrade() -> None:
    pass
