"""The fleet scheduler's election survives a lost database session, and it stops on time.

* A scheduler whose election connection is terminated (as a PostgreSQL restart does) steps
  down at its next turn and stands for election again: while another session holds the lock
  it claims no cycle; a stand-by whose connection is terminated reconnects instead of exiting.
* With its database not answering, ``posture run`` exits within one deadline after SIGTERM
  (the workers' stop grace and a few seconds, exit 1, one line), and at once on a second signal.
The database is made unresponsive by a TCP forwarder in front of it that the test freezes.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from agent.scheduling.fleet import STOP_GRACE
from agent.scheduling.fleet_scheduler import ELECTION, STOP_EXTRA
from state.job_queue import JobKind
from tests.agent.daemon_lab import Agent, Db, wait_for
from tests.support.pg import pg_url  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres

CONFIG = ('[workers]\nfleet = true\nstall_timeout = 2\nin_process = false\n\n'
          '[schedule]\nscan_every = "2s"\njitter = "0"\ndigest = "off"\n\n'
          '[[assets]]\nname = "a.election.test"\nurl = "http://a.election.test:9"\nkind = "api"\n'
          'active_probes = false\n')


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def holder(conn: Any) -> int | None:
    row = conn.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                       "AND classid::bigint = %s AND objid::bigint = 0 AND objsubid = 2 "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                       (ELECTION,)).fetchone()
    return int(row[0]) if row else None


def cycle_owners(db: Db) -> list[str]:
    return [j.owner or "" for j in db.jobs() if j.kind == JobKind.CYCLE]


def test_a_scheduler_that_loses_its_election_session_steps_down(tmp_path: Path,
                                                                pg_url: str) -> None:  # noqa: F811
    import psycopg

    cfg = tmp_path / "posture.toml"
    cfg.write_text(CONFIG)
    db = Db(pg_url)
    a = Agent(tmp_path, cfg, pg_url, name="a").start()
    agents = [a]
    try:
        with psycopg.connect(libpq(pg_url), autocommit=True) as conn:
            wait_for("a elected", lambda: " elected: " in a.log(), timeout=60, agents=(a,))
            b = Agent(tmp_path, cfg, pg_url, name="b").start()
            agents.append(b)
            wait_for("b standing by", lambda: "standing by" in b.log(), timeout=60, agents=(a, b))
            # The stand-by's session ends: it reconnects and stands by again (it used to exit 1).
            (b_pid,) = [r[0] for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'SELECT pg_try_advisory_lock(%%' AND pid <> %s", (holder(conn),))]
            conn.execute("SELECT pg_terminate_backend(%s)", (b_pid,))
            time.sleep(2)
            wait_for("b reconnected", lambda: b.log().count("standing by") >= 2, timeout=30, agents=(a, b))
            # The elected one's session ends and another session takes the lock at once (as a
            # scheduler elected after a restart would): the old one must step down.
            wait_for("a cycle", lambda: cycle_owners(db), timeout=30, agents=(a, b))
            a_pid = holder(conn)
            assert a_pid is not None
            conn.execute("SELECT pg_terminate_backend(%s)", (a_pid,))
            wait_for("the lock free", lambda: holder(conn) is None, timeout=10)
            assert conn.execute("SELECT pg_try_advisory_lock(%s, 0)", (ELECTION,)).fetchone() == (True,)
            time.sleep(3)  # its next turn (at most a second away) finds the lock gone
            before = len(cycle_owners(db))
            time.sleep(7)  # cycles are due every 2 s: a scheduler still acting elected would claim several
            assert len(cycle_owners(db)) == before, (a.log(), b.log())
            assert "stepping down" in a.log(), a.log()
            assert "standing by" in a.log().split("stepping down")[-1]
            # The lock freed: exactly one of them is elected again, and cycles resume under it.
            conn.execute("SELECT pg_advisory_unlock(%s, 0)", (ELECTION,))
            wait_for("a new election", lambda: a.log().count(" elected: ") + b.log().count(" elected: ") == 2,
                     timeout=30, agents=(a, b))
            wait_for("cycles again", lambda: len(cycle_owners(db)) >= before + 2, timeout=30, agents=(a, b))
            owners = set(cycle_owners(db)[before:])
            time.sleep(3)
            owners |= set(cycle_owners(db)[before:])
            assert len(owners) == 1, owners
            assert [a.stop(30), b.stop(30)] == [0, 0]
    finally:
        for ag in agents:
            ag.cleanup()
        db.close()
    assert "Traceback" not in a.log() + b.log()


class Freezer:
    """A TCP forwarder to PostgreSQL; ``freeze()`` stops passing bytes (connections stay open)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.socks: list[socket.socket] = []

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                dst.sendall(data)
        except OSError:
            pass

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.socks.append(conn)
            try:
                up = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                conn.close()
                continue
            up.settimeout(None)
            self.socks.append(up)
            for x, y in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(x, y), daemon=True).start()

    def close(self) -> None:
        self.frozen.clear()
        with suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for s in self.socks:
            with suppress(OSError):
                s.close()


@contextmanager
def freezer(url: str) -> Iterator[tuple[Freezer, str]]:
    u = make_url(url)
    f = Freezer((u.host or "127.0.0.1", u.port or 5432))
    threading.Thread(target=f.serve, daemon=True).start()
    try:
        yield f, u.set(host="127.0.0.1", port=f.port).render_as_string(hide_password=False)
    finally:
        f.close()


def test_a_second_signal_stops_a_scheduler_stuck_on_its_database(tmp_path: Path,
                                                                  pg_url: str) -> None:  # noqa: F811
    cfg = tmp_path / "posture.toml"
    cfg.write_text(CONFIG)
    Db(pg_url).close()  # migrated
    with freezer(pg_url) as (f, url):
        agent = Agent(tmp_path, cfg, url, name="stuck").start()
        try:
            wait_for("elected", lambda: " elected: " in agent.log(), timeout=60, agents=(agent,))
            f.frozen.set()  # the database stops answering
            time.sleep(2)
            agent.send(signal.SIGTERM)
            time.sleep(0.5)
            t0 = time.monotonic()
            agent.send(signal.SIGINT)
            code = agent.wait(20)
            took = time.monotonic() - t0
        finally:
            agent.cleanup()
    assert code == 1 and took < 3, (code, took, agent.log())
    assert agent.lines()[-1] == "posture: a second stop signal: exiting now", agent.log()


def test_a_scheduler_whose_database_does_not_answer_stops_within_its_deadline(tmp_path: Path,
                                                                             pg_url: str) -> None:  # noqa: F811
    cfg = tmp_path / "posture.toml"
    cfg.write_text(CONFIG)
    Db(pg_url).close()  # migrated
    with freezer(pg_url) as (f, url):
        agent = Agent(tmp_path, cfg, url, name="frozen").start()
        try:
            wait_for("elected", lambda: " elected: " in agent.log(), timeout=60, agents=(agent,))
            f.frozen.set()  # the database stops answering
            time.sleep(2)
            t0 = time.monotonic()
            agent.send(signal.SIGTERM)
            code = agent.wait(STOP_GRACE + STOP_EXTRA + 15)
            took = time.monotonic() - t0
        finally:
            agent.cleanup()
    assert code == 1 and took < STOP_GRACE + STOP_EXTRA + 3, (code, took, agent.log())
    limit = STOP_GRACE + STOP_EXTRA
    assert agent.lines()[-1] == f"posture: still stopping after {limit:g}s (the database unreachable?); exiting now"
