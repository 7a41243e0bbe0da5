"""What a scan narrowed with ``--probe`` may claim.

A narrowed scan is ``partial`` by rule (the probes left out were skipped, "not requested"),
so tests that narrow check instead that every probe asked for ran and succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def narrowed_ok(scan: Mapping[str, Any]) -> bool:
    """Partial only because probes were not requested: every probe asked for ran and succeeded."""
    steps = scan["probes"]
    ran = [s for s in steps if s["outcome"] == "ran"]
    rest = [s for s in steps if s["outcome"] != "ran"]
    return (scan["status"] == "partial" and bool(ran) and not scan["errors"]
            and all(s["outcome"] == "skipped" and "not requested" in (s["reason"] or "") for s in rest))
