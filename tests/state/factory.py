"""Builders for the records the agent hands to storage."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from state.records import (
    AssetRecord,
    FindingRecord,
    ProbeRunRecord,
    RunStatus,
    ScanRecord,
    ScanStatus,
    Trigger,
)
from vocab import AssetKind, Severity

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 Asia/Taipei
DAY = timedelta(days=1)
WWW = AssetRecord(name="www", url="https://www.broker.test/", kind=AssetKind.WEBSITE, configured=True)
TRADE = AssetRecord(name="trade", url="tls://order.broker.test:9443", kind=AssetKind.TRADING, configured=True)

# WWW and TRADE as a config lists them, and a config of just them (no DNS reachable, no digest).
BROKER_ASSETS = """
[[assets]]
name = "www"
url = "https://www.broker.test/"

[[assets]]
name = "trade"
url = "tls://order.broker.test:9443"
kind = "trading"
"""
BROKER_CONFIG = """
[agent]
resolver = "127.0.0.1:9"

[schedule]
digest = "off"
""" + BROKER_ASSETS


def finding(check_id: str, key: str, severity: str = "high", **evidence: Any) -> FindingRecord:
    return FindingRecord(check_id=check_id, key=key, severity=Severity(severity), evidence=dict(evidence))


def run(
    probe: str,
    *findings: FindingRecord,
    status: RunStatus = RunStatus.OK,
    at: datetime = T0,
    observations: dict[str, Any] | None = None,
    error: str | None = None,
) -> ProbeRunRecord:
    return ProbeRunRecord(
        probe=probe,
        status=status,
        started_at=at,
        finished_at=at + timedelta(seconds=2),
        observations=observations or {"probe": probe},
        findings=tuple(findings),
        error_kind="connect" if status == RunStatus.ERROR else None,
        error=error or ("connection refused" if status == RunStatus.ERROR else None),
        skip_reason="not applicable" if status == RunStatus.SKIPPED else None,
    )


def scan(
    at: datetime,
    runs: Iterable[ProbeRunRecord],
    *,
    asset: AssetRecord = WWW,
    status: ScanStatus | None = None,
    full: bool = True,
    trigger: Trigger = Trigger.MANUAL,
) -> ScanRecord:
    runs = tuple(runs)
    if status is None:
        status = ScanStatus.COMPLETE if all(r.status == RunStatus.OK for r in runs) else ScanStatus.PARTIAL
    return ScanRecord(
        asset=asset,
        status=status,
        started_at=at,
        finished_at=at + timedelta(seconds=30),
        posture_version="0.1.0",
        catalog_version="2025.1",
        config_hash="sha256:cafe",
        probe_runs=runs,
        trigger=trigger,
        full=full,
        dns={"resolver": "127.0.0.1:5353", "addresses": ["127.0.0.1"]},
    )


def done(at: datetime) -> datetime:
    """When a scan built by :func:`scan` at ``at`` finishes: lifecycle events carry this time."""
    return at + timedelta(seconds=30)
