"""agent/ reads stored tls observations through the probe's typed Observations (agent/observed.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.observed import tls_certificates, tls_grade
from schedules.weekly import CertFacts, expiring_certificates

NOW = datetime(2026, 11, 16, 1, 0, tzinfo=UTC)
D = timedelta(days=1)


def _obs(**certs: str) -> dict[str, object]:
    return {"host": "www.b.test", "port": 443, "addresses": {
        a: {"status": "ok", "certificate": {"subject": f"CN={a}", "not_after": na}} for a, na in certs.items()}}


def test_certificates_of_stored_observations_of_any_age() -> None:
    obs = _obs(**{
        "192.0.2.2": (NOW + 31 * D).isoformat(),
        "192.0.2.1": (NOW + 20 * D).isoformat(),
        "192.0.2.3": (NOW - 2 * D).isoformat().replace("+00:00", "Z"),  # older rows wrote Z
        "192.0.2.4": "garbage",
        "192.0.2.6": "2026-12-01T00:00:00",  # naive: UTC
    })
    obs["addresses"]["192.0.2.5"] = {"status": "error"}  # type: ignore[index]
    certs = tls_certificates(obs)
    assert [c.address for c in certs] == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.6"]
    assert certs[2] == CertFacts("192.0.2.3", "CN=192.0.2.3", NOW - 2 * D)
    assert certs[3].not_after == datetime(2026, 12, 1, tzinfo=UTC)
    got = expiring_certificates(certs, NOW, 30)
    assert [(c.address, c.days_left, c.expired) for c in got] == [
        ("192.0.2.3", -2, True), ("192.0.2.6", 14, False), ("192.0.2.1", 20, False)]
    assert tls_certificates({}) == [] and tls_certificates({"skipped_addresses": {"::1": "no route"}}) == []


def test_grade_of_a_tls_run() -> None:
    assert tls_grade({"grade": {"grade": "A+", "caps": []}}) == "A+"
    assert tls_grade({"grade": "unavailable"}) is None and tls_grade({}) is None


def test_the_reports_read_the_grade_where_the_tls_probe_writes_it() -> None:
    from probes.tls.model import GRADE_PATH as WRITTEN
    from state.evidence import GRADE_PATH as READ

    assert READ == WRITTEN


def test_every_probe_declares_the_keys_that_summarise_its_findings() -> None:
    from agent.output import _summary_keys
    from probes.registry import probe_names

    assert set(probe_names()) <= set(_summary_keys())


def test_a_finding_is_summarised_by_its_own_probes_keys() -> None:
    from agent.output import _summary

    assert _summary({"days_left": 3, "reason": "expires soon", "addresses": ["a"]}, "tls") == "reason: expires soon"
    assert _summary({"signature": "django.debug", "reason": "x"}, "leak") == "signature: django.debug"
    assert _summary({"platform": "line", "pages": ["a"]}, "social") == "platform: line"
    assert _summary({"addresses": ["192.0.2.1", "192.0.2.2"]}, "http") == "addresses: 192.0.2.1, 192.0.2.2"
    assert _summary({"summary": "a key no probe writes"}, "tls") == ""
    assert _summary({"reason": "no answer"}, None) == ""
