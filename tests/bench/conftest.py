from __future__ import annotations

from tests.support.pg import pg_url, sqlite_url, store_url  # noqa: F401  (fixtures)
