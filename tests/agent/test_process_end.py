"""The CLI's process end (agent.cli.end_process): output and exit handlers as at a normal exit,
without the interpreter's teardown; a thread still working gets the normal exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", body], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_output_and_exit_handlers_survive_and_the_code_is_kept() -> None:
    done = _run(
        "import atexit, logging, sys\n"
        "from agent.cli import end_process\n"
        "logging.basicConfig(stream=sys.stderr, level=logging.INFO)\n"
        "atexit.register(lambda: print('handler ran', flush=False))\n"
        "sys.stdout.write('x' * 200000)\n"  # more than a pipe buffer, unflushed
        "logging.getLogger('t').info('logged')\n"
        "end_process(3)\n"
        "print('never')\n"
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "x" * 200000 + "handler ran\n"
    assert "logged" in done.stderr


def test_a_working_thread_gets_the_interpreters_own_exit() -> None:
    done = _run(
        "import threading, time\n"
        "from agent.cli import end_process\n"
        "def work():\n"
        "    time.sleep(0.5)\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=work).start()\n"
        "end_process(4)\n"
    )
    assert done.returncode == 4, done.stderr
    assert done.stdout == "thread finished\n"


def test_the_cli_entry_point_ends_through_it() -> None:
    """``python -m agent`` with a usage error and a working command: codes and output unchanged."""
    bad = subprocess.run([sys.executable, "-m", "agent", "findings", "--state", "nonsense"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "nonsense" in bad.stderr
    ok = subprocess.run([sys.executable, "-m", "agent", "catalog", "--format", "json"],
                        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.rstrip().endswith(("}", "]"))
