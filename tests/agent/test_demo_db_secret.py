"""``posture demo --db URL`` on PostgreSQL never prints the database's password.

The summary's ``Database:`` line shows the URL masked, and the ``try:`` hints (after the run, and
with ``--keep`` while the lab stays up) say ``--db URL`` instead of repeating it. The test role's
password (``posture``) is a word the demo's output holds anyway, so the URL given spells it
percent-encoded, every byte (``%70%6F...``): that text, and any URL with a user or password in
it, must appear nowhere.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pg import fresh_database

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = REPO / ".venv" / "bin" / "posture"
POSTURE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "agent"]

pytestmark = pytest.mark.postgres


@pytest.fixture
def demo_db() -> Iterator[tuple[str, str]]:
    """(URL, its password as written) of a fresh database; the password percent-encoded byte by byte."""
    from sqlalchemy.engine import make_url

    with fresh_database("posture_demo") as url:
        parsed = make_url(url)
        assert parsed.password
        written = "".join(f"%{b:02X}" for b in parsed.password.encode())
        yield (f"postgresql+psycopg://{parsed.username}:{written}@{parsed.host}:{parsed.port}/{parsed.database}",
               written)


def test_the_demo_never_prints_the_database_password(demo_db: tuple[str, str], tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url, password = demo_db
    parsed = make_url(url)
    env = {**os.environ, "TMPDIR": str(tmp_path), "NO_COLOR": "1"}
    proc = subprocess.Popen([*POSTURE, "demo", "--keep", "--db", url], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, start_new_session=True)
    said = ""
    try:
        assert proc.stdout is not None
        while "Press Ctrl-C" not in said:
            line = proc.stdout.readline()
            assert line, f"exited early: {said}{proc.stderr.read() if proc.stderr else ''}"
            said += line
        proc.send_signal(signal.SIGTERM)  # the demo stops its lab on SIGTERM as on Ctrl-C
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    said += out + err
    # 130: the signal came between the hints' flush and the wait for Ctrl-C (keep_running), a stop all the same
    assert proc.returncode in (0, 130) and "Traceback" not in said, said
    assert password not in said, said
    assert not re.search(r"[a-z]+://[^\s/@]*@", said), said  # no URL with a user or password printed
    files = "".join(p.read_text("utf-8", "replace") for p in tmp_path.rglob("*") if p.is_file())
    assert password not in files
    masked = f"postgresql://{parsed.host}:{parsed.port}/{parsed.database}"
    assert f"Database: {masked}\n" in said, said
    assert "--db URL findings" in said and "--db URL scan" in said, said  # after the run, and with --keep
    assert f"(URL: the database URL given to --db, {masked} with its user and password)" in said, said
