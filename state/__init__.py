"""Storage: SQLModel tables, alembic migrations and the store the agent writes scans to.

Import :mod:`state.store` for the API; this package imports nothing heavy so that
``state.records`` stays cheap for the CLI's start-up.
"""
