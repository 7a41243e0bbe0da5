"""Run the alembic migrations in-process: no alembic.ini, no subprocess.

Opening a store calls :func:`upgrade`; it holds a write transaction (SQLite) or an
advisory lock (PostgreSQL) so concurrent openers of a fresh database migrate once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from typing import TYPE_CHECKING

from state.errors import SchemaError, StoreError, translate

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

# alembic's `context` is a module-global proxy: two threads migrating at once would
# share it. Processes are kept apart by the database (write lock / advisory lock).
_IN_PROCESS = threading.Lock()


@contextmanager
def alembic_config(connection: Connection | None = None) -> Iterator[Config]:
    from alembic.config import Config

    with as_file(files("state").joinpath("migrations")) as location:
        config = Config()
        config.set_main_option("script_location", str(location))
        config.attributes["connection"] = connection
        yield config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    with alembic_config() as config:
        head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise SchemaError("posture ships no migrations (broken installation)")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (default: this version's head), keeping all data."""
    from alembic import command
    from alembic.util import CommandError

    try:
        with _IN_PROCESS, engine.connect() as connection, alembic_config(connection) as config:
            command.upgrade(config, revision)
            connection.commit()
    except CommandError as exc:
        # Typically a revision this posture does not know: the database is newer than the code.
        raise SchemaError(
            f"cannot migrate the database schema to {revision} ({head_revision()} is this posture's"
            f" newest): {exc}"
        ) from None
    except StoreError:
        raise
    except Exception as exc:
        error = translate(exc, "cannot migrate the database schema")
        if type(error) is StoreError:
            # e.g. "table assets already exists": tables that alembic did not create.
            error = SchemaError(f"{error} (is this a posture database?)")
        raise error from None


def downgrade(engine: Engine, revision: str) -> None:
    """For tests and emergencies; posture itself only ever upgrades."""
    from alembic import command

    with _IN_PROCESS, engine.connect() as connection, alembic_config(connection) as config:
        command.downgrade(config, revision)
        connection.commit()
