"""systemd/prometheus-posture.yml and posture-alerts.yml: promtool accepts them, and the two alert
rules fire (and stay quiet) on the series posture exports, per ``promtool test rules``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "systemd"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus) missing")

RULE_TESTS = """
rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'posture_cadence_state{{job="posture",instance="i",asset="www",state="warning"}}'
        values: '0x30 1x120'
      - series: 'posture_cadence_state{{job="posture",instance="i",asset="trade",state="warning"}}'
        values: '0x150'
      - series: 'posture_cadence_no_room{{job="posture",instance="i",asset="trade"}}'
        values: '0x150'
      - series: 'up{{job="posture",instance="i"}}'
        values: '1x60 0x60'
      - series: 'posture_storage_read_ok{{job="posture",instance="i"}}'
        values: '1x120'
      - series: 'posture_asset_last_scan_timestamp_seconds{{job="posture",instance="i",asset="www"}}'
        values: '0x120'
    alert_rule_test:
      - eval_time: 20m
        alertname: PostureCadenceAtRisk
        exp_alerts: []
      - eval_time: 100m
        alertname: PostureCadenceAtRisk
        exp_alerts:
          - exp_labels: {{job: posture, instance: i, asset: www, severity: warning}}
            exp_annotations:
              summary: "posture: cadence at risk for www"
              description: "{cadence}"
      - eval_time: 50m
        alertname: PostureNotScanning
        exp_alerts: []
      - eval_time: 100m
        alertname: PostureNotScanning
        exp_alerts:
          - exp_labels: {{job: posture, instance: i, severity: critical}}
            exp_annotations:
              summary: "posture is not scanning (i)"
              description: "{scanning}"
"""
CADENCE = ("The asset's last complete scan is due within [schedule] cadence_warn_days or overdue, or quiet windows"
           " leave no room for one. See `posture findings --overdue` and the cadence section of `posture report`.")
SCANNING = ("posture run is unreachable, cannot read its database, or has started no full scan for two weeks."
            " Check `systemctl status posture` and `journalctl -u posture`.")


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_scrape_config_and_rules_check() -> None:
    r = promtool("check", "config", "prometheus-posture.yml", cwd=SYSTEMD)
    assert r.returncode == 0, r.stdout + r.stderr
    r = promtool("check", "rules", "posture-alerts.yml", cwd=SYSTEMD)
    assert r.returncode == 0 and "2 rules found" in r.stdout, r.stdout + r.stderr


def test_alert_rules_fire_on_posture_series(tmp_path: Path) -> None:
    (tmp_path / "tests.yml").write_text(RULE_TESTS.format(rules=SYSTEMD / "posture-alerts.yml", cadence=CADENCE,
                                                                   scanning=SCANNING))
    r = promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
