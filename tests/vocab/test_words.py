"""The shared words: one definition each, with the values storage keeps."""

from __future__ import annotations

import json

from vocab import (
    SEVERITY_ORDER,
    AssetKind,
    FindingState,
    RunStatus,
    ScanStatus,
    Severity,
    Trigger,
    severity_position,
    severity_rank,
)


def test_severity_order_and_rank() -> None:
    assert [s.value for s in SEVERITY_ORDER] == ["critical", "high", "medium", "low", "info"]
    assert [s.rank for s in SEVERITY_ORDER] == [4, 3, 2, 1, 0]
    assert severity_rank("high") == 3 and severity_rank("bogus") == 0 and severity_rank("bogus", -1) == -1
    assert severity_position("critical") == 0 and severity_position("info") == 4
    assert severity_position("bogus") == 9


def test_stored_values_are_unchanged() -> None:
    assert [k.value for k in AssetKind] == ["website", "trading", "api", "watch"]
    assert [s.value for s in RunStatus] == ["ok", "error", "skipped"]
    assert [s.value for s in ScanStatus] == ["complete", "partial", "failed", "interrupted", "running"]
    assert [s.value for s in FindingState] == ["open", "fixed", "reopened", "accepted", "false_positive",
                                               "resolved_by_config"]
    assert [t.value for t in Trigger] == ["manual", "scheduled"]
    # A member is its string: compared, hashed and written to JSON as the stored value.
    assert Severity.HIGH == "high" and {"high": 1}[Severity.HIGH] == 1
    assert json.dumps({Severity.HIGH: AssetKind.API}) == '{"high": "api"}'


def test_the_layers_share_one_definition() -> None:
    import agent.config
    import probes.base
    import state.records

    assert probes.base.Severity is Severity and probes.base.AssetKind is AssetKind
    assert probes.base.RunStatus is RunStatus is state.records.RunStatus
    assert state.records.ScanStatus is ScanStatus and state.records.FindingState is FindingState
    assert agent.config.Severity is Severity
    assert not hasattr(probes.base, "ProbeStatus")
