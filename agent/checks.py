"""The check IDs the agent raises itself (not a probe): reachability, DNS pins,
the half-yearly cadence and remediation deadlines. Each has its catalog entry in
probes/catalog.toml; tests/probes/test_catalog.py holds the two together."""

from __future__ import annotations

import enum


class AgentCheck(enum.StrEnum):
    ASSET_UNREACHABLE = "asset.unreachable"  # agent.scanning.reach: nothing answered
    DNS_UNEXPECTED_ADDRESS = "dns.unexpected_address"  # agent.scanning.runner: outside the pinned addresses
    CADENCE_OVERDUE = "cadence.scan_overdue"  # agent.notify.alerts: the half-yearly scan is late
    DEADLINE_MISSED = "remediation.deadline_missed"  # agent.notify.alerts: a fix is past its deadline


#: Every check ID the agent can raise.
AGENT_CHECKS: frozenset[str] = frozenset(c.value for c in AgentCheck)
