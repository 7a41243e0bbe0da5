"""``posture export``: DefectDojo Generic Findings Import and OCSF Detection Finding, on both databases.

The formats' facts are test data (tests/agent/data/export_formats.json, each with its source), not
read back from the exporter, so a wrong field name or value fails here.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from probes.catalog import load_catalog
from state.store import Store
from tests.state.factory import BROKER_CONFIG, T0, TRADE, finding, run, scan

DAY = timedelta(days=1)
FORMATS = json.loads((Path(__file__).parent / "data" / "export_formats.json").read_text())
DD = FORMATS["defectdojo_generic"]
OCSF = FORMATS["ocsf_detection_finding"]
CONFIG = BROKER_CONFIG


@pytest.fixture
def env(tmp_path: Path, store_url: str) -> dict[str, Any]:
    cfg = tmp_path / "posture.toml"
    cfg.write_text(CONFIG)
    with Store.open(store_url) as store:
        a = store.record_scan(scan(T0, [run("tls", finding("tls.cert.untrusted", "www:443", issuer="Evil CA"),
                                            finding("tls.cert.expiring_soon", "www:443", "medium", days_left=9),
                                            finding("tls.cert.weak_key", "www:443", "medium"),
                                            finding("tls.cert.weak_signature", "www:443", "low"))]))
        store.record_scan(scan(T0, [run("tls", finding("tls.cert.weak_key", "order:9443", "critical"))], asset=TRADE))
        # Ten days on: the expiring certificate was renewed (fixed); the rest still there.
        store.record_scan(scan(T0 + 10 * DAY, [run("tls", finding("tls.cert.untrusted", "www:443", issuer="Evil CA"),
                                                   finding("tls.cert.weak_key", "www:443", "medium"),
                                                   finding("tls.cert.weak_signature", "www:443", "low"))]))
        ids = {k: a.finding_ids[("tls.cert." + k, "www:443")] for k in ("untrusted", "expiring_soon", "weak_key",
                                                                      "weak_signature")}
        store.accept(ids["weak_key"], "compensating control", "ciso", T0 + 200 * DAY, T0 + 11 * DAY)
        store.mark_false_positive(ids["weak_signature"], "internal CA", "ops", T0 + 11 * DAY)
    return {"cfg": cfg, "db": store_url, "dir": tmp_path, "ids": ids}


def export(env: dict[str, Any], capsys: pytest.CaptureFixture[str], fmt: str, *args: str,
           at: datetime = T0 + 12 * DAY, name: str = "out") -> tuple[int, str, Path]:
    out = env["dir"] / name
    try:
        code = main(["--config", str(env["cfg"]), "--db", env["db"], "--now", at.isoformat(),
                     "export", "--format", fmt, "-o", str(out), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    return code, err, out


def check_defectdojo(doc: dict[str, Any]) -> None:
    """What DefectDojo's generic JSON parser would accept, and the types its model fields take."""
    assert set(doc) >= {"findings", "version", "name"}
    allowed = set(DD["required"]) | set(DD["allowed"]) | set(DD["popped_before_check"])
    for f in doc["findings"]:
        missing = set(DD["required"]) - set(f)
        assert not missing, missing
        assert not set(f) - allowed, set(f) - allowed
        assert f["severity"] in DD["severities"]
        assert all(isinstance(f[k], bool) for k in DD["booleans"] if k in f)
        date.fromisoformat(f["date"])
        if "mitigated" in f:
            datetime.fromisoformat(f["mitigated"])
        assert isinstance(f["description"], str) and f["description"].strip()
        assert isinstance(f.get("tags", []), list) and all(isinstance(t, str) for t in f.get("tags", []))
        for e in f.get("endpoints", []):
            assert isinstance(e, str) and "://" in e and "?" not in e and "@" not in e
        # DefectDojo never holds a finding both active and closed.
        assert not (f["active"] and (f.get("is_mitigated") or f.get("false_p") or f.get("risk_accepted")))


