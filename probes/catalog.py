"""The check catalog, loaded from ``probes/catalog.toml``.

Clauses point to check IDs; :attr:`Check.references` is the inverse, computed
here so the data file never repeats itself.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from probes.base import Severity
from vocab import DataFileError, parses_data_file


@dataclass(frozen=True)
class Clause:
    label: str
    source: str
    zh: str
    en: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Check:
    id: str
    severity: Severity
    title_en: str
    title_zh: str
    remediation_en: str
    remediation_zh: str
    references: tuple[str, ...]

    def title(self, lang: str = "en") -> str:
        return self.title_zh if lang.startswith("zh") else self.title_en

    def remediation(self, lang: str = "en") -> str:
        return self.remediation_zh if lang.startswith("zh") else self.remediation_en


@dataclass(frozen=True)
class Catalog:
    version: str
    checks: dict[str, Check]
    clauses: dict[str, Clause]

    def __getitem__(self, check_id: str) -> Check:
        try:
            return self.checks[check_id]
        except KeyError:
            raise KeyError(f"unknown check id {check_id!r}") from None

    def __contains__(self, check_id: object) -> bool:
        return check_id in self.checks


@parses_data_file("catalog")
def parse_catalog(text: str) -> Catalog:
    raw = tomllib.loads(text)
    clauses: dict[str, Clause] = {}
    refs: dict[str, list[str]] = {}
    for c in raw.get("clauses", []):
        clause = Clause(c["label"], c["source"], c["zh"], c["en"], tuple(c["checks"]))
        clauses[clause.label] = clause
        for check_id in clause.checks:
            refs.setdefault(check_id, []).append(clause.label)
    checks: dict[str, Check] = {}
    for c in raw.get("checks", []):
        if c["id"] in checks:
            raise DataFileError(f"duplicate check id {c['id']!r}")
        checks[c["id"]] = Check(
            id=c["id"],
            severity=Severity(c["severity"]),
            title_en=c["title_en"],
            title_zh=c["title_zh"],
            remediation_en=c["remediation_en"],
            remediation_zh=c["remediation_zh"],
            references=tuple(refs.get(c["id"], ())),
        )
    dangling = sorted(set(refs) - set(checks))
    if dangling:
        raise DataFileError(f"clauses name unknown checks: {', '.join(dangling)}")
    return Catalog(version=str(raw["version"]), checks=checks, clauses=clauses)


@cache
def load_catalog() -> Catalog:
    text = (Path(__file__).parent / "catalog.toml").read_text("utf-8")
    return parse_catalog(text)
