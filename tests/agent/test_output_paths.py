"""``-o PATH`` of ``posture report``, ``posture export`` and ``posture eol refresh``: what PATH is decides
how it is written (probes/outfile.py).

A regular file is replaced atomically and keeps its permission bits; a symbolic link stays a link and its
target gets the content; a device or FIFO is written through and stays what it was; one of the process's
descriptors (``/proc/self/fd/N``, as ``/dev/stdout`` is) gets the content at its offset. A full disk is a
one-line error, exit 1; a directory or a missing directory exit 2.

Device nodes are made here, in tmp_path, with ``os.mknod`` (1,3 is the null device, 1,7 the full one):
the machine's /dev is never touched.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from state.store import Store
from tests.state.factory import BROKER_CONFIG, T0, finding, run, scan

NOW = "2025-03-20T00:00:00Z"
NULL = (1, 3)
FULL = (1, 7)
EXPORT = {"acme-widget": [{"cycle": "9", "releaseDate": "2024-01-01", "eol": "2030-01-01", "latest": "9.1"}]}


def _report(doc: dict[str, Any]) -> bool:
    return "report" in doc


def _export(doc: dict[str, Any]) -> bool:
    return isinstance(doc.get("findings"), list) and len(doc["findings"]) == 1


def _eol(doc: dict[str, Any]) -> bool:
    return "acme-widget" in doc.get("products", {})


@dataclass(frozen=True)
class Command:
    name: str
    args: Callable[[Path, str], list[str]]  # (work dir, target) -> the command after the global options
    content: Callable[[dict[str, Any]], bool]  # the decoded output is this command's


COMMANDS = [
    Command("report", lambda _d, out: ["report", "--format", "json", "-o", out], _report),
    Command("export", lambda _d, out: ["export", "--format", "defectdojo", "-o", out], _export),
    Command("eol refresh", lambda d, out: ["eol", "refresh", str(d / "export.json"), "-o", out], _eol),
]


@pytest.fixture(params=COMMANDS, ids=[c.name for c in COMMANDS])
def command(request: pytest.FixtureRequest) -> Command:
    cmd: Command = request.param
    return cmd


@dataclass(frozen=True)
class Lab:
    work: Path
    out: Path  # where the outputs go: nothing else in it
    db: str
    cfg: Path


@pytest.fixture
def lab(tmp_path: Path, sqlite_url: str) -> Lab:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(BROKER_CONFIG)
    (tmp_path / "export.json").write_text(json.dumps(EXPORT))
    with Store.open(sqlite_url) as store:
        store.record_scan(scan(T0, [run("tls", finding("tls.cert.weak_key", "www:443", "medium"))]))
    out = tmp_path / "out"
    out.mkdir()
    return Lab(tmp_path, out, sqlite_url, cfg)


def posture(lab: Lab, command: Command, target: str | Path,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--config", str(lab.cfg), "--db", lab.db, "--now", NOW,
                 *command.args(lab.work, str(target))])
    return code, capsys.readouterr().err


def is_output(command: Command, data: bytes) -> bool:
    doc = json.loads(data.decode("utf-8"))
    return isinstance(doc, dict) and command.content(doc)


def device(path: Path, numbers: tuple[int, int]) -> Path:
    """A character device node of our own; the test is skipped where the kernel does not allow one."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(*numbers))
        os.close(os.open(path, os.O_WRONLY))
    except PermissionError as exc:  # no CAP_MKNOD, or a nodev mount
        pytest.skip(f"cannot make or open a device node here: {exc}")
    return path


def is_device(path: Path, numbers: tuple[int, int]) -> bool:
    info = os.lstat(path)
    return stat.S_ISCHR(info.st_mode) and (os.major(info.st_rdev), os.minor(info.st_rdev)) == numbers


def leftovers(*directories: Path) -> list[str]:
    return sorted(p.name for d in directories for p in d.iterdir() if p.name.startswith("."))


