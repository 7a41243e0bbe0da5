"""``posture catalog``: the check catalog, as a table, JSON or the README's Markdown."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("catalog", help="print the check catalog")
    p.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    p.add_argument("--lang", choices=("en", "zh-TW"), default="en")
    p.set_defaults(func=show)


def markdown(lang: str = "en") -> str:
    from probes.catalog import load_catalog

    catalog = load_catalog()
    lines = [
        "| check | severity | title | 標題 | clauses |",
        "|---|---|---|---|---|",
    ]
    for c in sorted(catalog.checks.values(), key=lambda c: (-c.severity.rank, c.id)):
        refs = ", ".join(f"{r} {catalog.clauses[r].source}" for r in c.references)
        lines.append(f"| `{c.id}` | {c.severity.value} | {c.title_en} | {c.title_zh} | {refs} |")
    return "\n".join(lines) + "\n"


def show(args: argparse.Namespace) -> int:
    from agent.output import dump_json
    from probes.catalog import load_catalog

    catalog = load_catalog()
    if args.format == "markdown":
        print(markdown(args.lang), end="")
        return 0
    if args.format == "json":
        dump_json(
            {
                "version": catalog.version,
                "checks": [
                    {
                        "id": c.id,
                        "severity": c.severity.value,
                        "title": c.title_en,
                        "title_zh": c.title_zh,
                        "remediation": c.remediation_en,
                        "remediation_zh": c.remediation_zh,
                        "references": list(c.references),
                    }
                    for c in catalog.checks.values()
                ],
                "clauses": [
                    {"label": k.label, "source": k.source, "zh": k.zh, "en": k.en, "checks": list(k.checks)}
                    for k in catalog.clauses.values()
                ],
            }
        )
        return 0
    for c in catalog.checks.values():
        print(f"{c.id:<30} {c.severity.value:<8} {c.title(args.lang)}  [{', '.join(c.references)}]")
    print(f"catalog {catalog.version}: {len(catalog.checks)} checks")
    return 0
