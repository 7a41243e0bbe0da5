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
        "phishing.lookalike", "email.spf.missing", "email.dmarc.missing", "email.dmarc.weak",  # issue 18
    ],
    "low": ["tls.cipher.no_forward_secrecy", "http.hsts.missing", "http.hsts.short_max_age", "leak.version_banner",
            "email.spf.weak"],
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
    shipped = Path(__file__).parent / "data" / "regulation_labels.txt"
    labels = {line.strip() for line in shipped.read_text("utf-8").splitlines()
              if line.strip() and not line.startswith("#")}
    catalog = load_catalog()
    assert catalog.clauses
    for label, clause in catalog.clauses.items():
        assert re.search(r"[\u4e00-\u9fff]", clause.zh), label
        assert label in labels, f"{label} is not a label of the regulation map"


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


# --- Declared check IDs against the catalog, both ways --------------------------------------

def _declared_by() -> dict[str, list[str]]:
    """check ID -> every declarer (a probe's registry name, or "agent")."""
    from agent.checks import AGENT_CHECKS
    from probes.registry import declared_checks, probe_names

    owners: dict[str, list[str]] = {}
    for name in probe_names():
        for check_id in declared_checks(name):
            owners.setdefault(check_id, []).append(name)
    for check_id in AGENT_CHECKS:
        owners.setdefault(check_id, []).append("agent")
    from probes.watch.judge import CHECKS as WATCH_CHECKS  # the watch runs apart from the registry

    for check_id in WATCH_CHECKS:
        owners.setdefault(check_id, []).append("watch")
    return owners


def test_every_declared_check_is_in_the_catalog() -> None:
    catalog = load_catalog()
    missing = {c: who for c, who in _declared_by().items() if c not in catalog.checks}
    assert not missing, f"declared but not in catalog.toml: {missing}"


def test_every_catalog_check_is_declared_by_exactly_one_owner() -> None:
    """One probe or the agent owns each ID. The only shared IDs are those of the shared EOL
    judge (probes.eol), which each probe that reports software versions declares."""
    from probes.eol.check import CHECK_ID as EOL_CHECK

    owners = _declared_by()
    catalog = load_catalog()
    undeclared = sorted(set(catalog.checks) - set(owners))
    assert not undeclared, f"in catalog.toml but raised by nobody: {undeclared}"
    shared = {c: who for c, who in owners.items() if len(who) > 1}
    assert set(shared) == {EOL_CHECK}, shared
    assert "agent" not in shared[EOL_CHECK]
    assert sorted(shared[EOL_CHECK]) == ["http", "ports"]


def test_registry_declares_checks_per_probe() -> None:
    from probes.registry import declared_checks, probe_names

    for name in probe_names():
        checks = declared_checks(name)
        assert checks, name
        assert all(type(c) is str for c in checks), name  # plain strings, as stored
    assert "tls.protocol.legacy" in declared_checks("tls")
    assert "tls.cert.expired" in declared_checks("tls")
    assert declared_checks("social") == {"social.link.no_warning"}
    with pytest.raises(KeyError, match="unknown probe"):
        declared_checks("nope")


def test_signature_data_names_only_checks_its_probe_declares() -> None:
    import tomllib
    from importlib import resources

    from probes.registry import declared_checks

    raw = tomllib.loads(resources.files("probes.leak").joinpath("signatures.toml").read_text("utf-8"))
    named = {entry["check"] for entry in raw.get("signatures", []) if "check" in entry}
    assert named, "signatures.toml names no check: the test would prove nothing"
    assert named <= declared_checks("leak"), named - declared_checks("leak")


def test_findings_a_probe_raises_use_declared_ids() -> None:
    """The judges build findings from the declared constants, not fresh literals."""
    from probes.tls.suites import SuiteCheck

    assert {c.value for c in SuiteCheck} == {"tls.protocol.legacy", "tls.cipher.weak",
                                            "tls.cipher.no_forward_secrecy"}
