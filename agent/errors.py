"""The agent's exceptions; each maps to a CLI exit code and prints as one line.

    AgentError                 (exit 1: a runtime failure; under vocab.PostureError)
    ├── UsageError             (exit 2: bad command line, unparsable URL)
    │   └── ConfigError        (exit 2: malformed or invalid config, naming the key)
    ├── StorageUnavailable     (exit 1: the database cannot be opened or written)
    └── WorkerStuck            (exit 1: agent.scheduling.fleet: workers not stopped by the deadline)

Probe failures never reach here: they are values on the scan (probes.base).
"""

from __future__ import annotations

from vocab import PostureError


class AgentError(PostureError):
    exit_code = 1


class UsageError(AgentError):
    exit_code = 2


class ConfigError(UsageError):
    pass


class StorageUnavailable(AgentError):
    pass

