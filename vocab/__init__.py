"""The shared vocabulary: the words every layer speaks, each defined once.

A leaf: standard library only, and nothing from posture. agent, probes, schedules and
state all import it; it imports none of them (import-linter holds this).

* :mod:`vocab.words`: Severity, AssetKind, RunStatus, ScanStatus, FindingState, Trigger.
* :mod:`vocab.errors`: the one exception tree (PostureError and its branches) and
  :func:`one_line`, the one way an exception becomes a line of text.
"""

from vocab.errors import DataFileError, InputError, PostureError, escape, mask, one_line, parses_data_file
from vocab.words import (
    SEVERITY_ORDER,
    AssetKind,
    FindingState,
    RunStatus,
    ScanStatus,
    Severity,
    Trigger,
    severity_position,
    severity_rank,
)

__all__ = [
    "SEVERITY_ORDER",
    "AssetKind",
    "DataFileError",
    "FindingState",
    "InputError",
    "PostureError",
    "RunStatus",
    "ScanStatus",
    "Severity",
    "Trigger",
    "escape",
    "mask",
    "one_line",
    "parses_data_file",
    "severity_position",
    "severity_rank",
]
