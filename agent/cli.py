"""The ``posture`` command line.

Global options come before the command. Exit codes: 0 the work was done,
1 a runtime failure, 2 bad input (usage, config, unparsable URL); failures
print one line on stderr, never a traceback. Heavy modules are imported by
the command that needs them, so ``posture --help`` stays fast; a command line
that names its command builds (and imports) that command's parser alone.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import agent.lean  # noqa: F401  (first: keeps httpx's own CLI and pydantic's plugin lookup out of this process)
from agent import __version__
from agent.command_names import COMMANDS as _COMMANDS  # command modules, imported lazily to build the parser
from agent.errors import AgentError
from state.errors import BadUrl, InvalidRequest, NotFound, StoreError
from vocab import escape, one_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"posture: {message} (see posture --help)\n")
        raise SystemExit(2)


# The global options that take a value (before the command): see build_parser.
_VALUED = ("--config", "--db", "--now")


def command_in(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names, when that is certain: its first word after the global options.
    None for anything else (``--help``, ``--version``, an abbreviated or unknown option, no command)."""
    words = iter(argv)
    for word in words:
        if word in _VALUED:
            next(words, None)
        elif not word.startswith(tuple(f"{v}=" for v in _VALUED)):
            module = word.replace("-", "_")
            return word if not word.startswith("-") and "_" not in word and module in _COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; with ``only``, a command's name, that command's alone (a command
    line that names it parses the same: the others' modules need not be imported to run it)."""
    parser = _Parser(
        prog="posture",
        description="Scheduled external-posture scanning agent for securities and futures firms.",
    )
    parser.add_argument("--version", action="version", version=f"posture {__version__}")
    parser.add_argument("--config", metavar="FILE", help="config file (TOML); also env POSTURE_CONFIG")
    parser.add_argument("--db", metavar="URL", help="SQLAlchemy database URL (overrides the config)")
    parser.add_argument("--now", metavar="ISO8601", help="the clock for this invocation (tests, backfills)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in _COMMANDS if only is None else (only.replace("-", "_"),):
        importlib.import_module(f"agent.commands.{name}").register(sub)
    return parser


# Start-up imports allocate about a million objects and none of them is cyclic garbage; the
# cycle collector walking them again and again costs a one-endpoint scan about 0.1 s of CPU.
# The process entry point pauses it for the first seconds (reference counting still frees).
STARTUP_GC_PAUSE_S = 2.0


def pause_gc_for_startup(seconds: float = STARTUP_GC_PAUSE_S) -> None:
    """Disable the cycle collector now and enable it again ``seconds`` later, whatever the command does."""
    import gc
    import threading

    gc.disable()
    timer = threading.Timer(seconds, gc.enable)
    timer.daemon = True
    timer.start()


def end_process(code: int) -> NoReturn:
    """End the process with ``code`` as the interpreter would, less its teardown.

    Output is flushed and every exit handler runs (logging's, multiprocessing's, weakref
    finalizers); what is skipped is deallocating every object and module one by one, about
    0.1-0.3 s of CPU after a scan of many assets, spent after the output, before the shell
    gets its prompt back. A thread still working (not a daemon) gets the interpreter's own
    exit, which waits for it.
    """
    import atexit
    import os
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        raise SystemExit(code)
    _flush()
    atexit._run_exitfuncs()
    _flush()
    os._exit(code)


def _flush() -> None:
    import contextlib

    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (posture ... | head), a closed stream
            stream.flush()


class _OneLine:
    """What a library logs (psycopg's pool retrying, procrastinate, asyncio) as posture's other
    messages are: ``posture: LOGGER: message``, escaped onto one line, an exception as its one-line
    summary, never a traceback. Without it Python's last-resort handler prints them raw."""

    def format(self, record: Any) -> str:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{text}: {one_line(record.exc_info[1], named=True)}"
        return f"posture: {record.name}: {escape(text)}"


def install_log_lines() -> None:
    """Warnings and errors of every logger go to stderr through :class:`_OneLine` (once per process)."""
    import logging

    root = logging.getLogger()
    if any(getattr(h, "_posture", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_OneLine())  # type: ignore[arg-type]
    handler._posture = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the process's entry point: library log lines as posture's own
        install_log_lines()
    code = _main(argv)
    if argv is None:  # the process's entry point (the console script, python -m agent), not a caller's
        end_process(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser(command_in(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(argv)  # --help and usage errors exit here, before any heavy import
    if argv is None:  # the process's entry point (the console script, python -m agent), not a caller's
        pause_gc_for_startup()
    try:
        code: int = args.func(args)
        return code
    except AgentError as exc:
        sys.stderr.write(f"posture: {escape(str(exc))}\n")
        return exc.exit_code
    except StoreError as exc:  # a refused request (unknown id, bad transition) is bad input
        sys.stderr.write(f"posture: {escape(one_line(exc, named=False))}\n")
        return 2 if isinstance(exc, InvalidRequest | NotFound | BadUrl) else 1
    except KeyboardInterrupt as exc:  # Ctrl-C; or SIGTERM, SIGHUP during a scan (agent.scanning.stopping)
        import signal

        signum = getattr(exc, "signum", signal.SIGINT)
        by = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
        sys.stderr.write(f"posture: interrupted{by}\n")
        return 128 + int(signum)
    except BrokenPipeError:
        return 0
    except Exception as exc:  # last line of defence: one line, never a traceback
        sys.stderr.write(f"posture: internal error: {one_line(exc, named=True)}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
