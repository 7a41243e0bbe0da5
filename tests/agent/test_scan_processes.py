"""Scans of many assets in several worker processes (agent/scanning/parallel.py): the same
stored results as one process, assets that share an address in one process with the
per-address limit held at the server, and a worker killed mid-scan recorded as failed scans
of its assets while the other worker's scans are kept. Workers come from a fork server that
imported the scan's modules (no thread, no connection in it) and end with the agent, even
with a ``kill -9`` of it. Names resolve through a dnsmasq of the test's own; every server is
on 127.0.0.0/8."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from tests.support.counting import Counted, counting_server
from tests.support.dnsserver import DnsServer, dns_server
from tests.support.interrupt import posture_foreground, posture_ignoring_sigint
from tests.support.modules import imports_of
from tests.support.servers import Reply, Seen

ADDRESSES = [f"127.0.0.{n}" for n in range(21, 25)]
ASSETS = 40  # ten names on each address
PER_HOST = 2
LOGGER = "agent.scanning.parallel"


def _name(i: int) -> str:
    return f"a{i:02d}"


def _address(i: int) -> str:
    return ADDRESSES[i * len(ADDRESSES) // ASSETS]  # neighbours share one: a split by name alone would part them


@pytest.fixture
def lab() -> Iterator[tuple[dict[str, Counted], DnsServer, threading.Event, threading.Event]]:
    """A counting server on each address; a03's page is held until ``release`` is set."""
    held, release = threading.Event(), threading.Event()
    page = Reply(200, "<html><head><title>x</title></head><body>hello</body></html>")

    def hold(seen: Seen) -> Reply:
        if seen.path.startswith("/held"):
            held.set()
            release.wait(60)
        return page

    with ExitStack() as stack:
        servers = {a: stack.enter_context(counting_server({"*": hold}, host=a)) for a in ADDRESSES}
        records = {f"{_name(i)}.test": _address(i) for i in range(ASSETS)}
        dns = stack.enter_context(dns_server(records))
        yield servers, dns, held, release
        release.set()


def _config(tmp_path: Path, servers: dict[str, Counted], dns: DnsServer, processes: str, held: bool = False) -> Path:
    assets = ""
    for i in range(ASSETS):
        path = "held" if held and i == 3 else ""
        assets += (f'[[assets]]\nname = "{_name(i)}"\n'
                   f'url = "http://{_name(i)}.test:{servers[_address(i)].port}/{path}"\n\n')
    cfg = tmp_path / f"posture-{processes}.toml"
    cfg.write_text(f'[agent]\nresolver = "{dns.address}"\nrequest_timeout = 20\nprobe_timeout = 60\n'
                   f"per_host_concurrency = {PER_HOST}\nprocesses = {processes}\n\n{assets}")
    return cfg


def _scan(capsys: pytest.CaptureFixture[str], cfg: Path, db: Path) -> tuple[int, dict[str, Any], str]:
    code = main(["--config", str(cfg), "--db", f"sqlite:///{db}", "scan", "--format", "json",
                 "--probe", "http", "--probe", "leak"])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def _workers(caplog: pytest.LogCaptureFixture) -> dict[int, set[str]]:
    out = {}
    for rec in caplog.records:
        if rec.name == LOGGER and rec.getMessage().startswith("scan worker pid "):
            pid, names = rec.getMessage().removeprefix("scan worker pid ").split(": ", 1)
            out[int(pid)] = set(names.split())
    return out


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    return {s["asset"]: (s["status"], sorted(f["check_id"] for f in s["findings"]),
                         sorted((p, o["status"]) for p, o in s["observations"].items() if p != "dns"))
            for s in doc["scans"]}


