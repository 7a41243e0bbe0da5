"""Start a command with SIGINT as a terminal's foreground job has it, or ignored.

A test that sends SIGINT must not depend on how the test run itself was started: a
non-interactive shell starts a background job (``pytest ... &``) with SIGINT ignored, an
ignored signal stays ignored across ``exec``, and Python then installs no handler for it.
"""

from __future__ import annotations

import sys

_RUN = ("import runpy, signal, sys\n"
        "signal.signal(signal.SIGINT, {handler})\n"
        "sys.argv[0] = 'posture'\n"
        "runpy.run_module('agent', run_name='__main__', alter_sys=True)\n")

# Python code to put first in a ``python -c`` script: SIGINT raises KeyboardInterrupt.
FOREGROUND = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def posture_foreground(*argv: str) -> list[str]:
    """``python -m agent ARGV`` with SIGINT raising KeyboardInterrupt (Ctrl-C at a terminal)."""
    return [sys.executable, "-c", _RUN.format(handler="signal.default_int_handler"), *argv]


def posture_ignoring_sigint(*argv: str) -> list[str]:
    """``python -m agent ARGV`` started with SIGINT ignored (a background job of a script)."""
    return [sys.executable, "-c", _RUN.format(handler="signal.SIG_IGN"), *argv]
