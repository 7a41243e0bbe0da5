"""The leak signatures (``probes/leak/signatures.toml``): loading,
validation, and matching one signature against one response.

Matching is pure and bounded: each regex in the data file is written to be
linear on a 1 MiB body, and the body views are built once per response.
"""

from __future__ import annotations

import enum
import html
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from probes.leak.frames import FrameShape, find_trace, numbered_run, parse_shape
from vocab import DataFileError, parses_data_file


class LeakCheck(enum.StrEnum):
    DEBUG_PAGE = "leak.debug_page"
    STACK_TRACE = "leak.stack_trace"
    SQL_ERROR = "leak.sql_error"
    VERSION_BANNER = "leak.version_banner"


class View(enum.StrEnum):
    HTML = "html"  # the body as served
    TEXT = "text"  # the body as read: tags out, entities and JSON escapes decoded


_KEYS = frozenset({"id", "check", "framework", "html", "text", "headers", "min_matches", "product", "source",
                   "frames", "source_lines"})


@dataclass(frozen=True)
class Signature:
    id: str
    check: LeakCheck
    framework: str
    source: str
    body: tuple[tuple[View, re.Pattern[str]], ...] = ()
    headers: tuple[tuple[str, re.Pattern[str]], ...] = ()
    min_matches: int = 0
    product: str | None = None
    #: a stack trace recognised by the shape of its frames (when the patterns do not match)
    frames: tuple[FrameShape, ...] = ()
    #: also require this many consecutively numbered source lines (a source excerpt)
    source_lines: int = 0

    @property
    def on_body(self) -> bool:
        return bool(self.body) or bool(self.frames)


@dataclass(frozen=True)
class SignatureSet:
    version: str
    signatures: tuple[Signature, ...]
    frames: tuple[FrameShape, ...] = ()


@dataclass(frozen=True)
class Hit:
    """One signature matching one response."""

    signature: Signature
    excerpt: str
    where: str  # "body" for leaks; the header name or "footer" for banners
    product: str | None = None
    version: str | None = None


@parses_data_file("leak signatures")
def parse_signatures(text: str) -> SignatureSet:
    raw = tomllib.loads(text)
    shapes: dict[str, FrameShape] = {}
    for entry in raw.get("frames", []):
        try:
            shape = parse_shape(entry)
        except ValueError as exc:
            raise DataFileError(str(exc)) from None
        if shape.id in shapes:
            raise DataFileError(f"duplicate frame shape id {shape.id!r}")
        shapes[shape.id] = shape
    out: list[Signature] = []
    seen: set[str] = set()
    for entry in raw.get("signatures", []):
        sig = _parse_one(entry, shapes)
        if sig.id in seen:
            raise DataFileError(f"duplicate signature id {sig.id!r}")
        seen.add(sig.id)
        out.append(sig)
    return SignatureSet(version=str(raw.get("version", "")), signatures=tuple(out), frames=tuple(shapes.values()))


