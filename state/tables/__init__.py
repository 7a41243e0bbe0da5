"""SQLModel tables on one shared metadata.

Importing any module of this package imports all of them first, so ``metadata`` always
holds every table (the alembic migrations and the schema test rely on it).
"""

from state.tables import core, duties, jobs, notify  # noqa: F401  (every table on the metadata)
