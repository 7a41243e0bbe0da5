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


def data_problem(path: str) -> str | None:
    """Why the end-of-life data file at ``path`` cannot be used (one line naming the file), read and
    parsed as the http and ports probes read it; None: it can."""
    from probes.eol.data import load_eol_data
    from vocab import DataFileError

    try:
        load_eol_data(path)
    except DataFileError as exc:
        text = str(exc)
    except RecursionError:  # JSON nested deeper than the decoder goes
        text = "not JSON posture can read: nested too deeply"
    else:
        return None
    return text if f"{path}:" in text else f"{path}: {text}"
