"""Where the refreshed end-of-life data lives (``posture eol refresh`` writes it, every scan reads it)."""

from __future__ import annotations

from pathlib import Path


def default_path() -> Path:
    """eol.json in the state directory (beside the default database)."""
    from state.engine import default_db_path

    return default_db_path().parent / "eol.json"


def data_in_use(configured: str | None) -> str | None:
    """The refreshed file posture uses: the configured one, or the state directory's when present."""
    if configured:
        return configured
    path = default_path()
    return str(path) if path.is_file() else None
