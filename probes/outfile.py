"""Writing a file posture was told to write (``-o PATH``): whole or not at all, and never over a device.

The counterpart of :mod:`probes.files`. What ``PATH`` is decides how it is written:

* a regular file, or nothing yet: a temporary file in the same directory, written, fsync'ed
  and renamed over ``PATH`` (a reader never sees half a file, a failed write leaves the old
  one). A new file gets the permissions the umask allows (``0644`` under the usual ``022``:
  reports and exports are handed to auditors and other tools); a file replaced keeps its
  permission bits and, where the user may give them, its owner and group;
* a symbolic link: followed; the file it ends at is replaced as above, the link stays a link
  (a dangling link gets its target created);
* a character device, FIFO or other non-regular file (``/dev/null``, a named pipe): written
  through, opened for writing without creating, truncating or renaming anything;
* one of this process's descriptors (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``):
  written to that descriptor, at its offset and with its flags (``>>`` appends);
* a directory: refused.

Errors are one line, in two kinds: :class:`OutputRefused` (the path cannot take the output:
a directory, a missing directory, no permission; the CLI's exit 2) and :class:`OutputFailed`
(writing failed: the disk is full, the reader went away, an I/O error; exit 1).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import sys
from dataclasses import dataclass

from vocab import InputError, PostureError

# What says the path was wrong rather than the write: the CLI's bad input (exit 2).
_REFUSED = frozenset({
    errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS, errno.ELOOP,
    errno.ENAMETOOLONG, errno.ENXIO, errno.ENODEV, errno.EBADF, errno.EEXIST, errno.ETXTBSY, errno.EBUSY,
    errno.EXDEV,
})
_CHUNK = 1 << 20
_HOPS = 40  # symbolic links followed, as the kernel's MAXSYMLINKS
_FD_DIR = re.compile(r"/proc/(\d+)(?:/task/\d+)?/fd")


class OutputRefused(InputError):
    """The output path cannot take the output (a directory, a missing directory, no permission); one line."""


class OutputFailed(PostureError):
    """Writing the output failed (disk full, broken pipe, I/O error); one line."""


@dataclass(frozen=True)
class _Replace:
    path: str  # the regular file (or the name of one to create), links resolved
    existing: os.stat_result | None


@dataclass(frozen=True)
class _Through:
    path: str  # a device, FIFO or the like: opened for writing as it is


@dataclass(frozen=True)
class _Descriptor:
    fd: int  # one of this process's open descriptors


def write_output(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` as the module docstring says; OutputRefused or OutputFailed, one line."""
    shown = os.fspath(path)
    try:
        where = _locate(shown)
        if isinstance(where, _Replace):
            _replace(where, data)
        elif isinstance(where, _Descriptor):
            for stream in (sys.stdout, sys.stderr):  # what posture printed before goes first
                stream.flush()
            _write_through(os.dup(where.fd), data)
        else:
            _write_through(os.open(where.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC), data)
    except OSError as exc:
        message = f"cannot write {shown}: {exc.strerror or exc}"
        if exc.errno in _REFUSED:
            raise OutputRefused(message) from None
        raise OutputFailed(message) from None


def _locate(path: str) -> _Replace | _Through | _Descriptor:
    """What ``path`` names, its symbolic links followed one by one (each directory resolved)."""
    hop = os.path.join(os.getcwd(), path)
    for _ in range(_HOPS):
        parent = os.path.realpath(os.path.dirname(hop))
        name = os.path.basename(hop)
        full = os.path.join(parent, name)
        fd_dir = _FD_DIR.fullmatch(parent)
        if fd_dir is not None and int(fd_dir.group(1)) == os.getpid() and name.isdigit():
            return _Descriptor(int(name))
        if parent == "/proc" or parent.startswith("/proc/"):
            return _Through(full)  # never renamed over: another process's descriptor, a kernel setting
        try:
            info = os.lstat(full)
        except FileNotFoundError:
            return _Replace(full, None)
        if stat.S_ISLNK(info.st_mode):
            hop = os.path.join(parent, os.readlink(full))
        elif stat.S_ISREG(info.st_mode):
            return _Replace(full, info)
        elif stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        else:
            return _Through(full)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def _replace(target: _Replace, data: bytes) -> None:
    """A temporary file beside the target, written, synced, renamed over it; removed on any failure."""
    directory, name = os.path.split(target.path)
    fd, tmp = _temporary(directory, name, target.existing)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target.path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_directory(directory)


def _temporary(directory: str, name: str, existing: os.stat_result | None) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(directory, f".{name[:200]}.{secrets.token_hex(4)}.tmp")
        try:
            # A new file: the mode the umask leaves of 0666, applied by the kernel (and default ACLs).
            fd = os.open(tmp, flags, 0o600 if existing is not None else 0o666)
        except FileExistsError:
            continue
        if existing is not None:  # keep the replaced file's owner (where allowed) and permission bits
            try:
                if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(PermissionError):
                        os.fchown(fd, existing.st_uid, existing.st_gid)
                os.fchmod(fd, stat.S_IMODE(existing.st_mode) & 0o777)
            except BaseException:
                os.close(fd)
                os.unlink(tmp)
                raise
        return fd, tmp
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), directory)


def _sync_directory(directory: str) -> None:
    """Make the rename durable; a filesystem or directory that cannot be synced this way is left as is."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (PermissionError, FileNotFoundError):
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.EROFS):
            raise
    finally:
        os.close(fd)


def _write_through(fd: int, data: bytes) -> None:
    """Every byte to ``fd`` (a device, a pipe, a descriptor), synced when it is a file; closes ``fd``."""
    try:
        _write_all(fd, data)
        if stat.S_ISREG(os.fstat(fd).st_mode):  # /dev/stdout redirected to a file
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view[:_CHUNK])
        if written <= 0:  # a device that takes nothing: never spin
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        view = view[written:]