def test_defectdojo_export_validates_and_keeps_unique_ids(env: dict[str, Any],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = export(env, capsys, "defectdojo")
    assert code == 0, err
    doc = json.loads(out.read_text())
    check_defectdojo(doc)
    assert doc["posture_export"]["version"] == "1" and doc["posture_export"]["format"] == "defectdojo-generic"
    by_check = {(f["vuln_id_from_tool"], f["param"]): f for f in doc["findings"]}
    assert len(by_check) == 5
    untrusted = by_check[("tls.cert.untrusted", "www:443")]
    assert untrusted["severity"] == "High" and untrusted["active"] is True
    assert "Evil CA" in untrusted["description"]  # the evidence
    assert "NSG-13.1" in untrusted["references"]  # the clause
    assert untrusted["mitigation"] == load_catalog()["tls.cert.untrusted"].remediation_en
    assert untrusted["endpoints"] == ["https://www.broker.test/"]
    assert untrusted["date"] == T0.date().isoformat()
    assert "planned_remediation_date" in untrusted
    renewed = by_check[("tls.cert.expiring_soon", "www:443")]
    assert renewed["is_mitigated"] is True and renewed["active"] is False and "mitigated" in renewed
    accepted = by_check[("tls.cert.weak_key", "www:443")]
    assert accepted["risk_accepted"] is True and accepted["active"] is False
    fp = by_check[("tls.cert.weak_signature", "www:443")]
    assert fp["false_p"] is True and fp["active"] is False
    assert by_check[("tls.cert.weak_key", "order:9443")]["severity"] == "Critical"
    assert by_check[("tls.cert.weak_key", "order:9443")]["endpoints"] == ["tls://order.broker.test:9443"]
    uids = [f["unique_id_from_tool"] for f in doc["findings"]]
    assert len(set(uids)) == len(uids)

    # A second export of the same history, later: the same unique ids, finding for finding.
    code, err, again = export(env, capsys, "defectdojo", at=T0 + 40 * DAY, name="again")
    assert code == 0, err
    second = {(f["vuln_id_from_tool"], f["param"]): f["unique_id_from_tool"]
              for f in json.loads(again.read_text())["findings"]}
    assert second == {k: f["unique_id_from_tool"] for k, f in by_check.items()}


def test_ocsf_export_has_the_required_attributes(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = export(env, capsys, "ocsf")
    assert code == 0, err
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 5
    for e in events:
        missing = set(OCSF["required"]) - set(e)
        assert not missing, missing
        assert e["class_uid"] == OCSF["class_uid"] and e["category_uid"] == OCSF["category_uid"]
        assert e["type_uid"] == e["class_uid"] * 100 + e["activity_id"]
        assert str(e["activity_id"]) in OCSF["activity_id"]
        assert e["severity"] == OCSF["severity_id"][str(e["severity_id"])]
        assert e["status"] == OCSF["status_id"][str(e["status_id"])]
        assert not set(OCSF["metadata_required"]) - set(e["metadata"])
        assert e["metadata"]["product"]["name"] == "posture" and e["metadata"]["log_version"] == "1"
        assert not set(OCSF["finding_info_required"]) - set(e["finding_info"])
        assert not set(OCSF["finding_info_recommended"]) - set(e["finding_info"])
        assert not set(OCSF["compliance_required"]) - set(e["compliance"])
        for field in OCSF["timestamp_fields"]:  # milliseconds since the epoch
            assert isinstance(e[field], int) and 1e12 < e[field] < 5e12
    by_type = {(e["finding_info"]["types"][0], e["resources"][0]["name"]): e for e in events}
    untrusted = by_type[("tls.cert.untrusted", "www")]
    assert untrusted["compliance"]["requirements"] == ["NSG-13.1"] and untrusted["compliance"]["status"] == "Fail"
    assert untrusted["status"] == "New" and untrusted["activity_id"] == 1
    assert by_type[("tls.cert.expiring_soon", "www")]["status"] == "Resolved"
    assert by_type[("tls.cert.expiring_soon", "www")]["activity_id"] == 3
    assert by_type[("tls.cert.weak_signature", "www")]["status"] == "Suppressed"
    code, err, dd = export(env, capsys, "defectdojo", name="dd")
    dd_ids = {f["unique_id_from_tool"] for f in json.loads(dd.read_text())["findings"]}
    assert {e["finding_info"]["uid"] for e in events} == dd_ids  # one identity in both formats


def test_asset_and_since_select(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = export(env, capsys, "ocsf", "--asset", "trade")
    assert code == 0, err
    assert [json.loads(x)["resources"][0]["name"] for x in out.read_text().splitlines()] == ["trade"]
    code, err, out = export(env, capsys, "ocsf", "--since", (T0 + 5 * DAY).date().isoformat())
    assert code == 0, err
    names = {(json.loads(x)["finding_info"]["types"][0], json.loads(x)["resources"][0]["name"])
             for x in out.read_text().splitlines()}
    # The trading asset's finding was last seen at T0; the renewed one fixed at T0+10d stays.
    assert ("tls.cert.weak_key", "trade") not in names and ("tls.cert.expiring_soon", "www") in names


@pytest.mark.parametrize("args", [("--since", "yesterday-ish"), ("--asset", "nope")])
def test_bad_input_is_one_line_exit_2(env: dict[str, Any], capsys: pytest.CaptureFixture[str],
                                      args: tuple[str, str]) -> None:
    code, err, out = export(env, capsys, "defectdojo", *args)
    assert code == 2 and err.startswith("posture: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_unwritable_output_is_a_clear_error(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, err, _ = export(env, capsys, "defectdojo", name="missing-dir/out.json")
    assert code == 2 and "cannot write" in err and err.count("\n") == 1


def test_stdout_and_a_check_the_catalog_no_longer_has(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """A finding stored by an older posture under a retired check id still exports, under its id."""
    with Store.open(env["db"]) as store:
        store.record_scan(scan(T0 + 11 * DAY, [run("tls", finding("tls.retired.check", "www:443", "low"))]))
    code = main(["--config", str(env["cfg"]), "--db", env["db"], "--now", (T0 + 12 * DAY).isoformat(),
                 "export", "--format", "defectdojo", "--since", (T0 + 11 * DAY).date().isoformat(), "-o", "-"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    check_defectdojo(doc)
    retired = [f for f in doc["findings"] if f["vuln_id_from_tool"] == "tls.retired.check"]
    assert len(retired) == 1 and retired[0]["title"].startswith("tls.retired.check") and retired[0]["mitigation"]