def _parse_one(entry: Mapping[str, Any], shapes: Mapping[str, FrameShape]) -> Signature:
    sid = str(entry.get("id") or "")
    if not sid:
        raise DataFileError("signature without an id")
    unknown = set(entry) - _KEYS
    if unknown:
        raise DataFileError(f"{sid}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        check = LeakCheck(str(entry.get("check")))
    except ValueError:
        raise DataFileError(f"{sid}: unknown check {entry.get('check')!r}") from None
    if not str(entry.get("source") or "").strip():
        raise DataFileError(f"{sid}: every signature needs its source")
    body = tuple((view, _compile(sid, p)) for view in View for p in entry.get(view.value, []))
    headers = tuple((str(k).lower(), _compile(sid, v)) for k, v in dict(entry.get("headers", {})).items())
    wanted = entry.get("frames") or []
    names = [wanted] if isinstance(wanted, str) else [str(n) for n in wanted]
    unknown_shapes = [n for n in names if n not in shapes]
    if unknown_shapes:
        raise DataFileError(f"{sid}: unknown frame shape {unknown_shapes[0]!r}")
    frames = tuple(shapes[n] for n in names)
    if frames and check is not LeakCheck.STACK_TRACE:
        raise DataFileError(f"{sid}: frame shapes find stack traces (leak.stack_trace)")
    source_lines = int(entry.get("source_lines", 0))
    if source_lines and (source_lines < 3 or not body):
        raise DataFileError(f"{sid}: source_lines needs 3 or more lines and a pattern naming the error")
    if not body and not headers and not frames:
        raise DataFileError(f"{sid}: no patterns")
    if (body or frames) and headers:
        raise DataFileError(f"{sid}: body and header patterns belong in separate signatures")
    min_matches = int(entry.get("min_matches", len(body)))
    if body and not 1 <= min_matches <= len(body):
        raise DataFileError(f"{sid}: min_matches {min_matches} out of 1..{len(body)}")
    if check is LeakCheck.VERSION_BANNER:
        groups = [p.groupindex for _, p in (*body, *headers)]
        if any("version" not in g for g in groups):
            raise DataFileError(f"{sid}: banner patterns need a (?P<version>) group")
        if not entry.get("product") and any("product" not in g for g in groups):
            raise DataFileError(f"{sid}: banner needs `product` or a (?P<product>) group")
    return Signature(
        id=sid,
        check=check,
        framework=str(entry.get("framework") or ""),
        source=str(entry["source"]),
        body=body,
        headers=headers,
        min_matches=min_matches,
        product=str(entry["product"]) if entry.get("product") else None,
        frames=frames,
        source_lines=source_lines,
    )


def _compile(sid: str, pattern: object) -> re.Pattern[str]:
    try:
        return re.compile(str(pattern), re.MULTILINE)
    except re.error as exc:
        raise DataFileError(f"{sid}: bad regex {pattern!r}: {exc}") from None


@cache
def load_signatures() -> SignatureSet:
    text = resources.files("probes.leak").joinpath("signatures.toml").read_text("utf-8")
    return parse_signatures(text)


# ------------------------------------------------------------------ body views

_BR = re.compile(r"<br\s{0,8}/?>", re.IGNORECASE)
# Scripts and styles are not what a reader sees; debug pages that hide data in scripts
# are matched on the HTML view instead.
_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^<>]{0,1000}>.*?</\1\s{0,4}>", re.IGNORECASE | re.DOTALL)
_COMMENT_MARK = re.compile(r"<!--|-->")
# Block elements end a line for a reader; inline ones (b, code, span, a...) do not.
_BLOCK_TAG = re.compile(
    r"</?(?:p|div|tr|td|th|li|ul|ol|dl|dd|dt|h[1-6]|pre|table|thead|tbody|article|section|header|footer|main|"
    r"nav|aside|title|hr|textarea|address|center|blockquote|fieldset|legend|form|body|html|head|noscript)"
    r"\b[^<>]{0,4096}>",
    re.IGNORECASE,
)
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,4096}>|<![A-Za-z][^<>]{0,200}>")
_JSON_ESCAPE = re.compile(r"""\\(["\\/bfnrt]|u[0-9a-fA-F]{4})""")
_JSON_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def body_views(text: str, content_type: str) -> dict[View, str]:
    ct = content_type.lower()
    if "json" in ct:
        read = _JSON_ESCAPE.sub(_json_char, text)
    elif not ct or "html" in ct or "xml" in ct:
        # Comment markers go, their content stays: debug pages hide plain tracebacks in comments.
        read = _SCRIPT_STYLE.sub("", text)
        read = _BLOCK_TAG.sub("\n", _COMMENT_MARK.sub("\n", _BR.sub("\n", read)))
        read = _TAG.sub("", read)
        read = html.unescape(read)
    else:
        read = text
    return {View.HTML: text, View.TEXT: read}


def _json_char(m: re.Match[str]) -> str:
    code = m.group(1)
    if code.startswith("u"):
        return chr(int(code[1:], 16))
    return _JSON_SIMPLE[code]


# ------------------------------------------------------------------ matching