def test_a_null_device_stays_a_device_and_the_command_succeeds(lab: Lab, command: Command,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    null = device(lab.out / "null", NULL)
    code, err = posture(lab, command, null, capsys)
    assert code == 0, err
    assert is_device(null, NULL)
    assert leftovers(lab.out) == []


def test_errors_are_one_line_with_the_exit_code_of_their_kind(lab: Lab, command: Command,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    full = device(lab.out / "full", FULL)
    code, err = posture(lab, command, full, capsys)
    assert code == 1 and err.count("\n") == 1 and err.startswith("posture: "), err
    assert "No space left on device" in err and str(full) in err and "wrote" not in err and "internal" not in err
    assert is_device(full, FULL)
    # The path is wrong, not the write: bad input, exit 2, and the directory is left as it was
    # (eol refresh makes missing directories, as for its default place in the state directory).
    wrong = [lab.out] if command.name == "eol refresh" else [lab.out, lab.out / "missing" / "out.json"]
    for path in wrong:
        code, err = posture(lab, command, path, capsys)
        assert code == 2 and err.count("\n") == 1 and "cannot write" in err and "internal" not in err, err
    assert sorted(p.name for p in lab.out.iterdir()) == ["full"]


def test_a_symlink_stays_a_link_and_its_target_gets_the_content(lab: Lab, command: Command,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    real_dir = lab.work / "real"
    real_dir.mkdir()
    real = real_dir / "real.json"
    real.write_text("old\n")
    real.chmod(0o640)
    latest = lab.out / "latest.json"
    latest.symlink_to(Path("..") / "real" / "real.json")  # relative, into another directory
    code, err = posture(lab, command, latest, capsys)
    assert code == 0, err
    assert latest.is_symlink() and os.readlink(latest) == str(Path("..") / "real" / "real.json")
    assert is_output(command, real.read_bytes())
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert leftovers(lab.out, real_dir) == []
    # A link whose target does not exist yet: the target is created, the link kept.
    dangling = lab.out / "dangling.json"
    dangling.symlink_to(real_dir / "new.json")
    code, err = posture(lab, command, dangling, capsys)
    assert code == 0, err
    assert dangling.is_symlink() and is_output(command, (real_dir / "new.json").read_bytes())


def test_a_fifo_read_by_a_thread_gets_the_content(lab: Lab, command: Command,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fifo = lab.out / "fifo"
    os.mkfifo(fifo)
    handle = os.open(fifo, os.O_PATH)  # to unblock the reader if the FIFO is never opened for writing
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as reader:
            got.append(reader.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code, err = posture(lab, command, fifo, capsys)
        reader.join(timeout=10)
    finally:
        if reader.is_alive():
            os.close(os.open(f"/proc/self/fd/{handle}", os.O_WRONLY | os.O_NONBLOCK))
            reader.join(timeout=10)
        os.close(handle)
    assert code == 0, err
    assert got and is_output(command, got[0])
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert leftovers(lab.out) == []


def test_a_regular_file_is_replaced_atomically(lab: Lab, command: Command,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = lab.out / "out.json"
    target.write_text("old\n")
    target.chmod(0o640)
    before = target.stat().st_ino
    with target.open("rb") as old:  # a reader of the old file
        code, err = posture(lab, command, target, capsys)
        assert old.read() == b"old\n"  # it kept reading the whole old file: a new one took the name
    assert code == 0, err
    assert target.stat().st_ino != before and is_output(command, target.read_bytes())
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # a replaced file keeps its permissions
    # A new file: what the umask leaves of 0666, as for any file a user writes (reports are handed on).
    mask = os.umask(0o027)
    try:
        code, err = posture(lab, command, lab.out / "new.json", capsys)
    finally:
        os.umask(mask)
    assert code == 0, err
    assert stat.S_IMODE((lab.out / "new.json").stat().st_mode) == 0o640
    assert leftovers(lab.out) == []


def test_a_descriptor_of_the_process_gets_the_content_at_its_offset(lab: Lab, command: Command,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """What ``-o /dev/stdout`` is once the shell redirected stdout: ``>> file`` appends, a pipe gets it."""
    log = lab.work / "stdout.log"
    log.write_bytes(b"earlier line\n")
    appending = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        code, err = posture(lab, command, f"/proc/self/fd/{appending}", capsys)
    finally:
        os.close(appending)
    assert code == 0, err
    data = log.read_bytes()
    assert data.startswith(b"earlier line\n") and is_output(command, data.removeprefix(b"earlier line\n"))

    read_end, write_end = os.pipe()
    got: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_end, "rb") as reader:
            got.append(reader.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code, err = posture(lab, command, f"/proc/self/fd/{write_end}", capsys)
    finally:
        os.close(write_end)
        reader.join(timeout=10)
    assert code == 0, err
    assert got and is_output(command, got[0])
