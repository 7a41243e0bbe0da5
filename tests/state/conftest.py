from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from state.store import Store
from tests.support.pg import empty_tables, pg_module_url, pg_url, sqlite_url, store_url  # noqa: F401


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An open store on a new SQLite file, or on this module's PostgreSQL database emptied.

    Tests that need a database nobody has migrated yet take ``store_url`` instead.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'posture.db'}"
    else:
        url = request.getfixturevalue("pg_module_url")
        empty_tables(url)
    with Store.open(url) as opened:
        yield opened
