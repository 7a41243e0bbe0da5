"""Free text people type on the command line, kept as audit evidence (``--by``, ``--reason``, ``--note``).

Stored as typed and shown by every output (history, ``findings show``, the digest, the report),
so it must be printable and on one line: a newline would forge a line of ``posture history``
(a "scan #99 complete" that never happened), an escape sequence would repaint an auditor's
terminal. Refused at entry, exit 2; a config's names follow the same rule
(agent/config_sections.py).
"""

from __future__ import annotations

import argparse
import unicodedata

MAX_TEXT = 2000
_REFUSED = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")  # controls, format, separators, unassigned


def evidence_text(text: str) -> str:
    """An argparse ``type``: ``text`` stripped, one printable line of at most ``MAX_TEXT`` characters
    (empty is left to the command: some default it, the others refuse it)."""
    value = text.strip()
    if len(value) > MAX_TEXT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TEXT} characters")
    bad = next((c for c in value if unicodedata.category(c) in _REFUSED), None)
    if bad is not None:
        raise argparse.ArgumentTypeError(
            f"must be one line of printable text (found U+{ord(bad):04X}: no newline, tab, escape or other control)")
    return value
