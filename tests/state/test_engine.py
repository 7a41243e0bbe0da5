"""Engines, URLs, the default database location, and errors as one-line values."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from state.engine import BUSY_TIMEOUT_MS, default_db_path, default_db_url, parse_url
from state.errors import BadUrl, ConnectionFailed, StoreError
from state.store import Store
from tests.support.pg import admin_url


def test_sqlite_runs_wal_with_foreign_keys_and_busy_timeout(sqlite_url: str) -> None:
    with Store.open(sqlite_url) as store, store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == BUSY_TIMEOUT_MS


def test_foreign_keys_are_enforced(store_url: str) -> None:
    with (
        Store.open(store_url) as store,
        pytest.raises(IntegrityError, match=r"(?i)foreign key"),
        store.engine.begin() as conn,
    ):
        conn.execute(text(
            "INSERT INTO probe_runs (scan_id, probe, status, started_at, finished_at, observations)"
            " VALUES (4242, 'tls', 'ok', '2025-01-01 00:00:00', '2025-01-01 00:00:00', '{}')"
        ))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STATE_DIRECTORY": "{tmp}/sd"}, "{tmp}/sd/posture.db"),
        ({"STATE_DIRECTORY": "{tmp}/a:{tmp}/b"}, "{tmp}/a/posture.db"),  # several StateDirectory= entries
        ({"STATE_DIRECTORY": "{tmp}/sd", "XDG_STATE_HOME": "{tmp}/x"}, "{tmp}/sd/posture.db"),
        ({"XDG_STATE_HOME": "{tmp}/x"}, "{tmp}/x/posture/posture.db"),
        ({"XDG_STATE_HOME": "relative/ignored"}, "{tmp}/home/.local/state/posture/posture.db"),
        ({}, "{tmp}/home/.local/state/posture/posture.db"),
    ],
)
def test_default_db_location(tmp_path: Path, env: dict[str, str], expected: str) -> None:
    environ = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    path = default_db_path(environ, home=tmp_path / "home")
    assert str(path) == expected.format(tmp=tmp_path)
    assert path.parent.is_dir()
    assert default_db_url(environ, home=tmp_path / "home") == f"sqlite:///{path}"


def test_default_db_url_opens(tmp_path: Path) -> None:
    url = default_db_url({"STATE_DIRECTORY": str(tmp_path / "state")})
    with Store.open(url) as store:
        assert store.assets() == []
    assert (tmp_path / "state" / "posture.db").is_file()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u:p@127.0.0.1/db", "postgresql+psycopg"),
        ("postgres://u:p@127.0.0.1/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u:p@127.0.0.1/db", "postgresql+psycopg"),
        ("sqlite:///x.db", "sqlite"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite"),
    ],
)
def test_urls_normalise_to_supported_drivers(url: str, driver: str) -> None:
    assert parse_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "cannot parse"),
        ("mysql://u@127.0.0.1/db", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u@127.0.0.1/db", "unsupported PostgreSQL driver"),
        ("sqlite+aiosqlite:///x.db", "unsupported SQLite driver"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(BadUrl, match=message):
        Store.open(url)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_postgres_is_a_one_line_connection_failure() -> None:
    url = f"postgresql+psycopg://posture:s3cret@127.0.0.1:{_closed_port()}/posture"
    with pytest.raises(ConnectionFailed) as raised:
        Store.open(url)
    message = str(raised.value)
    assert "\n" not in message and "s3cret" not in message and "posture:s3cret" not in message
    assert message.startswith("cannot open database postgresql://127.0.0.1:")


def test_wrong_password_is_a_connection_failure() -> None:
    url = parse_url(admin_url()).set(password="wrong-password")
    with pytest.raises(ConnectionFailed, match="password authentication failed") as raised:
        Store.open(url.render_as_string(hide_password=False))
    assert "wrong-password" not in str(raised.value)


def test_sqlite_in_a_missing_directory_is_a_connection_failure(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="unable to open database file"):
        Store.open(f"sqlite:///{tmp_path / 'missing' / 'posture.db'}")


def test_not_a_database_file(tmp_path: Path) -> None:
    bogus = tmp_path / "posture.db"
    bogus.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a database") as raised:
        Store.open(f"sqlite:///{bogus}")
    assert "\n" not in str(raised.value)


def test_in_memory_sqlite_works() -> None:
    with Store.open("sqlite://") as store:
        assert store.assets() == [] and store.dialect == "sqlite"


@pytest.mark.parametrize("query", ["?mode=ro", "?mode=ro&uri=true", "?cache=shared"])
def test_sqlite_urls_take_no_options(tmp_path: Path, query: str) -> None:
    """SQLite URL options either do nothing or (uri=true) open a new empty file named path+query,
    where every command would then report a history of nothing: refused, the file left alone."""
    from state.engine import parse_url
    from state.errors import BadUrl

    with pytest.raises(BadUrl, match="takes no options"):
        parse_url(f"sqlite:///{tmp_path / 'p.db'}{query}")
    assert list(tmp_path.iterdir()) == []
