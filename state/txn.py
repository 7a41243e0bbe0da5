"""One transaction around a unit of work, for modules that extend the store without
growing :class:`state.store.Store` itself: reads on the engine, writes on the writer
(SQLite takes its write lock up front), errors translated to :mod:`state.errors`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from state.engine import writer
from state.errors import UnstorableValue, translate

if TYPE_CHECKING:
    from sqlmodel import Session

    from state.store import Store

T = TypeVar("T")


def read(store: Store, doing: str, work: Callable[[Session], T]) -> T:
    return _run(store, doing, work, write=False)


def write(store: Store, doing: str, work: Callable[[Session], T]) -> T:
    return _run(store, doing, work, write=True)


def _run(store: Store, doing: str, work: Callable[[Session], T], *, write: bool) -> T:
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session

    engine = writer(store.engine) if write else store.engine
    try:
        with Session(engine, expire_on_commit=False) as session:
            result = work(session)
            if write:
                session.commit()
            return result
    except (SQLAlchemyError, UnstorableValue) as exc:
        raise translate(exc, doing) from None
