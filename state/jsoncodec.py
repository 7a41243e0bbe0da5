"""JSON as stored: strict (a value JSON cannot hold is an error, not a silent str()),
and readable (Traditional Chinese evidence stays as text, not \\u escapes)."""

from __future__ import annotations

import json
from typing import Any

from state.errors import UnstorableValue


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        # Raised inside the driver on PostgreSQL, inside SQLAlchemy on SQLite: one type for both.
        raise UnstorableValue(f"a value cannot be stored as JSON: {exc}") from None
