"""agent/'s layout holds: commands sit on top, the daemon above the scan service, no import cycle.

Checked on the real import graph (grimp, which import-linter uses; imports inside functions
count too), and through ``lint-imports`` with the contracts in pyproject.toml.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def edges() -> dict[str, set[str]]:
    """agent module -> the agent modules it imports (anywhere in its body)."""
    import grimp  # comes with import-linter (the dev extras)

    graph = grimp.build_graph("agent")
    mods = [m for m in graph.modules if m == "agent" or m.startswith("agent.")]
    return {m: {i for i in graph.find_modules_directly_imported_by(m) if i.startswith("agent.")} for m in mods}


def test_no_module_under_agent_but_the_cli_imports_agent_commands(edges: dict[str, set[str]]) -> None:
    assert "agent.scheduling.cycle" in edges and "agent.commands.scan" in edges  # the graph is the real one
    offenders = sorted(
        f"{importer} -> {imported}"
        for importer, imported_set in edges.items()
        for imported in imported_set
        if (imported == "agent.commands" or imported.startswith("agent.commands."))
        and not (importer == "agent.cli" or importer.startswith("agent.commands"))
    )
    assert offenders == []


def test_the_scan_service_tracking_notify_and_report_do_not_import_the_scheduler(
        edges: dict[str, set[str]]) -> None:
    lower = ("agent.scanning", "agent.tracking", "agent.notify", "agent.report")
    offenders = sorted(
        f"{importer} -> {imported}"
        for importer, imported_set in edges.items() if importer.startswith(lower)
        for imported in imported_set if imported.startswith("agent.scheduling")
    )
    assert offenders == []


def _cycles(edges: dict[str, set[str]]) -> Iterator[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in edges:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    yield sorted(component)


def test_the_cycle_finder_finds_a_cycle() -> None:
    made_up = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert list(_cycles(made_up)) == [["a", "b", "c"]]


def test_agent_has_no_import_cycle(edges: dict[str, set[str]]) -> None:
    assert list(_cycles(edges)) == []


def test_lint_imports_keeps_every_contract() -> None:
    tool = Path(sys.executable).with_name("lint-imports")
    if not tool.is_file():
        pytest.fail(f"{tool} is missing: pip install -e '.[dev]' (import-linter)")
    done = subprocess.run([str(tool), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "broken" in done.stdout and " 0 broken" in done.stdout
    assert "Nothing imports agent.commands but the CLI KEPT" in done.stdout.replace("\n", " ")
