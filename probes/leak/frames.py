"""Stack traces and source excerpts found by their structure (pure; no I/O).

A stack trace is recognised by the *shape of its frames*, not by a string per
framework: ``File "/app/x.py", line 24, in f`` (Python), ``at com.x.Y.m(Y.java:12)``
(JVM), ``#0 /var/www/x.php(12): f()`` (PHP) and so on. Shapes are data
(``[[frames]]`` in ``probes/leak/signatures.toml``, each with its source) and
are matched on the page as read (markup removed, entities decoded), so a debugger
that renders each frame in ``<span>``/``<em>`` elements is read like plain text.

One frame is not a trace (prose and documentation quote one): a shape needs
``min_frames`` frames, or one frame with an exception line near it.

A *source excerpt* is what template engines and JSP pages show around a failing
line: several consecutively numbered lines; with an exception class name near
them it is a detailed error page even when no frame is shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vocab import DataFileError

_FRAME_KEYS = frozenset({"id", "language", "frame", "exception", "min_frames", "source"})
_SCAN_LIMIT = 50  # frames counted at most: enough to decide, bounded on any page
_NEAR = 3000  # characters around a frame in which its exception line is looked for


@dataclass(frozen=True)
class FrameShape:
    id: str
    language: str
    frame: re.Pattern[str]
    exception: re.Pattern[str] | None
    min_frames: int
    source: str


@dataclass(frozen=True)
class TraceMatch:
    start: int
    end: int
    frames: int
    exception: bool


def parse_shape(entry: Mapping[str, Any]) -> FrameShape:
    sid = str(entry.get("id") or "")
    if not sid:
        raise DataFileError("frame shape without an id")
    unknown = set(entry) - _FRAME_KEYS
    if unknown:
        raise DataFileError(f"frames {sid}: unknown key(s) {', '.join(sorted(unknown))}")
    if not str(entry.get("source") or "").strip():
        raise DataFileError(f"frames {sid}: every frame shape needs its source")
    if not entry.get("frame"):
        raise DataFileError(f"frames {sid}: no frame pattern")
    min_frames = int(entry.get("min_frames", 2))
    if min_frames < 2:
        raise DataFileError(f"frames {sid}: min_frames must be at least 2 (one frame is not a trace)")
    exc = entry.get("exception")
    return FrameShape(
        id=sid,
        language=str(entry.get("language") or sid),
        frame=_compile(sid, entry["frame"]),
        exception=_compile(sid, exc) if exc else None,
        min_frames=min_frames,
        source=str(entry["source"]),
    )


def _compile(sid: str, pattern: object) -> re.Pattern[str]:
    try:
        return re.compile(str(pattern), re.MULTILINE)
    except re.error as exc:
        raise DataFileError(f"frames {sid}: bad regex {pattern!r}: {exc}") from None


def find_trace(text: str, shape: FrameShape) -> TraceMatch | None:
    """A stack trace of ``shape`` in ``text`` (the page as read), or None."""
    frames: list[re.Match[str]] = []
    for m in shape.frame.finditer(text):
        frames.append(m)
        if len(frames) >= _SCAN_LIMIT:
            break
    if not frames:
        return None
    first = frames[0]
    if len(frames) >= shape.min_frames:
        return TraceMatch(first.start(), frames[-1].end(), len(frames), False)
    if shape.exception is not None:
        for m in frames:
            lo, hi = max(0, m.start() - _NEAR), min(len(text), m.end() + _NEAR)
            exc = shape.exception.search(text, lo, hi)
            if exc is not None:
                return TraceMatch(min(exc.start(), m.start()), max(exc.end(), m.end()), len(frames), True)
    return None


# A numbered source line as template engines, JSP and debuggers print it:
# "12: {{ x }}", ">> 12 | x", "-->  12  x", "line 12", or the number alone in its table cell.
_NUMBERED = re.compile(
    r"^[^\S\n]{0,20}(?:>{1,2}|-{1,2}>|=>|\*|→)?[^\S\n]{0,8}(?:[Ll]ine[^\S\n]{1,4})?(\d{1,6})"
    r"[^\S\n]{0,4}(?:[:|.)\]][^\n]{0,400}|[^\S\n][^\n]{0,400})?$",
    re.MULTILINE,
)
_RUN_GAP = 3  # non-blank lines between two numbers (a table renders number and code apart)
_RUN_CHARS = 4000


def numbered_run(text: str, want: int) -> tuple[int, int] | None:
    """Span of ``want`` consecutively numbered lines close together in ``text``, or None."""
    run_start = prev_num = prev_end = -1
    count = 0
    for m in _NUMBERED.finditer(text):
        num = int(m.group(1))
        if count and num == prev_num + 1 and _close(text, prev_end, m.start()):
            count += 1
        else:
            count, run_start = 1, m.start()
        prev_num, prev_end = num, m.end()
        if count >= want:
            return run_start, m.end()
    return None


def _close(text: str, start: int, end: int) -> bool:
    """At most a few non-blank lines (the code) between two numbered lines."""
    if end - start > _RUN_CHARS:
        return False
    return sum(1 for line in text[start:end].split("\n") if line.strip()) <= _RUN_GAP
