"""Storage that vanished is an error: a daemon whose SQLite file is deleted or replaced stops, exit 1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.daemon_lab import Agent, Db, Lab, asset_toml, config_toml, make_lab, wait_for

WWW = "a.daemon.test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with make_lab(tmp_path_factory.mktemp("daemon-storage-lab")) as made:
        yield made


def _complete_logged(agent: Agent) -> int:
    return sum(line.endswith(f"scan of {WWW}: complete") for line in agent.lines())


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_database_stops_the_daemon(lab: Lab, tmp_path: Path, how: str) -> None:
    path = tmp_path / "p.db"
    url = f"sqlite:///{path}"
    with lab.gates(WWW) as g:
        cfg = tmp_path / "posture.toml"
        cfg.write_text(config_toml(lab.dns, lab.ca, asset_toml(WWW, g[WWW]), every="2s"))
        agent = Agent(tmp_path, cfg, url).start()
        try:
            db = Db(url)
            try:
                wait_for("a first complete scan", lambda: db.complete(WWW), agents=(agent,))
            finally:
                db.close()
            before = _complete_logged(agent)
            if how == "replaced":
                shutil.copy(path, tmp_path / "copy.db")
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            if how == "replaced":
                os.replace(tmp_path / "copy.db", path)
            code = agent.wait(30)
        finally:
            agent.cleanup()
    assert code == 1, agent.log()
    lines = agent.lines()
    gone = [ln for ln in lines if f"the database file {path} was {how}" in ln]
    assert gone, agent.log()
    assert "Traceback" not in agent.log()
    after = lines[lines.index(gone[0]):]
    assert not any(ln.endswith("complete") for ln in after)
    assert _complete_logged(agent) <= before + 1  # at most the scan already past its write
