from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_generated_sections_are_fresh() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    blocks = text.split("```sh\n")
    assert blocks[1].startswith("bash scripts/setup.sh && .venv/bin/posture demo")
    assert blocks[2].startswith("bash scripts/test.sh")
    ci = (ROOT / ".ci" / "run").read_text("utf-8")
    assert "bash scripts/test.sh" in ci
