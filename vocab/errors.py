"""The one exception tree, and the one way an exception becomes a line of text.

Every exception posture raises derives from :class:`PostureError`. The root lives in
this leaf so that every layer can use it while the layers stay independent; each layer
owns its branch::

    PostureError                       (vocab.errors; never raised itself)
    ├── DataFileError (+ ValueError)   a data file is malformed (shipped, or a replacement a
    │                                  setting names): catalog.toml, eol.json (and eol
    │                                  exports), banners.toml, both signatures.toml (edge,
    │                                  leak, with its frame shapes), ports.toml, suites.toml,
    │                                  the social platforms; every parser is wrapped in
    │                                  @parses_data_file, so a missing key is one too
    ├── InputError (+ ValueError)      input posture was handed is malformed
    │   ├── ScheduleError              schedules.timing: a cadence, a date, a window
    │   ├── QuietError                 schedules.quiet: a quiet window
    │   ├── NmapOutputError            probes.ports.judge: nmap's XML
    │   ├── FileRefused                probes.files: a file a setting names
    │   └── OutputRefused              probes.outfile: an output path (-o) that cannot be written
    ├── OutputFailed                   probes.outfile: writing an output failed (a full disk)
    ├── ProbeFailure                   probes.base: a probe failing, as a value on the
    │   ├── ResolveFailure             result (ErrorKind says which)
    │   │   └── NameNotFound
    │   ├── OutOfScope
    │   ├── ConnectFailure
    │   ├── DeadlineExceeded
    │   ├── ProtocolFailure
    │   ├── BudgetExhausted
    │   ├── ToolUnavailable
    │   └── SettingsError              probes.ports.probe: bad ports settings
    ├── StoreError                     state.errors: storage refused or failed
    │   ├── NotFound
    │   ├── InvalidRequest
    │   │   ├── UnstorableValue
    │   │   └── InvalidTransition
    │   ├── BadUrl
    │   ├── SchemaError
    │   ├── ConnectionFailed
    │   ├── StorageGone
    │   └── LeaseLost                  state.job_queue
    ├── AgentError                     agent.errors: maps to a CLI exit code
    │   ├── UsageError                 (exit 2)
    │   │   └── ConfigError            (exit 2)
    │   └── StorageUnavailable         (exit 1)
    └── LabError                       agent.demo.lab: the demo lab cannot start

Internal control flow inside a probe (probes.social: PageHung, PageFailed,
_SandboxUnavailable) derives from PostureError too, so a walk of the modules finds no
loose exception class. A stop request is not an error: agent.scanning.stopping.Stopped
(SIGTERM, SIGHUP during a scan) is a KeyboardInterrupt, as Ctrl-C is, so no ``except
Exception`` turns it into a failure. Library exceptions are translated at the edge (state.errors
``translate``, probes.net) into this tree.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

MASK = "****"

_P = ParamSpec("_P")
_R = TypeVar("_R")


class PostureError(Exception):
    """Root of every exception posture raises. ``str(exc)`` is meant to be one line."""


class DataFileError(PostureError, ValueError):
    """A data file shipped with posture (or a replacement a setting names) is malformed."""


class InputError(PostureError, ValueError):
    """Input handed to posture (a schedule, a quiet window, a tool's output) is malformed."""


def parses_data_file(what: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate the parser of a data file so that it raises :class:`DataFileError` and
    nothing else: a missing key, a value of the wrong type or a bad pattern in ``what``
    (say "TLS suites") reads ``TLS suites: missing key 'since'``, never a traceback."""

    def wrap(parse: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(parse)
        def parsed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return parse(*args, **kwargs)
            except DataFileError:
                raise
            except KeyError as exc:
                raise DataFileError(f"{what}: missing key {one_line(exc, named=False)}") from None
            except (ValueError, TypeError, AttributeError, IndexError, re.error) as exc:
                raise DataFileError(f"{what}: {one_line(exc, named=False)}") from None

        return parsed

    return wrap


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ****, longest first (one may contain another)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def one_line(
    exc: BaseException,
    *,
    limit: int | None = 300,
    secrets: Iterable[str] = (),
    named: bool | None = None,
    first_line: bool = False,
) -> str:
    """``exc`` as one line of at most ``limit`` characters (None: uncut).

    * A database driver's error wrapped by SQLAlchemy (``.orig``) is unwrapped.
    * ``first_line``: keep only the first non-empty line (drivers and browsers append
      hints, SQL or call logs below it); otherwise every line is joined and runs of
      whitespace collapse to one space.
    * ``named``: prefix the exception's class name. By default only for exceptions
      outside the tree (``KeyError: 'x'`` says more than ``'x'``); posture's own
      messages are written to stand alone.
    * ``secrets`` are masked as **** before the text is cut.
    * An empty message reads as the class name.
    """
    inner = getattr(exc, "orig", None)
    source = inner if isinstance(inner, BaseException) else exc
    raw = str(source)
    if first_line:
        text = next((line.strip() for line in raw.splitlines() if line.strip()), "")
    else:
        text = " ".join(raw.split())
    text = text or type(source).__name__
    if named if named is not None else not isinstance(exc, PostureError):
        text = f"{type(exc).__name__}: {text}"
    text = mask(text, secrets)
    return text if limit is None else text[:limit]


def escape(text: str) -> str:
    """``text`` on one line: newlines, escapes and every other control or format character as \\xNN / \\uNNNN.

    Names, URLs and error texts come from configs, servers and DNS: without this, a name
    holding a newline would forge a log line of its own.
    """
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)
