"""A command that only reads does not wait for another process's write lock on SQLite.

The README: readers never wait for the writer. A daemon storing a scan (or a ``prune``) holds
SQLite's write lock; ``findings`` and ``history`` meanwhile must answer from what is committed,
at once, and must never call a locked database with years of history a new one.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import main
from state.store import Store
from tests.state.factory import T0, finding, run, scan

HOLD = ("import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n")


def test_readers_do_not_wait_for_another_writer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "p.db"
    with Store.open(f"sqlite:///{db}") as store:
        store.record_scan(scan(T0, [run("tls", finding("tls.cert.untrusted", "www:443"))]))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db), "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for args in (["findings", "--format", "json"], ["history", "www"]):
            started = time.monotonic()
            code = main(["--db", f"sqlite:///{db}", *args])
            out, err = capsys.readouterr()
            assert code == 0, err
            assert time.monotonic() - started < 5, args  # not the 15 s busy timeout, twice
            assert "tls.cert.untrusted" in out
    finally:
        holder.kill()
        holder.wait()
