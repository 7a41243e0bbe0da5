"""Engines for SQLite and PostgreSQL, and where the default database lives.

SQLite runs in WAL mode (readers never wait for the writer), with foreign keys on
and a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue on the lock instead of failing when one upgrades a read snapshot.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from state.errors import BadUrl, StorageGone

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

BUSY_TIMEOUT_MS = 15_000
_BEGIN_OPTION = "posture_sqlite_begin"


def default_db_path(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """$STATE_DIRECTORY (systemd StateDirectory=) or the XDG state dir; the directory is created."""
    env = os.environ if environ is None else environ
    systemd = env.get("STATE_DIRECTORY", "")
    if systemd:
        # systemd joins several StateDirectory= entries with ':'; the first is ours.
        directory = Path(systemd.split(":")[0])
    else:
        xdg = env.get("XDG_STATE_HOME", "")
        # The XDG spec says relative values are invalid and must be ignored.
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else (home or Path.home()) / ".local" / "state"
        directory = base / "posture"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory / "posture.db"


def default_db_url(environ: Mapping[str, str] | None = None, home: Path | None = None) -> str:
    return f"sqlite:///{default_db_path(environ, home)}"


def parse_url(url: str) -> URL:
    """Parse and normalise: ``postgres://`` and bare ``postgresql://`` use psycopg 3."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # their messages may quote the URL, password and all
        hint = " (an @ in its password must be percent-encoded as %40)" if _spilled(url) else ""
        raise BadUrl(f"cannot parse database URL {shown_db_url(url)!r}: expected sqlite:///PATH "
                     f"or postgresql+psycopg://USER@HOST/NAME{hint}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in {"postgres", "postgresql"}:
        if driver not in {"", "psycopg"}:
            raise BadUrl(f"unsupported PostgreSQL driver {driver!r}: use postgresql+psycopg://")
        # Refused before the driver tries to reach a "host" made of the password's end (and names it).
        if _spilled(url):
            raise BadUrl(f"cannot use database URL {shown_db_url(url)!r}: an @ in its password (or in its "
                         "database name or query) must be percent-encoded as %40")
        if not _shown_host(parsed.host):
            raise BadUrl(f"cannot use database URL {shown_db_url(url)!r}: its host is not a host name or "
                         "address")
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in {"", "pysqlite"}:
            raise BadUrl(f"unsupported SQLite driver {driver!r}: use sqlite:///PATH")
        if parsed.query:
            # SQLite options in the URL either do nothing (a warning) or, with uri=true, open a new
            # empty file whose name is the path plus the query: a history silently not there.
            raise BadUrl(f"sqlite:///PATH takes no options (got ?{'&'.join(sorted(parsed.query))}): "
                         "give the file's path alone")
        return parsed
    raise BadUrl(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://...")


# SQLAlchemy's reading of a URL's user info: the user runs to the first ":" or "/", the password
# to the FIRST "@" after it. An unencoded "@" in the password leaves the rest of the password in
# the host, the database name or the query (``posture:Db@S3cret@127.0.0.1`` -> host ``S3cret@127.0.0.1``).
_USERINFO = re.compile(r"[^:/]*(?::[^@]*)?@")


def _spilled(url: str) -> bool:
    """Whether an "@" follows the user info as SQLAlchemy reads it: a piece of the password."""
    rest = url.partition("://")[2]
    info = _USERINFO.match(rest)
    return info is not None and "@" in rest[info.end():]


def _shown_host(host: str | None) -> bool:
    """Whether a parsed host can be shown: a name or an address, not characters no host holds."""
    if not host:
        return True
    if ":" in host:  # only an IPv6 literal holds a colon
        try:
            ipaddress.IPv6Address(host)
            return True
        except ValueError:
            return False
    return not any(c in "@/?#[]\\" or c.isspace() or not c.isprintable() for c in host)


def safe_url(url: URL) -> str:
    """The URL for messages and logs: no user, no password, no query (``?password=`` hides there too).
    A host no host could be, or an ``@`` in the database name or the query, is where a password's
    unencoded ``@`` left the rest of it: then nothing but ``scheme://****``."""
    scheme = url.drivername.partition("+")[0]
    if url.get_backend_name() == "sqlite":
        return f"{scheme}:///{url.database or ''}"
    spilled = "@" in (url.database or "") or any("@" in f"{k}={v}" for k, v in url.query.items())
    if spilled or not _shown_host(url.host):
        return f"{scheme}://****"
    host = url.host or ""
    host = f"[{host}]" if ":" in host else host
    port = f":{url.port}" if url.port else ""
    return f"{scheme}://{host}{port}/{url.database or ''}"


def shown_db_url(url: str) -> str:
    """A database URL as text, masked even when it does not parse: never its user, password or query."""
    from sqlalchemy.engine import make_url

    scheme = re.match(r"\s*([A-Za-z][A-Za-z0-9+.-]{0,31})://", url)
    if not url.lstrip().lower().startswith("sqlite") and _spilled(url):
        return f"{scheme.group(1).partition('+')[0]}://****" if scheme else "****"
    try:
        return safe_url(make_url(url))
    except Exception:
        pass
    return f"{scheme.group(1)}://****" if scheme else "****"


def make_engine(url: URL) -> Engine:
    from sqlalchemy import create_engine

    from state.jsoncodec import dumps

    kwargs: dict[str, Any] = {"json_serializer": dumps}
    if url.get_backend_name() == "sqlite":
        memory = url.database in (None, "", ":memory:")
        if memory:
            from sqlalchemy.pool import StaticPool

            # One shared connection, or every pooled connection would see its own empty database.
            kwargs["poolclass"] = StaticPool
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        engine = create_engine(url, **kwargs)
        _sqlite_events(engine, wal=not memory, path=None if memory else Path(str(url.database)))
        return engine
    kwargs["pool_pre_ping"] = True
    kwargs["connect_args"] = {"connect_timeout": 10}
    return create_engine(url, **kwargs)


def writer(engine: Engine) -> Engine:
    """The same pool, but transactions take SQLite's write lock up front."""
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _journal_mode_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the file.

    Switching a new database to WAL needs the file to itself, and SQLite can answer "database
    is locked" at once, without its busy handler, while another process is switching it or
    creating the schema: two posture processes opening one new database at the same moment.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _sqlite_events(engine: Engine, *, wal: bool, path: Path | None = None) -> None:
    """Connection pragmas, BEGIN IMMEDIATE for writers, and (for a file) the file's identity.

    The identity (device, inode) is taken when the first connection opens the file; every
    write transaction checks the path still names that file. SQLite keeps writing to a
    deleted file through open connections and creates an empty one at the path for new
    ones: either way the writes would be lost without a word (state.errors.StorageGone).
    """
    from sqlalchemy import event

    opened: list[tuple[int, int]] = []

    def check() -> None:
        if path is None or not opened:
            return
        now = _identity(path)
        if now != opened[0]:
            what = "deleted" if now is None else "replaced"
            raise StorageGone(f"the database file {path} was {what} while posture had it open; "
                              "nothing more is written to it")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module: it would BEGIN lazily,
        # only before the first write, leaving our reads outside the transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if wal:
                _journal_mode_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()
        if path is not None and not opened:
            ident = _identity(path)
            if ident is not None:
                opened.append(ident)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        if mode == "IMMEDIATE":
            check()
        connection.exec_driver_sql(f"BEGIN {mode}")
