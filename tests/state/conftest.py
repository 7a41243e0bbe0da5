from __future__ import annotations

from collections.abc import Iterator

import pytest

from state.store import Store
from tests.support.pg import pg_url, sqlite_url, store_url  # noqa: F401  (fixtures)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:  # noqa: F811
    with Store.open(store_url) as opened:
        yield opened
