"""Portable column types: UTC timestamps and string-stored enums.

SQLite keeps no time zone, PostgreSQL keeps ``timestamptz``; both come back as
timezone-aware UTC. Enums are stored as their string values in a VARCHAR (no
native PostgreSQL ENUM), so adding a member never needs a migration.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=enum.StrEnum)


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; naive input is refused, never guessed."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"naive datetime {value.isoformat()} (timestamps must be timezone-aware)")
    return value.astimezone(UTC)


def from_db(value: datetime) -> datetime:
    """Normalise what a driver returns: SQLite drops tzinfo, the value is UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = as_utc(value)
        # SQLite's DATETIME is text: store naive UTC so values sort and compare as text.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else from_db(value)


class StrEnumType(TypeDecorator[E], Generic[E]):
    impl = String(32)
    cache_ok = True

    def __init__(self, enum_class: type[E], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enum_class = enum_class

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        # Validates plain strings too: a value outside the enum never reaches the table.
        return self.enum_class(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum_class(value)
