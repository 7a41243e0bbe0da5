"""Reading a file posture was pointed at: a regular file, and never more than a cap.

``/dev/zero``, a FIFO or a 20 GB log named as evidence would otherwise be read until
the kernel kills the process. Every file posture reads by a path from a user (config,
holiday list, evidence, end-of-life data, CA bundles) goes through :func:`read_capped`;
the caller turns :class:`FileRefused` into its own one-line error (exit 2 for the CLI).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vocab import InputError

KIB = 1 << 10
MIB = 1 << 20
CONFIG_MAX = 4 * MIB  # a config, a holiday list
DATA_MAX = 64 * MIB  # end-of-life data and exports, CA bundles


class FileRefused(InputError):
    """The path is missing, unreadable, not a regular file, or larger than the cap; one line."""


def _size(n: int) -> str:
    return f"{n // MIB} MiB" if n >= MIB else f"{n // KIB} KiB"


def read_capped(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file at ``path``; FileRefused past ``limit`` bytes or for anything else."""
    shown = str(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
        fd = os.open(Path(path), os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileRefused(f"{shown}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, pipe or socket"
            raise FileRefused(f"{shown}: not a regular file ({kind})")
        if info.st_size > limit:
            raise FileRefused(f"{shown}: larger than {_size(limit)}")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while True:  # the file may grow while read: never past the cap
            chunk = os.read(fd, min(MIB, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileRefused(f"{shown}: larger than {_size(limit)}")
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(f"{shown}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text_capped(path: str | os.PathLike[str], limit: int) -> str:
    """:func:`read_capped`, decoded as UTF-8 (a BOM is dropped)."""
    data = read_capped(path, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"{path}: not UTF-8 text (byte {exc.start})") from None