EXCERPT_LIMIT = 300
_SECRET = re.compile(
    r"""(?i)(?<![a-z0-9])(secret(?:_?key)?|password|passwd|pwd|api[_-]?key|access[_-]?key|app_key|client_secret|"""
    r"""(?:auth|access|api|csrf|session|refresh|bearer|id)[_-]?token|x-debug-token)"""
    r"""(["']?\s{0,4}[:=]\s{0,4}["']?)([^\s"'<>,;&]{3,})"""
)


def excerpt(text: str, start: int, end: int, limit: int = EXCERPT_LIMIT) -> str:
    """At most ``limit`` characters around text[start:end], whitespace collapsed, secrets masked."""
    lead = 60
    window = text[max(0, start - lead): max(end, start + limit)]
    flat = " ".join(window.split())
    flat = _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", flat)
    return flat[:limit]


def match_body(sig: Signature, views: Mapping[View, str]) -> Hit | None:
    """``sig`` against a response body (a signature with body patterns)."""
    if sig.source_lines:
        return _match_source_excerpt(sig, views)
    found: list[tuple[View, re.Match[str]]] = []
    for view, pattern in sig.body:
        m = pattern.search(views[view])
        if m:
            found.append((view, m))
    if not found or len(found) < sig.min_matches:
        return _match_frames(sig, views)
    # Quote what a reader sees (the earliest text match) when a text pattern matched; markup otherwise.
    text_hits = [(v, m) for v, m in found if v is View.TEXT]
    view, m = min(text_hits, key=lambda vm: vm[1].start()) if text_hits else found[0]
    product, version = _banner_parts(sig, m)
    return Hit(sig, excerpt(views[view], m.start(), m.end()), "footer" if product else "body", product, version)


_EXCERPT_NEAR = 3000  # characters around numbered source lines in which the error is named


def _match_source_excerpt(sig: Signature, views: Mapping[View, str]) -> Hit | None:
    """Numbered source lines first (cheap), then the patterns only near them (bounded)."""
    text = views[View.TEXT]
    run = numbered_run(text, sig.source_lines)
    if run is None:
        return None
    lo, hi = max(0, run[0] - _EXCERPT_NEAR), min(len(text), run[1] + _EXCERPT_NEAR)
    in_text = [m for view, p in sig.body if view is View.TEXT and (m := p.search(text, lo, hi))]
    in_html = [m for view, p in sig.body if view is View.HTML and (m := p.search(views[View.HTML]))]
    if not in_text + in_html or len(in_text + in_html) < sig.min_matches:
        return None
    start, end = (in_text[0].start(), in_text[0].end()) if in_text else run
    return Hit(sig, excerpt(text, start, end), "body")


def _match_frames(sig: Signature, views: Mapping[View, str]) -> Hit | None:
    text = views[View.TEXT]
    for shape in sig.frames:
        trace = find_trace(text, shape)
        if trace is not None:
            return Hit(sig, excerpt(text, trace.start, trace.end), "body")
    return None


def match_headers(sig: Signature, headers: Sequence[tuple[str, str]]) -> Iterator[Hit]:
    """``sig`` against response headers; a banner yields one hit per product it names."""
    if sig.check is LeakCheck.VERSION_BANNER:
        for name, pattern in sig.headers:
            for hname, value in headers:
                if hname != name:
                    continue
                for m in pattern.finditer(value):
                    product, version = _banner_parts(sig, m)
                    yield Hit(sig, excerpt(f"{hname}: {value}", 0, 0), hname, product, version)
        return
    lines: list[str] = []
    for name, pattern in sig.headers:
        matched = next((v for k, v in headers if k == name and pattern.search(v)), None)
        if matched is None:
            return
        lines.append(f"{name}: {matched}")
    yield Hit(sig, excerpt("\n".join(lines), 0, 0), "header")


def _banner_parts(sig: Signature, m: re.Match[str]) -> tuple[str | None, str | None]:
    if sig.check is not LeakCheck.VERSION_BANNER:
        return None, None
    groups: dict[str, str | None] = m.groupdict()
    return groups.get("product") or sig.product, groups.get("version")


def product_slug(product: str) -> str:
    return "-".join(product.lower().split())
