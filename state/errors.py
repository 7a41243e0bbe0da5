"""The storage exception tree (StoreError, under vocab.PostureError). Every database or driver error leaves the store as
one of these, with a one-line message fit for the CLI's stderr (no password, no SQL).
"""

from __future__ import annotations

from vocab import PostureError, one_line


class StoreError(PostureError):
    """Base of every error the store raises."""


class NotFound(StoreError):
    """No finding, scan or asset with that id or name."""


class InvalidRequest(StoreError):
    """The caller asked for something the store refuses (bad value, naive datetime)."""


class UnstorableValue(InvalidRequest):
    """Evidence or observations hold a value JSON cannot represent (a set, NaN, bytes)."""


class InvalidTransition(InvalidRequest):
    """The finding or scan is not in a state that allows this change."""


class BadUrl(StoreError):
    """The database URL cannot be parsed or names an unsupported database."""


class SchemaError(StoreError):
    """The database schema cannot be brought to this version (unknown revision, foreign tables)."""


class ConnectionFailed(StoreError):
    """The database cannot be reached, opened, or dropped the connection."""


class StorageGone(StoreError):
    """The SQLite file posture opened was deleted or replaced: what it writes now would be lost."""


def first_line(exc: BaseException) -> str:
    """The first meaningful line of an exception, unwrapping SQLAlchemy's DBAPI wrapper
    (drivers append hints and SQL below it)."""
    return one_line(exc, limit=None, named=False, first_line=True)


def translate(exc: Exception, doing: str) -> StoreError:
    """Map a SQLAlchemy/driver exception to the store's tree; ``doing`` says what failed."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, StoreError):
        return type(exc)(f"{doing}: {exc}")
    inner = getattr(exc, "orig", None)
    if isinstance(inner, StoreError):  # our own error, raised while SQLAlchemy bound a parameter
        return type(inner)(f"{doing}: {inner}")
    message = f"{doing}: {first_line(exc)}"
    if _missing_schema(exc):
        return SchemaError(f"{message} (the database was not created by posture, or was damaged)")
    if isinstance(exc, sa_exc.InterfaceError | sa_exc.DisconnectionError) or (
        isinstance(exc, sa_exc.OperationalError) and _unreachable(exc)
    ):
        return ConnectionFailed(message)
    if isinstance(exc, sa_exc.ArgumentError | sa_exc.NoSuchModuleError):
        return BadUrl(message)
    if isinstance(exc, sa_exc.DBAPIError):
        return StoreError(message)
    if isinstance(exc, sa_exc.StatementError):
        # Raised before the database saw anything: a value the column cannot take.
        return InvalidRequest(message)
    return StoreError(message)


def _missing_schema(exc: Exception) -> bool:
    text = first_line(exc)
    if "no such table" in text or "no such column" in text:  # SQLite
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return sqlstate in {"42P01", "42703"}  # PostgreSQL undefined_table, undefined_column


# sqlite3 raises OperationalError for SQL mistakes too; only these mean "cannot get at the file".
_SQLITE_UNREACHABLE = ("unable to open", "database is locked", "disk i/o error", "readonly database")


def _unreachable(exc: Exception) -> bool:
    orig = getattr(exc, "orig", None)
    if type(orig).__module__.startswith("sqlite3"):
        text = first_line(exc).lower()
        return any(marker in text for marker in _SQLITE_UNREACHABLE)
    return True  # psycopg's OperationalError is about the connection or the server
