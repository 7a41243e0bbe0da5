"""JSON as stored: strict (a value JSON cannot hold is an error, not a silent str()),
and readable (Traditional Chinese evidence stays as text, not \\u escapes)."""

from __future__ import annotations

import json
from typing import Any


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
