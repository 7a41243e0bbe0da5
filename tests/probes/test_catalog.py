from __future__ import annotations

import re
from pathlib import Path

import pytest

from probes.base import Severity
from probes.catalog import load_catalog, parse_catalog
from vocab import DataFileError

# The default severities the spine issue fixes; users' dashboards rely on them.
EXPECTED = {
    "critical": ["tls.cert.expired"],
    "high": [
        "tls.cert.not_yet_valid", "tls.cert.hostname_mismatch", "tls.cert.untrusted", "tls.cert.weak_key",
        "tls.cipher.weak", "http.no_https", "edge.waf.absent", "edge.cdn.absent", "leak.debug_page",
        "leak.stack_trace", "leak.sql_error", "software.eol", "cadence.scan_overdue",
        "remediation.deadline_missed", "dns.unexpected_address", "asset.unreachable",
    ],
    "medium": [
        "tls.cert.expiring_soon", "tls.cert.weak_signature", "tls.protocol.legacy", "social.link.no_warning",
        "ports.unexpected_open",
    ],
    "low": ["tls.cipher.no_forward_secrecy", "http.hsts.missing", "http.hsts.short_max_age", "leak.version_banner"],
}


def test_every_mission_check_with_its_default_severity() -> None:
    catalog = load_catalog()
    for severity, ids in EXPECTED.items():
        for check_id in ids:
            assert catalog[check_id].severity is Severity(severity), check_id
    assert set(catalog.checks) == {c for ids in EXPECTED.values() for c in ids}


def test_entries_are_complete_and_bilingual() -> None:
    han = re.compile(r"[\u4e00-\u9fff]")
    for check in load_catalog().checks.values():
        assert re.fullmatch(r"[a-z]+(\.[a-z_]+)+", check.id)
        assert check.title_en and not han.search(check.title_en)
        assert han.search(check.title_zh), check.id
        assert check.remediation_en and han.search(check.remediation_zh)
        assert check.references, f"{check.id} has no regulation clause"


def test_clause_labels_come_from_the_regulation_map() -> None:
    regulation = Path(__file__).parents[3] / "shared" / "regulation.md"
    text = regulation.read_text("utf-8") if regulation.exists() else ""
    catalog = load_catalog()
    for label, clause in catalog.clauses.items():
        assert re.search(r"[\u4e00-\u9fff]", clause.zh)
        if text:
            assert label in text, label


def test_catalog_rejects_dangling_and_duplicate_ids() -> None:
    clause = '[[clauses]]\nlabel="X"\nsource="s"\nzh="中"\nen="e"\nchecks=["a.b"]\n'
    check = ('[[checks]]\nid="a.b"\nseverity="low"\ntitle_en="t"\ntitle_zh="中"\n'
             'remediation_en="r"\nremediation_zh="中"\n')
    assert parse_catalog('version="1"\n' + clause + check).checks["a.b"].references == ("X",)
    with pytest.raises(DataFileError, match="unknown checks"):
        parse_catalog('version="1"\n' + clause)
    with pytest.raises(DataFileError, match="duplicate"):
        parse_catalog('version="1"\n' + check + check)


def test_unknown_check_id_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown check id"):
        load_catalog()["tls.nope"]
