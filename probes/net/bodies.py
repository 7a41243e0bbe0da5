"""Reading response bodies within a cap, content-decoding included.

httpx decodes gzip/deflate without an output limit: one 64 KiB read of a
gzip bomb inflates to tens of megabytes before any cap applies. Here the raw
bytes are inflated with ``max_length`` so memory stays near the cap whatever
the compression ratio.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable

from probes.base import ProtocolFailure

#: What the HTTP layer advertises: only encodings it can inflate within a bound.
ACCEPT_ENCODING = "gzip, deflate"


class Inflater:
    """Bounded gzip/deflate decoding of one body, fed raw chunks in order."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._raw_deflate_tried = False
        wbits = zlib.MAX_WBITS | 16 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)
        self._started = False

    def feed(self, data: bytes, room: int) -> bytes:
        """Inflate ``data``; return at most ``room + 1`` bytes (one more says "over the cap")."""
        try:
            out = self._obj.decompress(data, room + 1)
        except zlib.error as exc:
            if self._encoding == "deflate" and not self._started and not self._raw_deflate_tried:
                # "deflate" is often sent as a raw stream without the zlib wrapper.
                self._raw_deflate_tried = True
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.feed(data, room)
            raise ProtocolFailure(f"cannot decode {self._encoding} body: {exc}") from None
        self._started = True
        return out

    def finish(self, room: int) -> bytes:
        try:
            return self._obj.flush(room + 1)
        except zlib.error as exc:
            raise ProtocolFailure(f"cannot decode {self._encoding} body: {exc}") from None


def inflater_for(content_encoding: str | None) -> Inflater | None:
    """The decoder for a Content-Encoding header; None means keep the bytes as sent.

    Stacked or unknown encodings are kept as sent rather than guessed at: we
    never advertise them, so only a misbehaving server sends them.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return Inflater(codings[0])
    return None


async def read_capped(chunks: AsyncIterable[bytes], content_encoding: str | None, cap: int) -> tuple[bytes, bool]:
    """Collect at most ``cap`` decoded bytes from an async iterator of raw chunks.

    Returns (body, truncated). Stops reading as soon as the cap is passed, so
    an endless body costs one read past the cap, not the whole stream.
    """
    inflater = inflater_for(content_encoding)
    parts: list[bytes] = []
    size = 0
    async for raw in chunks:
        data = inflater.feed(raw, cap - size) if inflater is not None else raw
        if size + len(data) > cap:
            parts.append(data[: cap - size])
            return b"".join(parts), True
        parts.append(data)
        size += len(data)
    if inflater is not None:
        tail = inflater.finish(cap - size)
        if size + len(tail) > cap:
            parts.append(tail[: cap - size])
            return b"".join(parts), True
        parts.append(tail)
    return b"".join(parts), False
