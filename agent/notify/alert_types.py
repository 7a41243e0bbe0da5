"""What an alert is: its kind and its payload (stored in the delivery log as JSON).

Apart from :mod:`agent.notify.alerts` (which builds and renders alerts) so that the renderers of
other alert families (:mod:`agent.notify.duty_alerts`) can use the types without a cycle.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class AlertKind(enum.StrEnum):
    CADENCE_OVERDUE = "cadence_overdue"
    DEADLINE_MISSED = "deadline_missed"
    NEW_FINDING = "new_finding"
    CADENCE_WARNING = "cadence_warning"
    # The compliance calendar (agent.notify.duty_alerts): duties and the declaration pack.
    DUTY_OVERDUE = "duty_overdue"
    DECLARATION_REMINDER = "declaration_reminder"
    DUTY_DUE_SOON = "duty_due_soon"
    PACK_READY = "pack_ready"
    PACK_FAILED = "pack_failed"


_ORDER = {k: i for i, k in enumerate(AlertKind)}


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    condition: str
    asset: str
    severity: str
    check_id: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "asset": self.asset, "severity": self.severity,
                "check_id": self.check_id, **self.detail}

    @classmethod
    def from_payload(cls, condition: str, payload: Mapping[str, Any]) -> Alert:
        detail = {k: v for k, v in payload.items() if k not in ("kind", "asset", "severity", "check_id")}
        return cls(AlertKind(payload["kind"]), condition, str(payload["asset"]), str(payload["severity"]),
                   str(payload["check_id"]), detail)
