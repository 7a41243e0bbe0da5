"""Re-mask stored channel labels whose "host" is a token.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05

Some notification services take a secret where a URL has its host: ``ntfy://TOPIC`` (on
ntfy.sh whoever knows the topic reads and posts to it), ``lametric://TOKEN@APP_ID``. Apprise's
privacy rendering shows them, and revision 0006 kept any host that looked like one. A channel
is now shown with its host only when the host really is one (a dotted name, ``localhost`` or
an IP address); this rewrites the stored labels and the URLs quoted in stored errors the same
way. Data only; the downgrade keeps the masked values (the secrets are gone for good).
"""

from __future__ import annotations

import ipaddress
import re

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://([^\s'\"<>/?#]*)")


def _is_host(netloc: str) -> bool:
    host = netloc.rpartition("@")[2]
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    else:
        host = host.rpartition(":")[0] if host.count(":") == 1 else host
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return host.lower() == "localhost" or ("." in host.strip(".") and ".." not in host)


def _mask(match: re.Match[str]) -> str:
    scheme, netloc = match.group(1), match.group(2)
    return match.group(0) if netloc in ("", "****") or _is_host(netloc) else f"{scheme}://****"


def mask_text(text: str) -> str:
    """Every URL in ``text`` whose host is not a host name or address, as scheme://****."""
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
