"""``posture run`` watches on its own schedule ([watch] every), and a restart neither repeats nor skips a watch."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

from tests.agent.daemon_lab import Agent, Db, wait_for
from tests.agent.test_watch_story import FIRM, server

NAME = f"watch:{FIRM}"


def config(tmp_path: Path, dns: str, every: str) -> Path:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(f'[agent]\nresolver = "{dns}"\n\n[schedule]\ndigest = "off"\n\n'
                   f'[watch]\ndomains = ["{FIRM}"]\nevery = "{every}"\nrate = 5000\nconcurrency = 32\n')
    return cfg


def test_daemon_watches_on_its_schedule_and_a_restart_keeps_it(tmp_path: Path, store_url: str) -> None:
    dns = server()
    db = Db(store_url)
    agent = Agent(tmp_path, config(tmp_path, dns.address, "3s"), store_url)
    try:
        agent.start()
        wait_for("two watches", lambda: len(db.scans(NAME)) >= 2, timeout=30, agents=(agent,))
        assert agent.stop() == 0
        scans = db.scans(NAME)
        assert all(s.status.value == "complete" and s.trigger.value == "scheduled" for s in scans)
        starts = sorted(s.started_at for s in scans)
        assert all((b - a).total_seconds() >= 2.5 for a, b in pairwise(starts)), starts
        assert f"watch of dns://{FIRM}: complete" in agent.log()
        assert "Traceback" not in agent.log()

        # Restarted with a daily watch: the last one was seconds ago, so none now.
        count = len(db.scans(NAME))
        again = Agent(tmp_path, config(tmp_path, dns.address, "1d"), store_url, name="again").start()
        try:
            wait_for("the agent to run", lambda: "running as" in again.log(), timeout=20, agents=(again,))
            time.sleep(3)
            assert len(db.scans(NAME)) == count, "a restart repeated a watch that was not due"
            assert again.stop() == 0
        finally:
            again.cleanup()
    finally:
        agent.cleanup()
        db.close()
        dns.stop()