def _stored(db: Path) -> dict[str, list[str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT a.name, s.status FROM scans s JOIN assets a ON a.id = s.asset_id").fetchall()
    out: dict[str, list[str]] = {}
    for name, status in rows:
        out.setdefault(name, []).append(status)
    return out


def _why(db: Path, name: str) -> list[tuple[Any, ...]]:
    """An asset's stored scans with their errors and their probe runs' (for a failure's message)."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT s.status, s.error, r.probe, r.status, r.error_kind, r.error, r.skip_reason"
                            " FROM scans s JOIN assets a ON a.id = s.asset_id"
                            " LEFT JOIN probe_runs r ON r.scan_id = s.id WHERE a.name = ?", (name,)).fetchall()


def test_processes_give_the_same_record_and_keep_each_address_in_one_process(
        lab: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    servers, dns, _, _ = lab
    caplog.set_level(logging.INFO, logger=LOGGER)
    code1, one, _ = _scan(capsys, _config(tmp_path, servers, dns, "1"), tmp_path / "one.db")
    assert _workers(caplog) == {}  # processes = 1: this process alone
    code2, two, err = _scan(capsys, _config(tmp_path, servers, dns, "2"), tmp_path / "two.db")
    workers = _workers(caplog)
    assert len(workers) == 2, caplog.text
    assert sorted(n for names in workers.values() for n in names) == [_name(i) for i in range(ASSETS)]
    for address in ADDRESSES:  # every name of one address was scanned by one process
        names = {_name(i) for i in range(ASSETS) if _address(i) == address}
        assert any(names <= w for w in workers.values()), (address, workers)
    assert (code1, code2) == (0, 0), err
    assert [s["asset"] for s in two["scans"]] == [_name(i) for i in range(ASSETS)]
    assert _summary(two) == _summary(one)
    assert {s["status"] for s in two["scans"]} == {"partial"}  # --probe narrowed: ran and succeeded, not full
    assert _stored(tmp_path / "two.db") == _stored(tmp_path / "one.db") == {
        _name(i): ["partial"] for i in range(ASSETS)}
    for server in servers.values():
        server.settled()
        assert server.requests > 0
        assert server.peak <= PER_HOST, server.peak


def test_the_agent_of_a_multi_process_scan_loads_no_scanning_machinery(lab: Any, tmp_path: Path) -> None:
    """The agent resolves, hands out and stores; only its workers scan. So it never imports the
    runner, the probes or their HTTP stack (httpx, anyio), nor alembic for a new SQLite file:
    each would be memory held by one more process all scan long."""
    servers, dns, _, _ = lab
    argv = ["--config", str(_config(tmp_path, servers, dns, "2")), "--db", f"sqlite:///{tmp_path / 'p.db'}",
            "scan", "--format", "json", "--probe", "http", "--probe", "leak"]
    proc, modules = imports_of(argv, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {s["status"] for s in json.loads(proc.stdout)["scans"]} == {"partial"}
    assert _stored(tmp_path / "p.db") == {_name(i): ["partial"] for i in range(ASSETS)}
    assert "agent.scanning.parallel" in modules and "sqlalchemy" in modules  # it did split, and store
    assert not {m for m in modules if m.split(".")[0] in ("httpx", "httpcore", "anyio", "h11", "alembic", "tlslite")}
    assert not {m for m in modules if m.startswith(("agent.scanning.runner", "probes.http", "probes.leak",
                                                    "probes.tls", "probes.net.http", "probes.net.connector"))}


def test_a_killed_worker_leaves_failed_scans_of_its_assets_and_the_rest_is_kept(
        lab: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    servers, dns, held, release = lab
    caplog.set_level(logging.INFO, logger=LOGGER)
    killed: list[int] = []

    def killer() -> None:
        try:
            if held.wait(120):  # a03's request is at the server: its worker is mid-scan
                pid = next(p for p, names in _workers(caplog).items() if "a03" in names)
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        finally:
            release.set()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    code, doc, err = _scan(capsys, _config(tmp_path, servers, dns, "2", held=True), tmp_path / "k.db")
    thread.join(30)
    assert killed, caplog.text
    workers = _workers(caplog)
    victims, others = workers[killed[0]], set().union(*(n for p, n in workers.items() if p != killed[0]))
    scans = {s["asset"]: s for s in doc["scans"]}
    assert sorted(scans) == [_name(i) for i in range(ASSETS)]  # every asset has its record
    assert code == 1 and "posture: scan of http://a03.test" in err
    assert scans["a03"]["status"] == "failed"
    assert "scan worker process was killed (SIGKILL)" in scans["a03"]["reason"]
    for name in others:  # the other worker's scans are all there, as they were
        assert scans[name]["status"] == "partial", scans[name]
    failed = {n for n, s in scans.items() if s["status"] == "failed"}
    assert failed <= victims
    for name in failed:
        assert "killed (SIGKILL) before this asset's scan finished" in scans[name]["reason"]
        assert all(o["status"] == "skipped" for p, o in scans[name]["observations"].items() if p != "dns")
    assert _stored(tmp_path / "k.db") == {n: [s["status"]] for n, s in scans.items()}


@pytest.mark.parametrize("value", ['0', '"many"', "65", "true", "1.5"])
def test_processes_is_validated(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(f"[agent]\nprocesses = {value}\n")
    assert main(["--config", str(cfg), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert 'processes must be "auto" or a whole number from 1 to 64' in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ['"auto"', "1", "64"])
def test_processes_accepts(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(f"[agent]\nprocesses = {value}\n")
    assert main(["--config", str(cfg), "config", "check"]) == 0, capsys.readouterr().err


def test_groups_join_every_asset_that_shares_an_address_through_any_host() -> None:
    from agent.scanning.parallel import address_groups, bins, process_count
    from agent.targets import AssetSpec, parse_target_url
    from probes.base import NameNotFound
    from probes.net.dns import Resolution
    from vocab import AssetKind

    def spec(name: str) -> AssetSpec:
        return AssetSpec(name=name, url=parse_target_url(f"https://{name}.test/"), kind=AssetKind.WEBSITE)

    specs = [spec(n) for n in ("a", "b", "c", "d", "e")]
    resolved: dict[tuple[str, str], Any] = {
        ("a", "a.test"): Resolution("a.test", "x", usable=("192.0.2.1",)),
        ("b", "b.test"): Resolution("b.test", "x", usable=("192.0.2.2",)),
        ("b", "cdn.test"): Resolution("cdn.test", "x", usable=("192.0.2.9",)),  # an origin b lists
        ("c", "c.test"): Resolution("c.test", "x", usable=("192.0.2.9", "192.0.2.3")),
        ("d", "d.test"): NameNotFound("d.test: no such name"),
        ("e", "e.test"): Resolution("e.test", "x", usable=("192.0.2.1",), refused={"10.0.0.1": "private"}),
    }
    groups = sorted(sorted(specs[i].name for i in g) for g in address_groups(specs, resolved))
    assert groups == [["a", "e"], ["b", "c"], ["d"]]
    assert sorted(map(len, bins(address_groups(specs, resolved), 2))) == [2, 3]
    assert bins([[0, 1, 2]], 4) == [[0, 1, 2]]  # one address: one process, however many are allowed
    assert process_count(1, 1000) == 1 and process_count(4, 40) == 2 and process_count(4, 31) == 1
    assert 1 <= process_count("auto", 1000) <= 8


Sent = tuple[Path, int, bytes, bytes, list[int]]


def _sigint_while_held(lab: Any, tmp_path: Path, launch: Callable[..., list[str]],
                       meanwhile: Callable[[subprocess.Popen[bytes]], None], sig: int = signal.SIGINT,
                       processes: str = "2") -> Sent:
    """A two-process scan (or ``processes``) started by ``launch``; once a03's request is held at its
    server, ``sig`` to the command, then ``meanwhile(proc)``; a03 is released at the end. The database,
    the exit code, stdout, stderr and the command's descendants as they were when ``sig`` was sent."""
    servers, dns, held, release = lab
    db = tmp_path / "sigint.db"
    cmd = launch("--config", str(_config(tmp_path, servers, dns, processes, held=True)), "--db", f"sqlite:///{db}",
                 "scan", "--format", "json", "--probe", "http", "--probe", "leak")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    try:
        assert held.wait(120), "a03's request never reached its server"
        tree = _descendants(proc.pid)
        proc.send_signal(sig)  # a03's answer is still held: its scan is in flight
        meanwhile(proc)
        out, err = proc.communicate(timeout=120)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return db, proc.returncode, out, err, tree


def test_ctrl_c_stops_the_workers_and_keeps_what_they_finished(lab: Any, tmp_path: Path) -> None:
    """SIGINT to the command (its workers are in their own process group): each worker records
    its scans in flight as interrupted and hands them back; exit 130; no process left behind."""
    db, code, _out, err, workers = _sigint_while_held(lab, tmp_path, posture_foreground, lambda proc: None)
    assert len(workers) >= 4  # two workers, their fork server, multiprocessing's resource tracker
    assert code == 130, err
    assert b"Traceback" not in err and b"posture: interrupted" in err
    stored = _stored(db)
    assert stored.get("a03") == ["interrupted"], (_why(db, "a03"), stored, err[-3000:])
    assert all(len(v) == 1 and v[0] in ("partial", "interrupted") for v in stored.values()), stored
    deadline = time.monotonic() + 30  # multiprocessing's resource tracker exits once it sees the parent gone
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.05)
    assert not [pid for pid in workers if _alive(pid)]  # every descendant (workers, fork server, tracker) is gone


def test_a_scan_started_with_sigint_ignored_keeps_ignoring_it(lab: Any, tmp_path: Path) -> None:
    """As a scan in one process does (and as a background job of a script should): SIGINT is not
    a stop request then; the workers are not told to stop and every scan is recorded as it ends."""
    release = lab[3]

    def still_running_then_release(proc: subprocess.Popen[bytes]) -> None:
        time.sleep(0.5)
        assert proc.poll() is None
        release.set()  # a03's answer comes: its scan ends as it would have

    db, code, out, err, _ = _sigint_while_held(lab, tmp_path, posture_ignoring_sigint, still_running_then_release)
    assert code == 0, err
    assert {s["status"] for s in json.loads(out)["scans"]} == {"partial"}
    assert _stored(db) == {_name(i): ["partial"] for i in range(ASSETS)}, _why(db, "a03")


@pytest.mark.parametrize(("sig", "launch", "processes"), [
    (signal.SIGTERM, posture_foreground, "2"),
    (signal.SIGTERM, posture_ignoring_sigint, "2"),  # a background job: SIGTERM still stops it
    (signal.SIGTERM, posture_ignoring_sigint, "1"),
    (signal.SIGHUP, posture_foreground, "1"),
])
def test_sigterm_and_sighup_stop_a_scan_as_ctrl_c_does(lab: Any, tmp_path: Path, sig: int,
                                                      launch: Callable[..., list[str]], processes: str) -> None:
    """What timeout, a CI cancel or systemd send: the scans in flight are on the record as
    interrupted, what finished is stored, exit 128 + the signal, one line naming it."""
    db, code, _out, err, _ = _sigint_while_held(lab, tmp_path, launch, lambda proc: None, sig, processes)
    name = signal.Signals(sig).name
    assert code == 128 + sig, err
    assert err.decode().strip().splitlines()[-1] == f"posture: interrupted ({name})" and b"Traceback" not in err
    stored = _stored(db)
    assert stored.get("a03") == ["interrupted"], (_why(db, "a03"), stored, err[-3000:])
    assert all(len(v) == 1 and v[0] in ("partial", "interrupted") for v in stored.values()), stored


def test_a_killed_agent_leaves_no_scan_running(lab: Any, tmp_path: Path) -> None:
    """``kill -9`` of the agent mid-scan: its workers (children of the fork server, not of the agent)
    end too, and so do the fork server and the resource tracker."""
    import subprocess
    import sys
    import time

    servers, dns, held, release = lab
    cfg = _config(tmp_path, servers, dns, "2", held=True)
    # a03's worker cannot end by itself before the server answers (the hold is 60 s): its request may wait longer
    cfg.write_text(cfg.read_text().replace("request_timeout = 20\nprobe_timeout = 60",
                                           "request_timeout = 300\nprobe_timeout = 600"))
    cmd = [sys.executable, "-m", "agent", "--config", str(cfg),
           "--db", f"sqlite:///{tmp_path / 'k9.db'}", "scan", "--format", "json", "--probe", "http"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    try:
        assert held.wait(120), "a03's request never reached its server"
        tree = _descendants(proc.pid)
        server = [p for p in tree if b"multiprocessing.forkserver" in Path(f"/proc/{p}/cmdline").read_bytes()
                  and p in _children(proc.pid)]
        assert len(server) == 1 and len(_children(server[0])) == 2, tree  # the workers are the server's
        proc.kill()
        proc.wait(30)
        deadline = time.monotonic() + 40  # they end at once; the held one could not end by itself before 60 s
        while time.monotonic() < deadline and any(_alive(pid) for pid in tree):
            time.sleep(0.05)
        assert not [pid for pid in tree if _alive(pid)]
        assert not release.is_set()  # a03's request is still held: its worker did not end by finishing
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_fork_server_imports_start_no_thread_and_open_nothing() -> None:
    """Workers are forked from the fork server: it must hold no thread (a lock held there would be
    held forever in the child) and no descriptor beyond those it was given (a connection)."""
    import subprocess
    import sys

    code = ("import os, threading\n"
            "before = sorted(os.listdir('/proc/self/fd'))\n"
            "import agent.scanning.preload\n"
            "import sys\n"
            "print(threading.active_count(), before == sorted(os.listdir('/proc/self/fd')),"
            " 'agent.scanning.runner' in sys.modules, 'probes.tls.probe' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "True", "True", "True"]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        out.extend(int(p) for p in Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return out


def _descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (children of each of its threads, recursively)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                kids = [int(p) for p in Path(f"/proc/{parent}/task/{task}/children").read_text().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_multi_process_scan_stores_on_either_database(
        lab: Any, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlalchemy

    servers, dns, _, _ = lab
    code = main(["--config", str(_config(tmp_path, servers, dns, "2")), "--db", store_url, "scan", "--format",
                 "json", "--probe", "http"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    engine = sqlalchemy.create_engine(store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                "SELECT a.name, s.status, s.id FROM scans s JOIN assets a ON a.id = s.asset_id")).fetchall()
    finally:
        engine.dispose()
    assert sorted((r[0], r[1]) for r in rows) == [(_name(i), "partial") for i in range(ASSETS)]
    assert {s["asset"]: s["id"] for s in doc["scans"]} == {r[0]: r[2] for r in rows}


def test_a_worker_that_cannot_be_started_leaves_failed_scans_with_the_reason(
        lab: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing.context

    def refuse(self: Any) -> None:
        raise OSError("no fork server here")

    servers, dns, _, _ = lab
    monkeypatch.setattr(multiprocessing.context.ForkServerProcess, "start", refuse)
    code, doc, err = _scan(capsys, _config(tmp_path, servers, dns, "2"), tmp_path / "s.db")
    assert code == 1
    assert [s["asset"] for s in doc["scans"]] == [_name(i) for i in range(ASSETS)]
    for scan in doc["scans"]:
        assert scan["status"] == "failed"
        assert "the scan worker process could not be started: OSError: no fork server here" in scan["reason"], scan
    assert "posture: scan of http://a00.test" in err
    assert _stored(tmp_path / "s.db") == {_name(i): ["failed"] for i in range(ASSETS)}
