"""``-o PATH`` for the CLI: :mod:`probes.outfile`'s writing, its two errors as the CLI's exit codes.

``posture report``, ``posture export`` and ``posture eol refresh`` write through here: a path
that cannot take the output (a directory, a missing directory, no permission) is a
:class:`~agent.errors.UsageError` (exit 2); a write that failed (a full disk, a closed pipe,
an I/O error) an :class:`~agent.errors.AgentError` (exit 1). Both are one line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from agent.errors import AgentError, UsageError


@contextmanager
def output_errors() -> Iterator[None]:
    """Turn :mod:`probes.outfile`'s errors raised inside into the CLI's."""
    from probes.outfile import OutputFailed, OutputRefused

    try:
        yield
    except OutputRefused as exc:
        raise UsageError(str(exc)) from None
    except OutputFailed as exc:
        raise AgentError(str(exc)) from None


def write_output(path: str | os.PathLike[str], data: bytes) -> None:
    """:func:`probes.outfile.write_output` with the CLI's errors."""
    from probes.outfile import write_output as write

    with output_errors():
        write(path, data)
