"""The agent's exceptions; each maps to a CLI exit code and prints as one line.

    AgentError                 (exit 1: a runtime failure)
    ├── UsageError             (exit 2: bad command line, unparsable URL)
    │   └── ConfigError        (exit 2: malformed or invalid config, naming the key)
    └── StorageUnavailable     (exit 1: the database cannot be opened or written)

Probe failures never reach here: they are values on the scan (probes.base).
"""

from __future__ import annotations


class AgentError(Exception):
    exit_code = 1


class UsageError(AgentError):
    exit_code = 2


class ConfigError(UsageError):
    pass


class StorageUnavailable(AgentError):
    pass


def escape(text: str) -> str:
    """``text`` on one line: newlines, escapes and every other control or format character as \\xNN / \\uNNNN.

    Names, URLs and error texts come from configs, servers and DNS: without this, a name
    holding a newline would forge a log line of its own.
    """
    import unicodedata

    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)
