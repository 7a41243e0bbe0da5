"""Regenerate the README's generated sections from the data files.

    .venv/bin/python scripts/readme.py          # rewrite README.md in place
    .venv/bin/python scripts/readme.py --check  # exit 1 if README.md is stale (the tests run this)

A generated section sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _catalog() -> str:
    from agent.commands.catalog import markdown

    return markdown()


def _edge() -> str:
    from probes.edge.readme_table import signatures_markdown

    text = signatures_markdown()
    return re.sub(r"^### .*\n\n", "", text, count=1)


SECTIONS: dict[str, Callable[[], str]] = {"catalog": _catalog, "edge-signatures": _edge}


def render(readme: str) -> str:
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if not pattern.search(readme):
            raise SystemExit(f"README.md has no section {name!r}")
        body = make()
        readme = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(2), readme)
    return readme


def main() -> int:
    path = ROOT / "README.md"
    current = path.read_text("utf-8")
    fresh = render(current)
    if "--check" in sys.argv:
        if fresh != current:
            print("README.md is stale: run .venv/bin/python scripts/readme.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(fresh, "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
