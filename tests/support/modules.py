"""What a posture process imported, read from its ``sys.modules`` at exit (never a duration)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs ``python -m agent`` as the console script does and writes, at exit, every module the
# process loaded (sys.modules: import statements and importlib alike; not a None entry, which
# blocks an import) to the file named first.
_PROBE = """
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(k for k, v in sys.modules.items() if v))))
if sys.argv[1:2] == ["-c"]:
    exec(sys.argv[2])
else:
    sys.argv[0] = "posture"
    runpy.run_module("agent", run_name="__main__", alter_sys=True)
"""


def imports_of(argv: Sequence[str], tmp: Path, *, code: str | None = None
               ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``posture ARGV`` (or ``python -c CODE``) in a fresh interpreter: the process and the modules it loaded."""
    out = tmp / f"modules-{len(list(tmp.iterdir()))}.json"
    args = ["-c", code] if code is not None else list(argv)
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(out), *args], capture_output=True, text=True,
                          timeout=180, cwd=REPO, env=os.environ.copy())
    modules: list[str] = json.loads(out.read_text())
    return proc, modules
