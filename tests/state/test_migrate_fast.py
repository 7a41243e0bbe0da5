"""Opening a current database skips alembic; the shortcut agrees with alembic on what "current" is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from state import migrate
from state.store import Store


def test_shipped_head_is_alembics_head() -> None:
    assert migrate.shipped_head() == migrate.head_revision()


def test_current_database_opens_without_importing_alembic(store_url: str) -> None:
    with Store.open(store_url):
        pass  # creates and migrates
    code = (
        "import sys\nfrom state.store import Store\n"
        f"Store.open({store_url!r}).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_a_database_behind_the_head_is_still_migrated(store_url: str) -> None:
    with Store.open(store_url) as store:
        migrate.downgrade(store.engine, "0001")
        assert migrate.current_revision(store.engine) == "0001"
    with Store.open(store_url) as store:
        assert migrate.current_revision(store.engine) == migrate.head_revision()
